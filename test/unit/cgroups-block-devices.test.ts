// The disks whose I/O a v1 container cgroup accounts: dev_t decoding, partition → disk through a
// scratch /sys/dev/block tree, and the no-op throttle rule the v1 driver writes before the spec's
// own (against a scratch v1 tree; the real kernel's counting is checked in
// test/integration/cgroups-v1.test.ts).

import test from 'ava';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeDev, wholeDiskOf } from '../../agent/runtime/cgroups/block-devices.js';
import { CgroupsV1 } from '../../agent/runtime/cgroups/v1.js';

test('decodeDev splits a dev_t as glibc does (12+20 bits, interleaved)', (t) => {
  t.deepEqual(decodeDev(0xfe00n), { major: 254, minor: 0 });
  t.deepEqual(decodeDev(BigInt((259 << 8) | 1)), { major: 259, minor: 1 });
  // minor 300: low 8 bits in place, the rest from bit 20 up.
  t.deepEqual(decodeDev(BigInt((8 << 8) | 44 | (1 << 20))), { major: 8, minor: 300 });
  // major 4096: bits above 12 live at bit 44.
  t.deepEqual(decodeDev(1n << 44n), { major: 4096, minor: 0 });
});

async function scratch(t: { teardown: (f: () => Promise<void>) => void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-blk-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

test('wholeDiskOf: a partition maps to its disk, a disk to itself, an anonymous device to none', async (t) => {
  const dir = await scratch(t);
  const { dev } = await fs.stat(dir, { bigint: true });
  const { major, minor } = decodeDev(dev);
  const sys = path.join(dir, 'sys-dev-block');
  await fs.mkdir(sys);
  const link = path.join(sys, `${major}:${minor}`);

  // As the kernel lays it out: /sys/dev/block/M:m -> ../../devices/.../disk/partition-dir
  await fs.mkdir(path.join(dir, 'devices', 'disk9', 'disk9p1'), { recursive: true });
  await fs.writeFile(path.join(dir, 'devices', 'disk9', 'dev'), '9:16\n');
  await fs.writeFile(path.join(dir, 'devices', 'disk9', 'disk9p1', 'partition'), '1\n');
  await fs.symlink(path.join(dir, 'devices', 'disk9', 'disk9p1'), link);
  t.deepEqual(await wholeDiskOf(dir, sys), { major: 9, minor: 16 }, 'a partition gives its disk');

  await fs.rm(link);
  await fs.symlink(path.join(dir, 'devices', 'disk9'), link);
  t.deepEqual(await wholeDiskOf(dir, sys), { major, minor }, 'a whole disk gives itself');

  await fs.rm(link);
  t.is(await wholeDiskOf(dir, sys), undefined, 'no /sys/dev/block entry: nothing to account');
});

test('the v1 driver turns on I/O accounting per disk before the spec throttle rules', async (t) => {
  const root = await scratch(t);
  for (const controller of ['memory', 'pids', 'devices', 'blkio']) {
    await fs.mkdir(path.join(root, controller));
    await fs.writeFile(path.join(root, controller, 'cgroup.procs'), '');
  }
  await fs.writeFile(path.join(root, 'blkio', 'blkio.throttle.read_bps_device'), '');
  const driver = new CgroupsV1(root);
  const record = await driver.create(
    'tessera/c1',
    { blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 5000 }] } },
    {
      ioAccountedDisks: [
        { major: 254, minor: 0 },
        { major: 8, minor: 0 },
      ],
    },
  );
  const file = await fs.readFile(path.join(root, 'blkio', 'tessera', 'c1', 'blkio.throttle.read_bps_device'), 'utf8');
  // In a plain file every write is a line; the kernel would keep only the last rule per disk.
  t.is(file, '254:0 0\n8:0 0\n8:0 5000\n', 'no-op rules first, so the spec rule on the same disk wins');
  t.is(record.warnings, undefined);
});
