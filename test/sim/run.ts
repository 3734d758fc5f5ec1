// CLI: `npm run sim -- --seeds 2000` runs seeds 1..2000 and prints a summary;
// `npm run sim -- --seed 1234 --verbose` replays one seed with a trace.
import { parseArgs } from 'node:util';
import { MUTATIONS, applyMutation, type Mutation } from './mutations.js';
import { runSeed, type SimOptions, type SimResult } from './simulation.js';

const SABOTAGES = ['none', 'forget-vote', 'stale-read', 'send-before-fsync'] as const;

function intArg(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`sim: --${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

export function summarize(results: SimResult[], wallMs: number): string {
  const sum = (f: (r: SimResult) => number): number => results.reduce((a, r) => a + f(r), 0);
  const failures = results.filter((r) => !r.ok);
  const rows: Array<[string, string]> = [
    ['seeds', String(results.length)],
    ['3-member / 5-member', `${results.filter((r) => r.members === 3).length} / ${results.filter((r) => r.members === 5).length}`],
    ['steps (events)', String(sum((r) => r.steps))],
    ['elections (terms with a leader)', String(sum((r) => r.elections))],
    ['commits (applied entries, max per seed summed)', String(sum((r) => r.commits))],
    ['client ops recorded (open-ended writes)', `${sum((r) => r.ops)} (${sum((r) => r.indeterminate)})`],
    ['snapshots sent / conf changes proposed', `${sum((r) => r.snapshotsSent)} / ${sum((r) => r.confChanges)}`],
    ['max time to elect after heal (virtual ms)', String(Math.max(0, ...results.map((r) => r.maxElectMs)))],
    ['failures', String(failures.length)],
    ['wall time (s)', (wallMs / 1000).toFixed(1)],
    ['seeds/second', (results.length / (wallMs / 1000)).toFixed(1)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  for (const f of failures.slice(0, 20))
    lines.push(`FAIL seed ${f.seed} at ${f.failureAtMs} ms: ${f.failure}  (replay: npm run sim -- --seed ${f.seed} --verbose)`);
  return lines.join('\n');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      from: { type: 'string' },
      seed: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      sabotage: { type: 'string' },
      mutate: { type: 'string' },
    },
    strict: true,
  });
  let sabotage: NonNullable<SimOptions['sabotage']> = 'none';
  if (values.sabotage !== undefined) {
    const s = SABOTAGES.find((x) => x === values.sabotage);
    if (!s) {
      console.error(`sim: --sabotage must be one of ${SABOTAGES.join(', ')}, got ${JSON.stringify(values.sabotage)}`);
      process.exit(2);
    }
    sabotage = s;
  }
  if (values.mutate !== undefined) {
    const m = MUTATIONS.find((x) => x === values.mutate);
    if (!m) {
      console.error(`sim: --mutate must be one of ${MUTATIONS.join(', ')}, got ${JSON.stringify(values.mutate)}`);
      process.exit(2);
    }
    applyMutation(m as Mutation);
  }
  if (values.seed !== undefined) {
    const seed = intArg('seed', values.seed, 1);
    const r = runSeed({ seed, verbose: values.verbose, sabotage });
    console.log(JSON.stringify(r, null, 2));
    process.exit(r.ok ? 0 : 1);
  }
  const count = intArg('seeds', values.seeds, 200);
  const from = intArg('from', values.from, 1);
  const t0 = performance.now();
  const results: SimResult[] = [];
  for (let s = from; s < from + count; s++) results.push(runSeed({ seed: s, verbose: false, sabotage }));
  console.log(summarize(results, performance.now() - t0));
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

main();
