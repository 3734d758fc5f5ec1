// Malformed peer messages are refused with a message naming the field, and change nothing.
import test from 'ava';
import type { Message } from '../../control-plane/raft/core/types.js';
import { SyncNetwork } from '../sim/sync-network.js';

test('malformed messages are rejected before they touch state', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const n2 = net.raft('n2');
  const before = n2.status();
  const bad = [
    { type: 'vote', from: 'n3', to: 'n2', term: -1, lastLogIndex: 0, lastLogTerm: 0, transfer: false },
    {
      type: 'append',
      from: 'n1',
      to: 'n2',
      term: before.term,
      prevIndex: 2,
      prevTerm: 2,
      commit: 2,
      entries: [{ index: 5, term: 2, type: 'normal', data: new Uint8Array() }],
    },
    {
      type: 'append',
      from: 'n1',
      to: 'n2',
      term: before.term,
      prevIndex: 2,
      prevTerm: 2,
      commit: 2,
      entries: [{ index: 3, term: 99, type: 'normal', data: new Uint8Array() }],
    },
    { type: 'bogus', from: 'n1', to: 'n2', term: 1 },
    {
      type: 'snapshot',
      from: 'n1',
      to: 'n2',
      term: before.term,
      metadata: { index: 9, term: 2, confState: { voters: [], learners: [] } },
      offset: 10,
      totalBytes: 5,
      data: new Uint8Array(),
      done: true,
    },
  ];
  const reasons = [/term must be/, /entry index 5 where 3/, /outside/, /unknown type/, /offset\/totalBytes/];
  bad.forEach((m, i) => {
    t.throws(() => n2.step(m as unknown as Message), { message: reasons[i] as RegExp });
  });
  t.deepEqual(n2.status(), before);
  t.throws(() => n2.step({ type: 'heartbeat-resp', from: 'n1', to: 'n3', term: 1, context: '' }), { message: /for n3 delivered to n2/ });
});

test('configuration is validated', async (t) => {
  const { RaftNode } = await import('../../control-plane/raft/core/raft-node.js');
  const { MemoryStorage } = await import('../../control-plane/raft/core/memory-storage.js');
  const base = {
    id: 'n1',
    storage: new MemoryStorage({ voters: ['n1'], learners: [] }),
    electionTick: 10,
    heartbeatTick: 1,
    preVote: true,
    checkQuorum: true,
    maxSizePerMsg: 1024,
    maxInflightMsgs: 4,
    snapshotChunkSize: 1024,
    applied: 0,
    random: () => 0.5,
  };
  t.throws(() => new RaftNode({ ...base, electionTick: 1 }), { message: /electionTick must be an integer > heartbeatTick/ });
  t.throws(() => new RaftNode({ ...base, id: '' }), { message: /id must be/ });
  t.throws(() => new RaftNode({ ...base, applied: 7 }), { message: /applied index 7 is beyond the commit index/ });
});
