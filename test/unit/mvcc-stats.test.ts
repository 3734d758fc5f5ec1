// MvccState.stats(): the live-key count and the size held are kept up to date by writes,
// deletes and compaction, and agree with a state rebuilt from the snapshot bytes.
import test from 'ava';

import { MvccState } from '../../control-plane/store/mvcc/mvcc-state.js';

const put = (key: string, value: string) => ({ compare: [], success: [{ type: 'put' as const, key, value }] });
const del = (key: string) => ({ compare: [], success: [{ type: 'delete' as const, key }] });

test('keys and size follow puts, deletes and compaction, and survive a snapshot round trip', (t) => {
  const s = new MvccState();
  t.deepEqual(s.stats(), { revision: 1, compactRevision: 0, keys: 0, sizeHeld: 0 });
  s.txn(put('a', 'xx'));
  s.txn(put('b', 'yyy'));
  s.txn(put('a', 'zzzz'));
  t.is(s.stats().keys, 2);
  t.is(s.stats().sizeHeld, 1 + 2 + (1 + 3) + (1 + 4));
  s.txn(del('b'));
  s.txn(del('b')); // deleting an absent key writes nothing
  t.is(s.stats().keys, 1);
  t.is(s.stats().sizeHeld, 3 + 4 + 5 + 1, 'the tombstone holds its key');
  const rebuilt = MvccState.deserialize(s.serialize());
  t.deepEqual(rebuilt.stats(), s.stats());
  s.compact(s.revision);
  // Left: a's newest version only; b's history (ending in a tombstone) is gone.
  t.deepEqual(s.stats(), { revision: 5, compactRevision: 5, keys: 1, sizeHeld: 5 });
  t.deepEqual(MvccState.deserialize(s.serialize()).stats(), s.stats());
  s.txn(put('b', 'w'));
  t.is(s.stats().keys, 2);
});
