// The simulation must catch bugs: run it against deliberately broken variants.
import test from 'ava';
import { runSeed, type SimOptions } from './simulation.js';

function firstFailure(sabotage: NonNullable<SimOptions['sabotage']>, maxSeeds: number): { seed: number; failure: string } | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSeed({ seed, sabotage });
    if (!r.ok) return { seed, failure: r.failure ?? '' };
  }
  return undefined;
}

test('stale reads are caught by the linearizability checker', (t) => {
  const f = firstFailure('stale-read', 5);
  t.truthy(f);
  t.regex(f?.failure ?? '', /not linearizable/);
});

test('forgetting the vote across a crash is caught (election safety)', (t) => {
  const f = firstFailure('forget-vote', 400);
  t.truthy(f, 'no seed in 1..400 caught it');
  t.log(f);
});

test('sending messages before the Ready is durable is caught', (t) => {
  const f = firstFailure('send-before-fsync', 400);
  t.truthy(f, 'no seed in 1..400 caught it');
  t.log(f);
});
