// The MVCC key index: new keys are merged in lazily (see MvccState.keysInOrder); prefix ranges
// must still come back complete and in key order whatever the mix of writes, deletes, compactions
// and reads, and across a snapshot. Checked against a plain sorted model on a seeded random run.
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
