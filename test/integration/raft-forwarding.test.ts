// Writes a follower forwards to the leader inside its stream of Raft batches (no call of their
// own): they resolve with the follower's own apply result, survive the leader stopping (retried
// only when they certainly did not happen, so never applied twice), and forwarded proposals from
// the network are validated. Real 3-member groups in this process, real gRPC streams and WALs.
import test from 'ava';

import { wrapForwarded, unwrapEntry } from '../../control-plane/raft/host/forwarded-entry.js';
import { startLocalGroup } from '../../control-plane/raft/host/local-group.js';
import { checkProposal, type WireProposal } from '../../control-plane/raft/transport/wire.js';

test('forwarded entry envelope round-trips; plain data passes through', (t) => {
  const payload = new TextEncoder().encode('{"op":"compact","revision":1}');
  const wrapped = wrapForwarded('m1.abc.7', payload);
  const { id, payload: back } = unwrapEntry(wrapped);
  t.is(id, 'm1.abc.7');
  t.deepEqual([...back], [...payload]);
  t.deepEqual(unwrapEntry(payload), { id: undefined, payload });
});

test('forwarded proposals from the network are validated, naming what is wrong', (t) => {
  const ok: WireProposal = { id: 'm1.x.1', term: 3, data: new Uint8Array([123]) };
  t.deepEqual(checkProposal(ok, 'm1'), ok);
  t.throws(() => checkProposal({ ...ok, id: '' }, 'm1'), { message: /m1: forwarded proposal id "" is not a non-empty string/ });
  t.throws(() => checkProposal({ ...ok, term: 0 }, 'm1'), { message: /forwarded proposal m1.x.1 has term 0/ });
  t.throws(() => checkProposal({ ...ok, data: new Uint8Array() }, 'm1'), { message: /forwarded proposal m1.x.1 has no data/ });
});

test('many concurrent writes through a follower each resolve with their own revision', async (t) => {
  const g = await startLocalGroup(3);
  t.teardown(() => g.stop());
  const leader = await g.leader();
  const follower = g.stores.find((s) => s !== leader)!;
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => follower.put(`/fwd/${i}`, `v${i}`)));
  const revisions = results.map((r) => r.revision);
  t.is(new Set(revisions).size, 100, 'every write got a revision of its own');
  // Applied on the follower before it answered: a local read of its state sees all of them.
  const all = await follower.range('/fwd/');
  t.is(all.kvs.length, 100);
  // And a conflicting compare-and-swap through the follower gets the follower's own (failed) result.
  const txn = await follower.txn({ compare: [{ key: '/fwd/0', target: 'version', op: '=', value: 5 }], success: [{ type: 'put', key: '/fwd/0', value: 'x' }] });
  t.false(txn.succeeded);
});

test('writes through a follower survive the leader stopping: applied exactly once', async (t) => {
  const g = await startLocalGroup(3);
  t.teardown(() => g.stop());
  const leader = await g.leader();
  const follower = g.stores.find((s) => s !== leader)!;
  const writes = Array.from({ length: 30 }, (_, i) => follower.put(`/survive/${i}`, 'v'));
  await new Promise((r) => setTimeout(r, 2));
  await leader.close();
  const settled = await Promise.allSettled(writes);
  const failed = settled.filter((s) => s.status === 'rejected').map((s) => String((s as PromiseRejectedResult).reason));
  t.deepEqual(failed, [], 'a write whose forward was lost is sent again to the new leader');
  const survivors = g.stores.filter((s) => s !== leader);
  const kvs = (await survivors[0]!.range('/survive/')).kvs;
  t.is(kvs.length, 30);
  for (const kv of kvs) t.is(kv.version, 1, `${kv.key} was applied once`);
});
