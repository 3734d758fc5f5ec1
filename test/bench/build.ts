// npm run bench:build — `tsctl build` against `buildah bud`, CLI against CLI, in the same run, on one
// three-stage Dockerfile of ten steps (test/fixtures/builds/bench-three-stage), FROM the same
// busybox image (deploy/busybox-image.ts: fixed time stamps, so the same digest on both sides).
//
// Set-up (not timed):
//   ours     a real single-node tsd (manager and worker) in a network namespace of its own
//            (test/helpers/busybox-node.ts), busybox loaded into its store with `tsctl image load`
//   buildah  Debian's buildah confined to a temporary directory (test/helpers/buildah.ts), busybox
//            pulled from a loopback docker-registry, overlay storage (BENCH_BUILDAH_DRIVER=vfs for
//            vfs), `--layers --isolation oci --network none --pull=false`
//
// Timed, from spawning the process to its exit:
//   ours     `node dist/cli/main.js --server unix:… build -t bench-build:1 --progress plain CONTEXT`:
//            tsctl's start-up, the .dockerignore walk and the context upload over the API socket,
//            the build in tsd (plan, RUN containers, layers, commit), the progress stream back
//   buildah  `buildah bud … -t bench-build:1 CONTEXT`: its start-up, reading the context from disk,
//            the build, the commit into its storage
//
// Phases, each timed for both, interleaved (which goes first alternates per round):
//   cold             both step caches empty, the base image present. Ours: `tsctl image rm
//                    bench-build:1` then `tsctl image prune` (the store's collector removes the
//                    step-cache entries, layers and blobs no image names; the bench checks that
//                    <data-root>/images/build-cache is then empty). buildah: `buildah rm --all`,
//                    `buildah rmi --all --force` (its step cache is its intermediate images), then
//                    busybox pulled again
//   warm, 1 changed  right after, src/main.txt edited: the steps from its COPY on run again
//   warm, unchanged  right after, nothing changed: every step from the cache
// Also timed: each CLI's start-up alone (`tsctl build --help`, `buildah --version`), and for ours
// the time from spawn to tsd's "#0 building on" progress line (start-up, walk, connect), so one
// sees how much of a phase they are. Medians over BENCH_RUNS rounds (default 5). Goals (issue 18): cold at most
// 1.0x buildah; warm with nothing changed under 0.5 s. The machine is shared: its load average is
// printed with the table, and only ratios within one run mean anything. Needs root and `npm run
// build` first (tsd and tsctl run from dist/).
import { execFile, spawn } from 'node:child_process';
import { cp, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BUILDAH, type BuildahOracle, buildahInstalled, startBuildah } from '../helpers/buildah.js';
import { type BusyboxNode, startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';
import { tsctlMain } from '../helpers/tsd-node.js';
import { median } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/** buildah's storage driver: overlay by default (as installed buildah uses, and as our steps are), vfs on request. */
const DRIVER = process.env.BENCH_BUILDAH_DRIVER === 'vfs' ? 'vfs' : 'overlay';
const FIXTURE = fileURLToPath(new URL('../fixtures/builds/bench-three-stage/', import.meta.url));
const TAG = 'bench-build:1';
const PHASES = ['cold', 'warm, 1 changed', 'warm, unchanged', 'CLI start-up only'] as const;
type Phase = (typeof PHASES)[number];
const GOALS: Record<Phase, string> = {
  cold: 'ours/buildah ≤ 1.00×',
  'warm, 1 changed': '—',
  'warm, unchanged': 'ours < 500 ms',
  'CLI start-up only': '—',
};
const run = promisify(execFile);

if (!buildahInstalled()) {
  console.error(`bench:build: ${BUILDAH} is missing (deploy/install-deps.sh installs it)`);
  process.exit(1);
}

interface Timed {
  ms: number;
  stderr: string;
  /** When `mark` first appeared at the start of a line of stderr (ms from spawn), if it did. */
  markMs?: number;
}

/** Runs a process to its end; the time is from spawn to exit. Rejects, with its output, on a non-zero exit. */
function timedProcess(command: string, args: string[], mark?: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let markMs: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (mark !== undefined && markMs === undefined && (stderr.startsWith(mark) || stderr.includes(`\n${mark}`))) markMs = performance.now() - started;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve({ ms, stderr, ...(markMs === undefined ? {} : { markMs }) });
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${stdout}${stderr}`));
    });
  });
}

// A stray rejection would end the process before the cleanup below runs: record it, say so with the figures.
const stray: string[] = [];
process.on('unhandledRejection', (reason) => {
  stray.push(reason instanceof Error ? (reason.stack ?? reason.message) : String(reason));
});

let oracle: BuildahOracle | undefined;
let ours: BusyboxNode | undefined;
const times: Record<'ours' | 'buildah', Record<Phase, number[]>> = {
  ours: { cold: [], 'warm, 1 changed': [], 'warm, unchanged': [], 'CLI start-up only': [] },
  buildah: { cold: [], 'warm, 1 changed': [], 'warm, unchanged': [], 'CLI start-up only': [] },
};
const oursSteps: Record<Phase, Set<string>> = {
  cold: new Set(),
  'warm, 1 changed': new Set(),
  'warm, unchanged': new Set(),
  'CLI start-up only': new Set(),
};
/** Ours: from spawn to tsd's "#0 building on" line (tsctl's start-up, the context walk, connecting, the header's answer). */
const oursBeforeBuild: Record<Phase, number[]> = { cold: [], 'warm, 1 changed': [], 'warm, unchanged': [], 'CLI start-up only': [] };
const loadBefore = os.loadavg();
let baseDigest = '';
try {
  ours = await startBusyboxNode('tessera-bench-build-');
  const node = ours.node;
  baseDigest = /busybox\S*\s+(sha256:[0-9a-f]{12})/.exec(await node.tsctl('image', 'ls'))?.[1] ?? '?';
  oracle = await startBuildah({ storageDriver: DRIVER });
  const context = join(ours.workDir, 'context');
  await cp(FIXTURE, context, { recursive: true });
  const buildCacheDir = join(node.dataRoot, 'images', 'build-cache');
  const tsctlBuild = ['--enable-source-maps', tsctlMain, '--server', node.server, 'build', '-t', TAG, '--progress', 'plain', context];

  const buildah = async (phase: Phase): Promise<void> => {
    if (oracle === undefined) throw new Error('buildah did not start');
    const result = await oracle.build({ context, tag: TAG });
    if (!result.ok) throw new Error(`buildah failed (${phase}): ${result.output}`);
    times.buildah[phase].push(result.durationMs);
  };
  const ourBuild = async (phase: Phase): Promise<void> => {
    const result = await timedProcess(process.execPath, tsctlBuild, '#0 building on');
    times.ours[phase].push(result.ms);
    if (result.markMs !== undefined) oursBeforeBuild[phase].push(result.markMs);
    const cached = result.stderr.match(/^#\d+ CACHED$/gm)?.length ?? 0;
    // A cached step prints CACHED and then DONE too.
    const ran = (result.stderr.match(/^#\d+ DONE /gm)?.length ?? 0) - cached;
    oursSteps[phase].add(`${ran} ran/${cached} cached`);
  };
  const emptyOurCache = async (): Promise<void> => {
    await node.tsctl('image', 'rm', TAG).catch((error: Error) => {
      // The first round has built nothing yet under the tag; anything else is a real failure.
      if (!/not found|no such image|unknown/i.test(error.message)) throw error;
    });
    await node.tsctl('image', 'prune');
    const left = (await readdir(buildCacheDir).catch(() => [])).filter((name) => name.endsWith('.json'));
    if (left.length > 0) throw new Error(`the step cache is not empty after image rm + prune: ${left.length} entries in ${buildCacheDir}`);
  };
  const both = async (round: number, phase: Phase): Promise<void> => {
    if (round % 2 === 0) {
      await ourBuild(phase);
      await buildah(phase);
    } else {
      await buildah(phase);
      await ourBuild(phase);
    }
  };

  // One untimed round first: page cache, the runtime's shim, buildah's first storage setup.
  await ourBuild('cold');
  await buildah('cold');
  times.ours.cold.length = 0;
  times.buildah.cold.length = 0;
  oursBeforeBuild.cold.length = 0;
  oursSteps.cold.clear();
  for (let round = 0; round < RUNS; round++) {
    await writeFile(join(context, 'src', 'main.txt'), 'main 0\n');
    await emptyOurCache();
    await oracle.clearCache();
    await both(round, 'cold');
    await writeFile(join(context, 'src', 'main.txt'), `main ${round + 1}\n`);
    await both(round, 'warm, 1 changed');
    await both(round, 'warm, unchanged');
    times.ours['CLI start-up only'].push((await timedProcess(process.execPath, ['--enable-source-maps', tsctlMain, 'build', '--help'])).ms);
    times.buildah['CLI start-up only'].push((await timedProcess(BUILDAH, ['--version'])).ms);
    process.stderr.write(`round ${round + 1}/${RUNS} done\n`);
  }
} finally {
  await oracle?.stop();
  await stopBusyboxNode(ours?.node, ours?.workDir);
}

const ms = (value: number): string => (Number.isNaN(value) ? '—' : `${value.toFixed(0)} ms`);
const { stdout: buildahVersion } = await run(BUILDAH, ['--version']);
console.log(`bench:build — ${RUNS} rounds, three-stage Dockerfile, 10 steps (test/fixtures/builds/bench-three-stage), FROM busybox ${baseDigest}…`);
console.log('timed, spawn to exit: ours = the `tsctl build --progress plain` process against a single-node tsd over its unix API socket');
console.log('  (tsctl start-up, context walk and upload, the build in tsd, progress back);');
console.log(`  buildah = the \`buildah bud --layers --isolation oci --network none\` process (${buildahVersion.trim()}, ${DRIVER} storage, runc)`);
console.log('cold = both step caches emptied (ours: image rm + prune; buildah: rm --all, rmi --all, base pulled again), base image present;');
console.log('warm, 1 changed = src/main.txt edited; warm, unchanged = rebuild as is; CLI start-up only = `tsctl build --help` / `buildah --version`');
console.log('ours before build = spawn to tsd\'s "#0 building on" line: tsctl start-up, context walk, connecting, the header answered');
console.log(
  `load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; ${os.cpus().length} CPUs; node ${process.version}`,
);
console.log('');
console.log(
  `${'phase'.padEnd(19)}${'ours (median)'.padStart(14)}${'buildah (median)'.padStart(18)}${'ours/buildah'.padStart(14)}  ${'goal'.padEnd(22)}${'met'.padEnd(5)}${'ours before build'.padEnd(19)}ours steps`,
);
for (const phase of PHASES) {
  const a = median(times.ours[phase]);
  const b = median(times.buildah[phase]);
  const ratio = a / b;
  const met = phase === 'cold' ? ratio <= 1 : phase === 'warm, unchanged' ? a < 500 : undefined;
  console.log(
    `${phase.padEnd(19)}${ms(a).padStart(14)}${ms(b).padStart(18)}${(Number.isNaN(ratio) ? '—' : `${ratio.toFixed(2)}×`).padStart(14)}  ${GOALS[phase].padEnd(22)}${(met === undefined || Number.isNaN(ratio) ? '' : met ? 'yes' : 'NO').padEnd(5)}${ms(median(oursBeforeBuild[phase])).padEnd(19)}${[...oursSteps[phase]].join(', ') || '—'}`,
  );
}
if (stray.length > 0) {
  console.log(`\n${stray.length} unhandled rejection(s) during the run (figures above may be off):`);
  for (const reason of new Set(stray)) console.log(reason);
  process.exitCode = 1;
}
