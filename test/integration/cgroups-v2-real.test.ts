// The v2 driver on the host's real cgroup2 mount, found in /proc/self/mountinfo: /sys/fs/cgroup on
// a pure v2 host (Debian 12's default), /sys/fs/cgroup/unified on a hybrid one. Which controllers
// that tree offers decides what is asserted, and the test logs the case:
// - memory and pids available (pure v2): limits are written and read back, a process joins, stats
//   show its CPU, memory limit, pids and (with the io controller) its direct I/O to a disk.
// - not available (hybrid: bound to v1 hierarchies): a limit is refused naming the field and the
//   tree; a cgroup without limits is still created, joined, read and removed.
// The limit-writing logic for every field is also tested against a scratch tree in
// test/unit/cgroups-v2.test.ts.

import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { wholeDiskOf } from '../../agent/runtime/cgroups/block-devices.js';
import { detectCgroupMode } from '../../agent/runtime/cgroups/detect.js';
import type { CgroupRecord } from '../../agent/runtime/cgroups/driver.js';
import { CgroupsV2 } from '../../agent/runtime/cgroups/v2.js';
import { hostCgroups } from '../helpers/host-cgroups.js';

const MiB = 1024 * 1024;
const present = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );

interface Scratch {
  root: string;
  parent: string;
  pids: number[];
}

/** A unique parent under the cgroup2 root, removed (with its processes killed) in teardown. */
function scratchParent(t: ExecutionContext, root: string): Scratch {
  const scratch: Scratch = { root, parent: `tessera-test-${process.pid}-${crypto.randomBytes(4).toString('hex')}`, pids: [] };
  t.teardown(async () => {
    for (const pid of scratch.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone: nothing to end
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    // Deliberately best-effort: the test itself asserts removal; this only covers a failed test.
    await fs.rmdir(path.join(root, scratch.parent, 'leaf')).catch(() => undefined);
    await fs.rmdir(path.join(root, scratch.parent)).catch(() => undefined);
  });
  return scratch;
}

/** A busybox shell that waits for a line on stdin (sent once it is in the cgroup), runs `script`, prints "done", then sleeps. */
function waitingChild(scratch: Scratch, script: string): ChildProcessWithoutNullStreams {
  const child = spawn('/bin/busybox', ['sh', '-c', `read x; ${script}; echo done; exec /bin/busybox sleep 30`], { stdio: ['pipe', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('spawn failed');
  scratch.pids.push(child.pid);
  return child;
}

async function joinAndRun(driver: CgroupsV2, record: CgroupRecord, child: ChildProcessWithoutNullStreams): Promise<void> {
  const [procs] = driver.procsFiles(record);
  await fs.writeFile(procs ?? '', String(child.pid));
  const done = new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('done') && resolve()));
  child.stdin.end('go\n');
  await done;
}

async function endChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

test('a cgroup on the real cgroup2 mount: limits where the controllers are, create, join, stats, remove', async (t) => {
  const host = await hostCgroups();
  if (host.v2Root === undefined) {
    t.log('case: cgroup v1 only (no cgroup2 mount): the v2 driver has no tree to run on');
    t.is(host.mode, 'v1');
    return;
  }
  const root = host.v2Root;
  const limitsHere = host.v2Controllers.has('memory') && host.v2Controllers.has('pids');
  t.log(
    `case: ${host.mode} host, cgroup2 at ${root} with controllers [${[...host.v2Controllers].join(' ')}]: ${limitsHere ? 'limits are applied' : 'limits must be refused'}`,
  );
  const scratch = scratchParent(t, root);
  const rootSubtreeBefore = (await fs.readFile(path.join(root, 'cgroup.subtree_control'), 'utf8')).trim().split(/\s+/).filter(Boolean);
  const driver = new CgroupsV2(root);
  const leaf = path.join(root, scratch.parent, 'leaf');

  if (limitsHere) {
    t.is(await detectCgroupMode(root), 'v2');
    const record = await driver.create(`${scratch.parent}/leaf`, { pids: { limit: 20 }, memory: { limit: 64 * MiB } });
    t.deepEqual(record.dirs, [leaf]);
    t.is((await fs.readFile(path.join(leaf, 'pids.max'), 'utf8')).trim(), '20');
    t.is((await fs.readFile(path.join(leaf, 'memory.max'), 'utf8')).trim(), String(64 * MiB));
    await checkJoinStatsRemove(t, driver, record, scratch, { limited: true });
  } else {
    await t.throwsAsync(detectCgroupMode(root), { message: /lacks the memory, pids controller/ });
    await t.throwsAsync(driver.create(`${scratch.parent}/leaf`, { pids: { limit: 5 } }), {
      message: new RegExp(`linux\\.resources\\.pids\\.limit: the cgroup v2 'pids' controller is not available in ${root.replaceAll('/', '\\/')}`),
    });
    t.false(await present(path.join(root, scratch.parent)), 'a refused create leaves nothing');
    const record = await driver.create(`${scratch.parent}/leaf`, {});
    t.deepEqual(record.dirs, [leaf]);
    t.deepEqual(record.createdDirs, [path.join(root, scratch.parent), leaf]);
    await checkJoinStatsRemove(t, driver, record, scratch, { limited: false });
  }
  const rootSubtreeAfter = (await fs.readFile(path.join(root, 'cgroup.subtree_control'), 'utf8')).trim().split(/\s+/).filter(Boolean);
  for (const c of rootSubtreeBefore) t.true(rootSubtreeAfter.includes(c), `the root's ${c} stays enabled`);
  if (!limitsHere) t.deepEqual(rootSubtreeAfter, rootSubtreeBefore, 'the root cgroup was not changed');
});

async function checkJoinStatsRemove(t: ExecutionContext, driver: CgroupsV2, record: CgroupRecord, scratch: Scratch, o: { limited: boolean }): Promise<void> {
  t.false(record.warnings?.some((w) => /devices/.test(w)) ?? false, 'the device allow-list is enforced (a BPF program), not warned about');
  // Direct I/O to a file on the disk under the temp dir: io.stat counts it where the io controller is on.
  const ioDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-cg2-io-'));
  t.teardown(() => fs.rm(ioDir, { recursive: true, force: true }));
  const disk = await wholeDiskOf(ioDir);
  const ioCounted = disk !== undefined && record.dirs[0] !== undefined && (await present(path.join(record.dirs[0], 'io.stat')));
  const child = waitingChild(
    scratch,
    `i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; /bin/busybox dd if=/dev/zero of=${ioDir}/f bs=4096 count=16 oflag=direct 2>/dev/null`,
  );
  await joinAndRun(driver, record, child);
  t.regex(await fs.readFile(`/proc/${child.pid}/cgroup`, 'utf8'), new RegExp(`^0::/${scratch.parent}/leaf$`, 'm'));

  const stats = await driver.stats(record);
  t.is(stats.cgroupVersion, 'v2');
  t.true(stats.cpu.usageNanos > 0, JSON.stringify(stats.cpu));
  t.is(typeof stats.cpu.userNanos, 'number');
  if (o.limited) {
    t.is(stats.memory.limitBytes, 64 * MiB);
    t.is(stats.pids.limit, 20);
    t.true(stats.pids.current >= 1, JSON.stringify(stats.pids));
  } else {
    t.is(stats.memory.oomKills, 0, 'no memory controller: no OOM events');
  }
  t.false(await driver.oomKilled(record));
  if (ioCounted) {
    t.log(`case: io controller on, temp dir on disk ${disk.major}:${disk.minor}: the direct writes are counted`);
    const d = stats.blockIO.devices.find((x) => x.major === disk.major && x.minor === disk.minor);
    t.true((d?.writeBytes ?? 0) >= 16 * 4096, JSON.stringify(stats.blockIO));
  } else {
    t.log(`case: ${disk === undefined ? 'the temp dir is on no block device' : 'no io controller in this cgroup2 tree'}: no disk I/O is reported`);
    t.deepEqual(stats.blockIO.devices, []);
  }

  if (child.pid !== undefined) await endChild(child);
  await driver.remove(record);
  t.false(await present(path.join(scratch.root, scratch.parent)), 'remove deleted both directories');
}
