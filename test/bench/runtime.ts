// npm run bench:runtime — our runtime against runc on the same busybox bundle, interleaved in
// the same run: start-to-exit of /bin/true, exec latency, and 50 containers started at once.
// "ours" is NativeRuntime in-process (what tsd does): create + start + wait + delete, which
// includes spawning the shim; runc is `runc run` (create, start, wait, delete) as a process,
// which costs its spawn (~2-3 ms, the same as from a shell loop). Bundles are written before the
// clock starts for both. The machine is shared: the load average is printed with the table.

import { execFile, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { execCollect } from '../../agent/runtime/exec.js';
import { RuntimeFixture } from '../helpers/runtime-fixture.js';
import { percentile } from './stats.js';

const run = promisify(execFile);
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 50);
const CONCURRENT = 50;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const fx = await RuntimeFixture.create();
const runcRoot = path.join(fx.dir, 'runc-root');
try {
  const oursOnce = async (args: string[]): Promise<void> => {
    const id = fx.newId();
    const bundle = await fx.writeBundle(id, fx.specFor(id, { args }));
    const t0 = performance.now();
    await fx.runtime.create(id, bundle, { logPath: fx.logPath(id) });
    const t1 = performance.now();
    await fx.runtime.start(id);
    const t2 = performance.now();
    const exit = await fx.runtime.wait(id);
    const t3 = performance.now();
    await fx.runtime.delete(id);
    const t4 = performance.now();
    if (exit.exitCode !== 0) throw new Error(`ours: /bin/true exited ${exit.exitCode}`);
    oursLast = t4 - t0;
    oursPhases = [t1 - t0, t2 - t1, t3 - t2, t4 - t3];
  };
  let oursLast = 0;
  let oursPhases = [0, 0, 0, 0];
  const phases: number[][] = [[], [], [], []];
  const loadBefore = os.loadavg();
  const runcOnce = async (args: string[]): Promise<number> => {
    const id = fx.newId();
    const bundle = await fx.writeBundle(id, fx.specFor(id, { args }));
    return timed(() => run('runc', ['--root', runcRoot, 'run', '--bundle', bundle, id]));
  };
  await (await import('node:fs/promises')).mkdir(path.join(fx.dir, 'logs'), { recursive: true });

  // Warm-up (page cache, cgroup parents), then interleaved pairs.
  await oursOnce(['/bin/true']);
  await runcOnce(['/bin/true']);
  const ours: number[] = [];
  const runc: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    if (i % 2 === 1) runc.push(await runcOnce(['/bin/true']));
    await oursOnce(['/bin/true']);
    ours.push(oursLast);
    oursPhases.forEach((ms, k) => phases[k]?.push(ms));
    if (i % 2 === 0) runc.push(await runcOnce(['/bin/true']));
  }

  // exec latency into one running container each.
  const oursId = await fx.create({ args: ['sleep', '300'] });
  await fx.runtime.start(oursId);
  const started = await fx.runtime.state(oursId);
  if (started?.status !== 'running')
    throw new Error(
      `exec target is ${started?.status}: ${JSON.stringify(await fx.runtime.wait(oursId))}; log: ${await (await import('node:fs/promises')).readFile(fx.logPath(oursId), 'utf8')}`,
    );
  const runcId = fx.newId();
  const runcBundle = await fx.writeBundle(runcId, fx.specFor(runcId, { args: ['sleep', '300'] }));
  // Detached runc hands its stdio to the container: give it none, or execFile would wait for it.
  await new Promise<void>((resolve, reject) => {
    spawn('runc', ['--root', runcRoot, 'run', '--detach', '--bundle', runcBundle, runcId], { stdio: 'ignore' }).on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`runc run --detach exited ${code}`)),
    );
  });
  const oursExec: number[] = [];
  const runcExec: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    oursExec.push(
      await timed(async () => {
        const r = await execCollect(await fx.runtime.exec(oursId, { args: ['/bin/true'] }));
        if (r.exit.exitCode !== 0) throw new Error('ours exec failed');
      }),
    );
    runcExec.push(await timed(() => run('runc', ['--root', runcRoot, 'exec', runcId, '/bin/true'])));
  }
  await fx.runtime.kill(oursId, 'SIGKILL');
  await fx.runtime.wait(oursId);
  await fx.runtime.delete(oursId);
  await run('runc', ['--root', runcRoot, 'delete', '--force', runcId]);

  // 50 at once: wall time until all have exited and been deleted.
  const oursBurst = await timed(() => Promise.all(Array.from({ length: CONCURRENT }, () => oursOnce(['/bin/true']))));
  const runcBurst = await timed(() => Promise.all(Array.from({ length: CONCURRENT }, () => runcOnce(['/bin/true']))));

  const fmt = (n: number): string => n.toFixed(1).padStart(9);
  const rows: Array<[string, number[], number[]]> = [
    ['start-to-exit /bin/true (ms)', ours, runc],
    ['exec /bin/true (ms)', oursExec, runcExec],
  ];
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  console.log(
    `runtime benchmark: busybox bundle, ${ITERATIONS} interleaved iterations, same run; ${os.cpus().length} CPUs, load average ${load(loadBefore)} before, ${load(os.loadavg())} after`,
  );
  console.log(
    `${'measure'.padEnd(34)}${'ours p50'.padStart(9)}${'ours p90'.padStart(9)}${'runc p50'.padStart(9)}${'runc p90'.padStart(9)}${'ratio p50'.padStart(10)}`,
  );
  for (const [name, a, b] of rows) {
    console.log(
      `${name.padEnd(34)}${fmt(percentile(a, 50))}${fmt(percentile(a, 90))}${fmt(percentile(b, 50))}${fmt(percentile(b, 90))}${(percentile(a, 50) / percentile(b, 50)).toFixed(2).padStart(10)}`,
    );
  }
  console.log(
    `${`${CONCURRENT} concurrent, wall (ms)`.padEnd(34)}${fmt(oursBurst)}${''.padStart(9)}${fmt(runcBurst)}${''.padStart(9)}${(oursBurst / runcBurst).toFixed(2).padStart(10)}`,
  );
  const names = ['create', 'start', 'wait', 'delete'];
  console.log(`ours start-to-exit p50 by phase (ms): ${names.map((n, k) => `${n} ${percentile(phases[k] ?? [], 50).toFixed(1)}`).join(', ')}`);
  console.log('goal: ours p50 start-to-exit <= 0.5 x runc p50');
} finally {
  await run('sh', ['-c', `for c in $(runc --root ${runcRoot} list -q 2>/dev/null); do runc --root ${runcRoot} delete --force $c; done`]).catch(() => undefined);
  await fx.cleanup();
}
