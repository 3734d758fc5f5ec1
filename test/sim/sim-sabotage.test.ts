// The simulation must catch bugs: run it against deliberately broken variants.
import test from 'ava';
import { RaftLog } from '../../control-plane/raft/core/raft-log.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';
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

function firstFailureWith(patch: () => () => void, maxSeeds: number): { seed: number; failure: string } | undefined {
  const restore = patch();
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
  const f = firstFailureWith(() => {
    const orig = RaftLog.prototype.isUpToDate;
    RaftLog.prototype.isUpToDate = () => true;
    return () => {
      RaftLog.prototype.isUpToDate = orig;
    };
  }, 50);
  t.truthy(f, 'no seed in 1..50 caught it');
  t.log(f);
});

test('mutation: ReadIndex without confirming leadership is caught by the linearizability check', (t) => {
  type Internals = { handleReadIndex: (ctx: string, from: string) => void; releaseRead: (r: unknown) => void; log: RaftLog };
  const proto = RaftNode.prototype as unknown as Internals;
  const f = firstFailureWith(() => {
    const orig = proto.handleReadIndex;
    proto.handleReadIndex = function (this: Internals, context: string, from: string) {
      this.releaseRead({ context, index: this.log.committed, from });
    };
    return () => {
      proto.handleReadIndex = orig;
    };
  }, 300);
  t.truthy(f, 'no seed in 1..300 caught it');
  t.regex(f?.failure ?? '', /linearizable/);
});
