// runc as the oracle for limits: the same bundle, created by both runtimes, must give the same
// cgroup limit files on the host and the same rlimits inside the container.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

import { controllerDir, hostCgroups } from '../helpers/host-cgroups.js';
import { RuntimeFixture } from '../helpers/runtime-fixture.js';

const run = promisify(execFile);
/** The limit files each layout has for the INPUT below, by controller; v1 hierarchies or the one cgroup2 tree. */
const V1_LIMIT_FILES: ReadonlyArray<[controller: string, file: string]> = [
  ['memory', 'memory.limit_in_bytes'],
  ['pids', 'pids.max'],
  ['cpu', 'cpu.cfs_quota_us'],
  ['cpu', 'cpu.cfs_period_us'],
  ['cpu', 'cpu.shares'],
];
const V2_LIMIT_FILES = ['memory.max', 'pids.max', 'cpu.max', 'cpu.weight'];

/**
 * The runtime spec lets a runtime place a relative cgroupsPath where it likes: ours puts it under
 * the hierarchy's root, runc under the cgroup of the process that runs it. `base` says which.
 */
async function readLimits(cgroupsPath: string, base: 'root' | 'self'): Promise<Record<string, string>> {
  const host = await hostCgroups();
  const own = new Map<string, string>();
  for (const line of (await fs.readFile('/proc/self/cgroup', 'utf8')).split('\n')) {
    const [, controllers, where] = line.split(':');
    // The cgroup2 line is "0::/path": its controller list is empty, kept under ''.
    for (const c of controllers?.split(',') ?? []) own.set(c, where ?? '/');
  }
  const values: Record<string, string> = {};
  if (host.mode === 'v2' && host.v2Root !== undefined) {
    const dir = path.join(host.v2Root, base === 'self' ? (own.get('') ?? '/') : '/', cgroupsPath);
    for (const file of V2_LIMIT_FILES) values[file] = (await fs.readFile(path.join(dir, file), 'utf8')).trim();
    return values;
  }
  for (const [controller, file] of V1_LIMIT_FILES) {
    const parent = base === 'self' ? (own.get(controller) ?? '/') : '/';
    values[file] = (await fs.readFile(path.join(await controllerDir(controller, parent), cgroupsPath, file), 'utf8')).trim();
  }
  return values;
}

const INPUT = {
  args: ['sh', '-c', 'echo "nofile $(ulimit -Sn) $(ulimit -Hn)"; echo "nproc $(ulimit -Su) $(ulimit -Hu)"; echo "core $(ulimit -Sc)"'],
  memoryLimit: 48 * 1024 * 1024,
  pidsLimit: 64,
  cpuQuota: 50_000,
  cpuShares: 512,
  rlimits: [
    { type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 },
    { type: 'RLIMIT_NPROC', soft: 500, hard: 600 },
    { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
  ],
};

test('cgroup limit files and rlimits are the same under runc and ours', async (t) => {
  const fx = await RuntimeFixture.create();
  t.teardown(() => fx.cleanup().then(() => undefined));

  // Ours: created (limits in place before the process runs), read, then run to the end.
  const oursId = await fx.create(INPUT);
  const oursLimits = await readLimits(fx.cgroupPathOf(oursId), 'root');
  await fx.runtime.start(oursId);
  await fx.runtime.wait(oursId);
  const oursOutput = await fs.readFile(fx.logPath(oursId), 'utf8');
  await fx.runtime.delete(oursId);

  // runc: `create` returns once the container exists; its stdio goes to a file we read afterwards.
  const runcId = fx.newId();
  const bundle = await fx.writeBundle(runcId, fx.specFor(runcId, INPUT));
  const runcRoot = path.join(fx.dir, 'runc-state');
  const outPath = path.join(fx.dir, 'runc-out.log');
  const out = await fs.open(outPath, 'w');
  t.teardown(() =>
    run('runc', ['--root', runcRoot, 'delete', '--force', runcId]).then(
      () => undefined,
      () => undefined,
    ),
  );
  const created = spawn('runc', ['--root', runcRoot, 'create', '--bundle', bundle, runcId], { stdio: ['ignore', out.fd, out.fd] });
  const createCode = await new Promise<number | null>((resolve) => created.once('exit', resolve));
  await out.close();
  const createOutput = await fs.readFile(outPath, 'utf8');
  if (createCode !== 0) throw new Error(`runc create failed (${String(createCode)}): ${createOutput}`);
  const runcLimits = await readLimits(fx.cgroupPathOf(runcId), 'self');
  await run('runc', ['--root', runcRoot, 'start', runcId]);
  for (let i = 0; i < 100; i++) {
    const state = JSON.parse((await run('runc', ['--root', runcRoot, 'state', runcId])).stdout) as { status: string };
    if (state.status === 'stopped') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const runcOutput = await fs.readFile(outPath, 'utf8');
  await run('runc', ['--root', runcRoot, 'delete', '--force', runcId]);

  t.log(`case: ${(await hostCgroups()).mode} cgroups: ${Object.keys(oursLimits).join(', ')}`);
  t.deepEqual(oursLimits, runcLimits);
  t.is(oursLimits['memory.limit_in_bytes'] ?? oursLimits['memory.max'], String(48 * 1024 * 1024));
  t.is(oursLimits['pids.max'], '64');
  t.deepEqual(oursOutput.trim().split('\n'), runcOutput.trim().split('\n'));
  t.regex(oursOutput, /^nofile 1024 2048$/m);
  t.regex(oursOutput, /^nproc 500 600$/m);
  await fx.cleanup();
  t.deepEqual(await fx.leftoverCgroups(), [], 'no cgroup of either runtime is left');
});
