// Which whole disks back a container's files, so the v1 blkio driver can have the kernel account
// the container's I/O on them.
//
// Why: on blk-mq kernels since 6.9, the v1 blkio.throttle.io_service* counters only move for a
// disk whose request queue has had a throttle rule configured at least once; until then every
// cgroup, the root included, reads "Total 0". Writing "MAJ:MIN 0" (0 means "no limit") to a
// container's blkio.throttle.read_bps_device turns the accounting on for that disk without
// limiting anything. Throttle rules are refused on partitions, so a partition maps to its disk.

import fs from 'node:fs/promises';
import path from 'node:path';
import { exists, unlessAbsent } from '../../fs-errors.js';

export interface BlockDevice {
  major: number;
  minor: number;
}

/**
 * The whole disks behind the given paths, each once; paths on no block device (tmpfs, overlay) give
 * none. Runs on every container create: one stat per path, and the sysfs look-up once per device
 * (the rootfs and the bundle are usually on the same one).
 */
export async function wholeDisksBacking(paths: readonly string[]): Promise<BlockDevice[]> {
  const devices = new Set<bigint>();
  for (const p of paths) devices.add((await fs.stat(p, { bigint: true })).dev);
  const found = new Map<string, BlockDevice>();
  for (const dev of devices) {
    const disk = await wholeDiskOfDevice(decodeDev(dev), '/sys/dev/block');
    if (disk !== undefined) found.set(`${disk.major}:${disk.minor}`, disk);
  }
  return [...found.values()];
}

/** The disk (not partition) holding `p`, or undefined when its file system has no block device. */
export async function wholeDiskOf(p: string, sysDevBlock = '/sys/dev/block'): Promise<BlockDevice | undefined> {
  const { dev } = await fs.stat(p, { bigint: true });
  return wholeDiskOfDevice(decodeDev(dev), sysDevBlock);
}

async function wholeDiskOfDevice(device: BlockDevice, sysDevBlock: string): Promise<BlockDevice | undefined> {
  // No entry: an anonymous device (overlayfs, tmpfs, btrfs subvolumes), which no blkio rule can name.
  const real = await unlessAbsent(fs.realpath(path.join(sysDevBlock, `${device.major}:${device.minor}`)), undefined);
  if (real === undefined) return undefined;
  if (!(await exists(path.join(real, 'partition')))) return device;
  const diskDev = path.join(path.dirname(real), 'dev');
  return parseDevNumber(await fs.readFile(diskDev, 'utf8'), diskDev);
}

/** Linux's dev_t layout (glibc's gnu_dev_major/minor): 12 bits of major and 20 of minor, split. */
export function decodeDev(dev: bigint): BlockDevice {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n));
  return { major, minor };
}

function parseDevNumber(text: string, source: string): BlockDevice {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (m === null) throw new Error(`${source}: expected MAJOR:MINOR, got ${JSON.stringify(text.trim().slice(0, 40))}`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}
