// The simulation must catch bugs: run it against deliberately broken variants.
import test from 'ava';
import { applyMutation, type Mutation } from './mutations.js';
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

// Mutation tests: break one rule inside the real core (patched on the prototype for the duration
// of the test, in this test file's own process) and expect the simulation to notice.
function firstFailureWith(mutation: Mutation, maxSeeds: number): { seed: number; failure: string } | undefined {
  const restore = applyMutation(mutation);
  try {
    for (let seed = 1; seed <= maxSeeds; seed++) {
      const r = runSeed({ seed });
      if (!r.ok) return { seed, failure: r.failure ?? '' };
    }
    return undefined;
  } finally {
    restore();
  }
}

test('mutation: granting votes without the log up-to-date check is caught', (t) => {
  const f = firstFailureWith('vote-ignores-log', 50);
  t.truthy(f, 'no seed in 1..50 caught it');
  t.log(f);
});

test('mutation: ReadIndex without confirming leadership is caught by the linearizability check', (t) => {
  const f = firstFailureWith('read-without-heartbeat', 300);
  t.truthy(f, 'no seed in 1..300 caught it');
  t.regex(f?.failure ?? '', /linearizable/);
});
