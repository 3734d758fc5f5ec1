// Shared by the ava files that run seed batches (split so two workers share the load).
import type { ExecutionContext } from 'ava';
import { runSeed, type SimResult } from './simulation.js';

export function runBatch(t: ExecutionContext, from: number, count: number): SimResult[] {
  const results: SimResult[] = [];
  for (let s = from; s < from + count; s++) results.push(runSeed({ seed: s }));
  const failed = results.filter((r) => !r.ok);
  for (const f of failed) t.log(`seed ${f.seed}: ${f.failure} — replay: npm run sim -- --seed ${f.seed} --verbose`);
  t.is(failed.length, 0, `${failed.length} of ${count} seeds failed`);
  return results;
}
