// npm run bench:build — our image builder against Debian's buildah, in the same run, on one
// three-stage Dockerfile of ten steps (test/fixtures/builds/bench-three-stage). Three phases, each
// timed for both builders, interleaved (the order alternates per round):
//   cold             empty step caches; the base image (busybox) already in the builder's store
//   warm, 1 changed  right after, src/main.txt edited: the steps from its COPY on run again
//   warm, unchanged  right after, nothing changed: every step from the cache
// What is timed: for ours, BuildExecutor.build() in-process (plan, steps, layers, commit into the
// image store) — not the context upload, since the executor is handed a context on disk; for
// buildah, the whole `buildah bud --layers --isolation oci --network none` process, overlay storage
// (BENCH_BUILDAH_DRIVER=vfs for vfs; its process start, ~tens of ms, is in its figures). Not timed: emptying the caches and putting
// the base image back before each cold build. Medians over BENCH_RUNS rounds (default 5). The
// machine is shared: its load average is printed with the table, and only ratios within one run
// mean anything.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildahOracle, buildahInstalled, startBuildah } from '../helpers/buildah.js';
import { type OurBuilder, loadOurBuilder, startOurBuilder } from '../helpers/our-builder.js';
import { median } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/** buildah's storage driver: overlay by default (as installed buildah uses, and as our steps are), vfs on request. */
const DRIVER = process.env.BENCH_BUILDAH_DRIVER === 'vfs' ? 'vfs' : 'overlay';
const FIXTURE = fileURLToPath(new URL('../fixtures/builds/bench-three-stage/', import.meta.url));
const PHASES = ['cold', 'warm, 1 changed', 'warm, unchanged'] as const;
type Phase = (typeof PHASES)[number];

if (!buildahInstalled()) {
  console.error('bench:build: /usr/bin/buildah is missing (deploy/install-deps.sh installs it)');
  process.exit(1);
}

// A stray rejection (a builder's background work failing) would end the process before the
// cleanup below runs: record it, say so with the figures, and exit non-zero.
const stray: string[] = [];
process.on('unhandledRejection', (reason) => {
  stray.push(reason instanceof Error ? (reason.stack ?? reason.message) : String(reason));
});

const loaded = await loadOurBuilder();
const work = await mkdtemp(join(tmpdir(), 'tessera-bench-build-'));
let oracle: BuildahOracle | undefined;
let ours: OurBuilder | undefined;
const times: Record<'ours' | 'buildah', Record<Phase, number[]>> = {
  ours: { cold: [], 'warm, 1 changed': [], 'warm, unchanged': [] },
  buildah: { cold: [], 'warm, 1 changed': [], 'warm, unchanged': [] },
};
const oursSteps: Record<Phase, string[]> = { cold: [], 'warm, 1 changed': [], 'warm, unchanged': [] };
const loadBefore = os.loadavg();
try {
  oracle = await startBuildah({ storageDriver: DRIVER });
  if ('executor' in loaded) ours = await startOurBuilder(loaded.executor);
  const context = join(work, 'context');
  await cp(FIXTURE, context, { recursive: true });
  const tag = 'bench-build:1';

  const buildah = async (phase: Phase): Promise<void> => {
    if (oracle === undefined) throw new Error('buildah oracle did not start');
    const result = await oracle.build({ context, tag });
    if (!result.ok) throw new Error(`buildah failed (${phase}): ${result.output}`);
    times.buildah[phase].push(result.durationMs);
  };
  const ourBuild = async (phase: Phase): Promise<void> => {
    if (ours === undefined) return;
    const result = await ours.build({ context, tag });
    if (!result.ok) throw new Error(`ours failed (${phase}): ${result.message}`);
    times.ours[phase].push(result.durationMs);
    oursSteps[phase].push(`${result.result.ranSteps} ran/${result.result.cachedSteps} cached`);
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
  await ours?.build({ context, tag });
  await oracle.build({ context, tag });
  for (let round = 0; round < RUNS; round++) {
    await writeFile(join(context, 'src', 'main.txt'), 'main 0\n');
    await ours?.clearCache();
    await oracle.clearCache();
    await both(round, 'cold');
    await writeFile(join(context, 'src', 'main.txt'), `main ${round + 1}\n`);
    await both(round, 'warm, 1 changed');
    await both(round, 'warm, unchanged');
    process.stderr.write(`round ${round + 1}/${RUNS} done\n`);
  }
} finally {
  await ours?.stop();
  await oracle?.stop();
  await rm(work, { recursive: true, force: true });
}

const ms = (value: number): string => (Number.isNaN(value) ? '—' : `${value.toFixed(0)} ms`);
console.log(`bench:build — ${RUNS} rounds, three-stage Dockerfile, 10 steps (test/fixtures/builds/bench-three-stage)`);
console.log(`timed: ours = BuildExecutor.build() in-process; buildah = the \`buildah bud --layers\` process (${DRIVER} storage, oci isolation, runc)`);
console.log('cold = empty step cache, base image present; warm, 1 changed = src/main.txt edited; warm, unchanged = rebuild as is');
console.log(
  `load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; ${os.cpus().length} CPUs`,
);
if ('unavailable' in loaded) console.log(`ours: NOT MEASURED — ${loaded.unavailable}`);
console.log('');
console.log(`${'phase'.padEnd(18)}${'ours (median)'.padStart(15)}${'buildah (median)'.padStart(18)}${'ours/buildah'.padStart(14)}  ours steps`);
for (const phase of PHASES) {
  const a = median(times.ours[phase]);
  const b = median(times.buildah[phase]);
  const ratio = Number.isNaN(a) || Number.isNaN(b) ? '—' : `${(a / b).toFixed(2)}×`;
  console.log(`${phase.padEnd(18)}${ms(a).padStart(15)}${ms(b).padStart(18)}${ratio.padStart(14)}  ${[...new Set(oursSteps[phase])].join(', ') || '—'}`);
}
if (stray.length > 0) {
  console.log(`\n${stray.length} unhandled rejection(s) during the run (figures above may be off):`);
  for (const reason of new Set(stray)) console.log(reason);
  process.exitCode = 1;
}
