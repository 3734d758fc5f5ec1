// cgroup v1 limits: memory (OOM kills the container only), pids, cpu quota.

import test from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CGROUP_MOUNT_ROOT, RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';

const MiB = 1024 * 1024;

test('a memory limit OOM-kills the container, not the test process', async (t) => {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  // dd reads 64 MiB from /dev/zero into one buffer, touching every page of it.
  const { exit, log } = await fx.run({ args: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], memoryLimit: 32 * MiB });
  t.true(exit.oomKilled, `exit ${JSON.stringify(exit)} log ${log}`);
  t.is(exit.signal, 'SIGKILL');
  t.notThrows(() => process.kill(process.pid, 0), 'the test process is alive');

  // The same work fits under a bigger limit.
  const fits = await fx.run({ args: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], memoryLimit: 128 * MiB });
  t.deepEqual(fits.exit, { exitCode: 0, oomKilled: false }, fits.log);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('the memory, pids and cpu limits are written to the container cgroups', async (t) => {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const id = await fx.create({ args: ['sleep', '60'], memoryLimit: 48 * MiB, pidsLimit: 17, cpuQuota: 50_000, cpuShares: 512 });
  const cg = (controller: string, file: string) =>
    fs.readFile(path.join(CGROUP_MOUNT_ROOT, controller, fx.cgroupPathOf(id), file), 'utf8').then((s) => s.trim());
  t.is(await cg('memory', 'memory.limit_in_bytes'), String(48 * MiB));
  t.is(await cg('pids', 'pids.max'), '17');
  t.is(await cg('cpu', 'cpu.cfs_quota_us'), '50000');
  t.is(await cg('cpu', 'cpu.cfs_period_us'), '100000');
  t.is(await cg('cpu', 'cpu.shares'), '512');
  const state = await fx.runtime.state(id);
  for (const controller of ['memory', 'pids', 'cpu', 'cpuacct']) {
    t.is(await cg(controller, 'cgroup.procs'), String(state?.pid), `init joined ${controller} before exec`);
  }
  await fx.runtime.kill(id, 'SIGKILL');
  await withTimeout(fx.runtime.wait(id), 5000);
  await fx.runtime.delete(id);
  t.deepEqual(await fx.leftoverCgroups(), [], 'delete removed the cgroups');
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('a pids limit stops forks inside the container', async (t) => {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  // The background sleeps die with the init: a pid namespace ends with its pid 1.
  const forkTwenty = ['sh', '-c', 'i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo done-forking'];
  const limited = await fx.run({ args: forkTwenty, pidsLimit: 6 });
  t.regex(limited.log, /can't fork/, limited.log);
  t.notRegex(limited.log, /done-forking/);
  t.not(limited.exit.exitCode, 0);
  const roomy = await fx.run({ args: forkTwenty, pidsLimit: 64 });
  t.is(roomy.exit.exitCode, 0, roomy.log);
  t.regex(roomy.log, /done-forking/);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});
