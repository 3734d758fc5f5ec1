// Deterministic Raft simulation, seeds 1001..2000 (see test/sim/README.md). Together with
// the other sim-seeds file: 2,000 seeds per CI run.
import test from 'ava';
import { runBatch } from './batch.js';

for (let chunk = 0; chunk < 4; chunk++) {
  const from = 1001 + chunk * 250;
  test(`seeds ${from}..${from + 249}: safety invariants, linearizable history, liveness after heal`, (t) => {
    const results = runBatch(t, from, 250);
    t.true(results.reduce((a, r) => a + r.commits, 0) > 0);
  });
}
