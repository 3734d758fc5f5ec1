// Auto-compaction keeps the newest N revisions: checked as a pure rule, then against the memory
// store and a real one-member Raft group (real WAL on disk), where a replayed watch below the
// kept window must fail with CompactedError while one inside it still replays.
import test, { type ExecutionContext } from 'ava';

import { startLocalGroup } from '../../control-plane/raft/host/local-group.js';
import { AutoCompactor, compactionTarget } from '../../control-plane/store/auto-compaction.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { CompactedError, type Store } from '../../control-plane/store/store.js';

test('compactionTarget keeps the newest revisions and never goes backwards', (t) => {
  t.is(compactionTarget(100, 0, 10), 90);
  t.is(compactionTarget(100, 90, 10), undefined);
  t.is(compactionTarget(5, 0, 10), undefined);
  t.is(compactionTarget(100, 0, 0), undefined, '0 keeps all history');
});

async function writeRevisions(store: Store, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await store.put(`/k/${i % 7}`, `v${i}`);
}

async function checkCompacts(t: ExecutionContext, store: Store): Promise<void> {
  const logged: string[] = [];
  const compactor = new AutoCompactor(store, { retainRevisions: 20, checkEveryMs: 60_000, log: (l) => logged.push(l) });
  await writeRevisions(store, 60);
  const current = await store.currentRevision();
  await compactor.runOnce();
  await t.throwsAsync(store.range('/k/', { revision: current - 25 }), { instanceOf: CompactedError });
  const kept = await store.range('/k/', { revision: current - 20 });
  t.is(kept.kvs.length, 7, 'a read at the oldest kept revision still sees every key');
  const replayed: number[] = [];
  let caughtUp!: () => void;
  const done = new Promise<void>((resolve) => (caughtUp = resolve));
  const watch = await store.watch('/k/', current - 5, (_events, revision) => {
    replayed.push(revision);
    if (revision === current) caughtUp();
  });
  await done;
  watch.cancel();
  t.deepEqual(replayed, [current - 5, current - 4, current - 3, current - 2, current - 1, current]);
  await compactor.runOnce();
  t.deepEqual(logged, [], 'a second check with nothing new to drop does nothing');
  // A manager that lost leadership and comes back finds history compacted further by another: it adopts that point.
  await writeRevisions(store, 30);
  await store.compact((await store.currentRevision()) - 5);
  await compactor.runOnce();
  t.deepEqual(logged, []);
}

test('memory store: history older than the kept window is compacted', async (t) => {
  const store = new MemoryStore();
  try {
    await checkCompacts(t, store);
  } finally {
    await store.close();
  }
});

test('raft store (one member, real WAL): history older than the kept window is compacted', async (t) => {
  const group = await startLocalGroup(1);
  try {
    await checkCompacts(t, group.stores[0]!);
  } finally {
    await group.stop();
  }
});
