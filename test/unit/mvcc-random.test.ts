// Seeded random runs of the MVCC state against what it must keep: prefix ranges complete and in
// key order (new keys are merged into the index lazily, see MvccState.keysInOrder), and a snapshot
// (whose log names events the history reproduces instead of repeating them) that restores the
// very watch history, through puts, multi-key txns, deletes, prefix deletes and compactions.
import test from 'ava';

import { MvccState } from '../../control-plane/store/mvcc/mvcc-state.js';

function prng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x80000000;
  };
}

test('prefix ranges stay complete and sorted while keys come and go in random order', (t) => {
  const rand = prng(7);
  let s = new MvccState();
  const model = new Map<string, string>();
  const prefixes = ['/a/', '/b/', '/a/x', '/', '/c'];
  for (let step = 0; step < 4000; step++) {
    const key = `/${'abc'[Math.floor(rand() * 3)]}/${Math.floor(rand() * 500).toString(36)}`;
    const roll = rand();
    if (roll < 0.6) {
      const value = String(step);
      s.txn({ compare: [], success: [{ type: 'put', key, value }], failure: [] });
      model.set(key, value);
    } else if (roll < 0.75) {
      s.txn({ compare: [], success: [{ type: 'delete', key }], failure: [] });
      model.delete(key);
    } else if (roll < 0.77) {
      s.compact(Math.max(s.compactRevision, s.revision - Math.floor(rand() * 20)));
    } else if (roll < 0.78) {
      s = MvccState.deserialize(s.serialize());
    } else {
      const prefix = prefixes[Math.floor(rand() * prefixes.length)] as string;
      const got = s.range(prefix).kvs.map((kv) => [kv.key, kv.value]);
      const want = [...model].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.fail(`step ${step}: range ${prefix} differs from the model`);
        return;
      }
    }
  }
  t.pass();
});

test('a snapshot restores the watch history event for event, compactions included', (t) => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = prng(seed);
    const s = new MvccState();
    const key = () => `/${'ab'[Math.floor(rand() * 2)]}/${Math.floor(rand() * 40)}`;
    for (let step = 0; step < 3000; step++) {
      const roll = rand();
      if (roll < 0.5) s.txn({ compare: [], success: [{ type: 'put', key: key(), value: `v${step}` }], failure: [] });
      else if (roll < 0.6) {
        const [a, b] = [key(), key()];
        if (a !== b)
          s.txn({
            compare: [],
            success: [
              { type: 'put', key: a, value: `x${step}` },
              { type: 'put', key: b, value: `y${step}` },
            ],
            failure: [],
          });
      } else if (roll < 0.8) s.txn({ compare: [], success: [{ type: 'delete', key: key() }], failure: [] });
      else if (roll < 0.83) s.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: `/${'ab'[Math.floor(rand() * 2)]}/1` }], failure: [] });
      else if (roll < 0.85) s.compact(Math.max(s.compactRevision, s.revision - Math.floor(rand() * 30)));
    }
    const bytes = s.serialize();
    const restored = MvccState.deserialize(bytes);
    t.deepEqual(restored.historyFrom('/', s.compactRevision), s.historyFrom('/', s.compactRevision), `seed ${seed}`);
    t.deepEqual(restored.range('/').kvs, s.range('/').kvs);
    t.true(Buffer.from(restored.serialize()).equals(Buffer.from(bytes)), `seed ${seed}: a restored state writes the same snapshot`);
  }
});

test('a version 1 snapshot (every log entry whole) is still read; a log that contradicts the history is refused by name', (t) => {
  const s = new MvccState();
  s.txn({ compare: [], success: [{ type: 'put', key: '/k', value: '1' }], failure: [] });
  s.txn({ compare: [], success: [{ type: 'put', key: '/k', value: '2' }], failure: [] });
  s.txn({ compare: [], success: [{ type: 'delete', key: '/k' }], failure: [] });
  const v2 = JSON.parse(Buffer.from(s.serialize()).toString()) as { v: number; log: unknown[] };
  t.is(v2.v, 2);
  t.true(
    v2.log.every((e) => Array.isArray(e)),
    'every entry in the short form here',
  );
  const v1 = { ...v2, v: 1, log: s.historyFrom('/', 0) };
  t.deepEqual(MvccState.deserialize(Buffer.from(JSON.stringify(v1))).historyFrom('/', 0), s.historyFrom('/', 0));
  const bad = { ...v2, log: [[4, [['p', '/k']]]] };
  t.throws(() => MvccState.deserialize(Buffer.from(JSON.stringify(bad))), { message: /revision 4 has a "p" of "\/k" that its history contradicts/ });
  const missing = { ...v2, log: [[2, [['p', '/nope']]]] };
  t.throws(() => MvccState.deserialize(Buffer.from(JSON.stringify(missing))), { message: /revision 2 names "\/nope", which has no version there/ });
});
