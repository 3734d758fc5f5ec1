// The v2 driver on this machine's real cgroup2 mount (/sys/fs/cgroup/unified). Every controller
// but hugetlb is bound to a v1 hierarchy here, and a second cgroup2 mount (even in a private mount
// namespace) is the same single hierarchy, so no limit can be applied on a real v2 kernel tree
// on this machine. What can run: creating and removing the cgroup directories, a process
// joining through cgroup.procs, stats from the core cpu.stat, and refusing a limit whose
// controller is not available, without touching the root's cgroup.subtree_control.
// The limit-writing logic is tested against a scratch tree in test/unit/cgroups-v2.test.ts.

import test from 'ava';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { detectCgroupMode } from '../../agent/runtime/cgroups/detect.js';
import { CgroupsV2 } from '../../agent/runtime/cgroups/v2.js';

const UNIFIED = '/sys/fs/cgroup/unified';

const present = (p: string) => fs.access(p).then(() => true, () => false);

test('a cgroup on the real cgroup2 mount: create, join, stats, remove', async (t) => {
  if (!(await present(path.join(UNIFIED, 'cgroup.controllers')))) {
    t.log(`no cgroup2 mount at ${UNIFIED}`);
    t.pass();
    return;
  }
  const parent = `tessera-test-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const rootSubtree = await fs.readFile(path.join(UNIFIED, 'cgroup.subtree_control'), 'utf8');
  const pids: number[] = [];
  t.teardown(async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    await fs.rmdir(path.join(UNIFIED, parent, 'leaf')).catch(() => undefined);
    await fs.rmdir(path.join(UNIFIED, parent)).catch(() => undefined);
  });

  await t.throwsAsync(detectCgroupMode(UNIFIED), { message: /lacks the memory, pids controller/ });
  const driver = new CgroupsV2(UNIFIED);
  await t.throwsAsync(driver.create(`${parent}/leaf`, { pids: { limit: 5 } }), {
    message: /linux\.resources\.pids\.limit: the cgroup v2 'pids' controller is not available in \/sys\/fs\/cgroup\/unified/,
  });
  t.false(await present(path.join(UNIFIED, parent)), 'a refused create leaves nothing');

  const record = await driver.create(`${parent}/leaf`, {});
  const leaf = path.join(UNIFIED, parent, 'leaf');
  t.deepEqual(record.dirs, [leaf]);
  t.deepEqual(record.createdDirs, [path.join(UNIFIED, parent), leaf]);
  t.true(record.warnings?.some((w) => /NOT enforced on cgroup v2/.test(w)));
  t.is(await fs.readFile(path.join(UNIFIED, 'cgroup.subtree_control'), 'utf8'), rootSubtree, 'the root cgroup was not changed');

  // A child that waits until it is in the cgroup, then burns a little CPU there and sleeps.
  const child = spawn('/bin/busybox', ['sh', '-c', 'read x; i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo burnt; exec /bin/busybox sleep 30'], { stdio: ['pipe', 'pipe', 'ignore'] });
  if (child.pid === undefined) throw new Error('spawn failed');
  pids.push(child.pid);
  const [procs] = driver.procsFiles(record);
  await fs.writeFile(procs ?? '', String(child.pid));
  t.regex(await fs.readFile(`/proc/${child.pid}/cgroup`, 'utf8'), new RegExp(`^0::/${parent}/leaf$`, 'm'));
  const burnt = new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
  child.stdin.end('go\n');
  await burnt;

  const stats = await driver.stats(record);
  t.is(stats.cgroupVersion, 'v2');
  t.true(stats.cpu.usageNanos > 0, JSON.stringify(stats.cpu));
  t.is(typeof stats.cpu.userNanos, 'number');
  t.is(stats.memory.oomKills, 0, 'no memory controller: no OOM events');
  t.false(await driver.oomKilled(record));

  process.kill(child.pid, 'SIGKILL');
  await new Promise((r) => child.once('exit', r));
  await driver.remove(record);
  t.false(await present(path.join(UNIFIED, parent)), 'remove deleted both directories');
});
