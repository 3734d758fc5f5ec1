// Pure pieces of the Raft store (no processes, no network): the replicated command codec refuses
// malformed input naming the field, the state machine's snapshot restores exactly, and the peer
// message wire codec round-trips every message type and refuses malformed ones.
import test from 'ava';

import type { Message } from '../../control-plane/raft/core/index.js';
import { fromWire, toWire } from '../../control-plane/raft/transport/wire.js';
import { decodeCommand, encodeCommand } from '../../control-plane/store/mvcc/commands.js';
import { ReplicatedState } from '../../control-plane/store/mvcc/replicated-state.js';
import { CompactedError } from '../../control-plane/store/store.js';

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

test('store commands: malformed input is refused naming what is wrong', (t) => {
  t.throws(() => decodeCommand(new TextEncoder().encode('{')), { message: /store command: not JSON/ });
  t.throws(() => decodeCommand(enc({ op: 'nope' })), { message: /unknown op "nope"/ });
  t.throws(() => decodeCommand(enc({ op: 'txn', txn: { compare: [], success: [{ type: 'put', key: 1 }] } })), {
    message: /success\[0\]: put needs string key and value/,
  });
  t.throws(() => decodeCommand(enc({ op: 'txn', txn: { compare: [{ key: 'a', target: 'size', op: '=', value: 1 }], success: [] } })), {
    message: /compare\[0\]\.target "size" is unknown/,
  });
  t.throws(() => decodeCommand(enc({ op: 'compact', revision: -1 })), { message: /compact revision/ });
  t.throws(() => decodeCommand(enc({ op: 'member', id: '', address: 'x:1' })), { message: /member needs non-empty id/ });
  const ok = { op: 'txn' as const, txn: { compare: [], success: [{ type: 'put' as const, key: '/a', value: '1' }], failure: [] } };
  t.deepEqual(decodeCommand(encodeCommand(ok)), ok);
});

test('replicated state: a snapshot restores revisions, history, compaction and members exactly', (t) => {
  const a = new ReplicatedState(
    () => {},
    () => {},
  );
  const apply = (c: Parameters<typeof encodeCommand>[0], index: number) => a.apply({ term: 1, index, type: 'normal', data: encodeCommand(c) });
  apply({ op: 'member', id: 'm0', address: '10.0.0.1:7420' }, 2);
  for (let i = 0; i < 5; i++) apply({ op: 'txn', txn: { compare: [], success: [{ type: 'put', key: `/k${i % 2}`, value: String(i) }] } }, 3 + i);
  apply({ op: 'compact', revision: 3 }, 9);
  const bad = apply({ op: 'compact', revision: 2 }, 10);
  t.true('error' in bad, 'compacting below the compacted revision is an error result, not a crash');
  const b = new ReplicatedState(
    () => {},
    () => {},
  );
  b.restore(a.snapshot());
  t.deepEqual(b.members, a.members);
  t.is(b.mvcc.revision, a.mvcc.revision);
  t.deepEqual(b.mvcc.range('/k', 4), a.mvcc.range('/k', 4));
  t.throws(() => b.mvcc.range('/k', 2), { instanceOf: CompactedError });
  t.deepEqual(b.mvcc.historyFrom('/', 3), a.mvcc.historyFrom('/', 3));
  t.throws(() => b.restore(new Uint8Array([0, 0, 0, 9, 1])), { message: /members section of 9 bytes overruns/ });
});

test('replicated state: a snapshot made in the background is the state when it began, whatever is applied and compacted meanwhile', async (t) => {
  const a = new ReplicatedState(
    () => {},
    () => {},
  );
  let index = 1;
  const apply = (c: Parameters<typeof encodeCommand>[0]) => a.apply({ term: 1, index: ++index, type: 'normal', data: encodeCommand(c) });
  apply({ op: 'member', id: 'm0', address: '10.0.0.1:7420' });
  for (let i = 0; i < 20_000; i++) apply({ op: 'txn', txn: { compare: [], success: [{ type: 'put', key: `/k/${i % 3000}`, value: 'v'.repeat(100) }] } });
  const expected = a.snapshot();
  const pending = a.snapshotInBackground();
  let turns = 0;
  // Meanwhile, turn by turn: new keys, new versions of old ones, a deletion, a compaction, a member.
  const busy = (async () => {
    for (let i = 0; !(await Promise.race([pending.then(() => true), new Promise<false>((r) => setImmediate(() => r(false)))])); i++) {
      turns++;
      apply({ op: 'txn', txn: { compare: [], success: [{ type: 'put', key: `/k/${i % 5000}`, value: 'new' }] } });
      if (i === 3) apply({ op: 'txn', txn: { compare: [], success: [{ type: 'delete', key: '/k/7' }] } });
      if (i === 5) apply({ op: 'compact', revision: a.mvcc.revision - 5 });
      if (i === 6) apply({ op: 'member', id: 'm1', address: '10.0.0.2:7420' });
    }
  })();
  const got = await pending;
  await busy;
  t.true(turns > 1, `the snapshot let ${turns} turns of the event loop run while it was written`);
  t.true(Buffer.from(got).equals(Buffer.from(expected)), 'same bytes as a snapshot taken at once when it began');
});

test('wire codec: every message type round-trips; malformed ones are refused', (t) => {
  const base = { from: 'a', to: 'b', term: 3 };
  const messages: Message[] = [
    { ...base, type: 'vote', lastLogIndex: 5, lastLogTerm: 2, transfer: false },
    { ...base, type: 'pre-vote-resp', reject: true },
    { ...base, type: 'append', prevIndex: 4, prevTerm: 2, commit: 4, entries: [{ term: 3, index: 5, type: 'normal', data: new Uint8Array([1, 2]) }] },
    { ...base, type: 'append-resp', reject: true, index: 4, rejectHintIndex: 3, rejectHintTerm: 1 },
    { ...base, type: 'heartbeat', commit: 7, context: 'r1' },
    { ...base, type: 'heartbeat-resp', context: 'r1' },
    { ...base, type: 'read-index', context: 'x' },
    { ...base, type: 'read-index-resp', context: 'x', index: 9, reject: false },
    {
      ...base,
      type: 'snapshot',
      metadata: { index: 10, term: 2, confState: { voters: ['a', 'b'], learners: [] } },
      offset: 0,
      totalBytes: 3,
      data: new Uint8Array([7, 8, 9]),
      done: true,
    },
    { ...base, type: 'snapshot-resp', index: 10, nextOffset: 3, reject: false },
    { ...base, type: 'timeout-now' },
  ];
  for (const m of messages) t.deepEqual(fromWire(toWire(m)), m, m.type);
  const append = toWire(messages[2]!);
  t.throws(() => fromWire({ ...append, entries: [{ term: 3, index: 9, type: 'normal', data: new Uint8Array() }] }), {
    message: /entry index 9 where 5 was expected/,
  });
  t.throws(() => fromWire({ ...toWire(messages[0]!), type: 'gossip' }), { message: /unknown type "gossip"/ });
  t.throws(() => fromWire({ ...toWire(messages[8]!), metadata: null }), { message: /metadata missing/ });
});
