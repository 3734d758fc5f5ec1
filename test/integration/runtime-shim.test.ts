// The per-container shim: containers outlive the process that created them (kill -9 of a
// stand-in for tsd), a new runtime re-adopts them (logs go on, exec and stop work, wait gets
// the real exit code, also of a container that exited while nobody was watching), JSON-lines
// logs with both streams, and size-based rotation.

import test from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execCollect } from '../../agent/runtime/exec.js';
import { withTimeout } from '../helpers/runtime-fixture.js';
import { createInDoomedProcess, readLogRecords as readRecords, runtimeFixture as fixture } from '../helpers/shim-creator.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('containers outlive the process that created them; a new runtime re-adopts them', async (t) => {
  const fx = await fixture(t);
  const looper = fx.newId();
  const quitter = fx.newId();
  const jobs = [];
  for (const [id, args] of [
    [looper, ['sh', '-c', 'trap "exit 42" TERM; i=0; while true; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.1; done']],
    [quitter, ['sh', '-c', 'echo bye; sleep 1; exit 7']],
  ] as const) {
    await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
    const bundle = await fx.writeBundle(id, fx.specFor(id, { args: [...args], hostname: 'adopted-box' }));
    fx.track(id);
    jobs.push({ id, bundle, logPath: fx.logPath(id) });
  }
  await createInDoomedProcess(t, fx, jobs);

  // The fixture's runtime is a new instance on the same state root: it re-adopts.
  const state = await fx.runtime.state(looper);
  t.is(state?.status, 'running');
  t.true(state !== undefined && alive(state.pid), 'the container init survived its creator');

  const before = await readRecords(fx.logPath(looper));
  await new Promise((r) => setTimeout(r, 600));
  const after = await readRecords(fx.logPath(looper));
  t.true(after.length > before.length, 'the log goes on after the creator died');
  t.true(after.some((r) => r.stream === 'stdout' && /^out \d+\n$/.test(r.log)));
  t.true(after.some((r) => r.stream === 'stderr' && /^err \d+\n$/.test(r.log)));
  for (const r of after) t.regex(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);

  const ran = await execCollect(await fx.runtime.exec(looper, { args: ['sh', '-c', 'echo "exec in $(hostname)"; echo oops >&2; exit 3'] }));
  t.is(ran.exit.exitCode, 3);
  t.is(ran.stdout, 'exec in adopted-box\n', "exec joined the container's uts namespace");
  t.is(ran.stderr, 'oops\n');

  // The quitter exited while no runtime was watching: its shim recorded the code.
  const quit = await withTimeout(fx.runtime.wait(quitter), 10_000);
  t.deepEqual(quit, { exitCode: 7, oomKilled: false });
  t.deepEqual(
    (await readRecords(fx.logPath(quitter))).map((r) => [r.stream, r.log]),
    [['stdout', 'bye\n']],
  );

  await fx.runtime.kill(looper, 'SIGTERM');
  const exit = await withTimeout(fx.runtime.wait(looper), 10_000);
  t.deepEqual(exit, { exitCode: 42, oomKilled: false });
  t.is((await fx.runtime.state(looper))?.status, 'stopped');
  // wait again after the shim is gone: exit.json answers.
  t.deepEqual(await fx.runtime.wait(looper), exit);

  // The looper was created first and made the shared parent cgroup: it goes last, with it.
  await fx.runtime.delete(quitter);
  await fx.runtime.delete(looper);
  t.deepEqual(await fx.runtime.list(), []);
  const left = await fx.cleanup();
  t.deepEqual(left, { cgroups: [], mounts: [] });
});

test('the log rotates by size and keeps the configured number of files', async (t) => {
  const fx = await fixture(t);
  const id = fx.newId();
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  const bundle = await fx.writeBundle(id, fx.specFor(id, { args: ['sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo "line $i of the log"; i=$((i+1)); done'] }));
  fx.track(id);
  const logPath = fx.logPath(id);
  await fx.runtime.create(id, bundle, { logPath, logFormat: 'json', logMaxBytes: 4096, logMaxFiles: 3 });
  await fx.runtime.start(id);
  t.is((await withTimeout(fx.runtime.wait(id), 10_000)).exitCode, 0);
  const files = (await fs.readdir(path.dirname(logPath))).filter((f) => f.startsWith(path.basename(logPath))).sort();
  t.deepEqual(files, [path.basename(logPath), `${path.basename(logPath)}.1`, `${path.basename(logPath)}.2`]);
  const numbers: number[] = [];
  for (const f of [`${logPath}.2`, `${logPath}.1`, logPath]) {
    t.true((await fs.stat(f)).size <= 4096, `${f} is within the size limit`);
    for (const r of await readRecords(f)) numbers.push(Number(/^line (\d+) of the log\n$/.exec(r.log)?.[1]));
  }
  // The newest lines survive, in order, without gaps; the oldest went with rotated-out files.
  t.is(numbers[numbers.length - 1], 399);
  t.true(numbers.length < 400 && numbers.length > 100);
  t.deepEqual(
    numbers,
    numbers.map((_, i) => numbers[0]! + i),
  );
  await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('a broken shim path fails create with a clear error and leaves nothing behind', async (t) => {
  const fx = await fixture(t);
  const { NativeRuntime } = await import('../../agent/runtime/native-runtime.js');
  const runtime = new NativeRuntime({ stateRoot: path.join(fx.dir, 'state'), cgroupParent: fx.cgroupParent, shimPath: '/nonexistent/tessera-shim' });
  const id = fx.newId();
  const bundle = await fx.writeBundle(id, fx.specFor(id, { args: ['true'] }));
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  const err = await t.throwsAsync(runtime.create(id, bundle, { logPath: fx.logPath(id) }));
  t.regex(err.message, /exec tessera-shim.*ENOENT/);
  t.is(await runtime.state(id), undefined);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});
