// The leader writes its log in parallel with replicating it (Raft thesis §10.2.1): its appends may
// leave before its own fsync (Ready.earlyMessages), so it must count itself toward commitment only
// for entries it has persisted (after advance()). Otherwise an entry could be committed, applied
// and acknowledged with one durable copy in a group of three. The last test patches the old rule
// (count own entries on append) into the core and shows the first test catches it.
import test, { type ExecutionContext } from 'ava';
import { MemoryStorage } from '../../control-plane/raft/core/memory-storage.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';
import type { Message, Ready } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

function persist(storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

/** Lets a follower handle messages and persist its answer; returns what it sends back. */
function follower(net: SyncNetwork, id: string, msgs: Message[]): Message[] {
  const n = net.node(id);
  for (const m of msgs) if (m.to === id) n.raft.step(m);
  const rd = n.raft.ready();
  persist(n.storage, rd);
  n.raft.advance(rd);
  return rd.messages;
}

/**
 * n1 leads n1..n3; a proposal's appends go out before n1 persists it and n2 acknowledges. Returns
 * n1's commit index at that point, the proposal's index and whether n1's log holds it durably.
 */
function ackBeforeLeaderFsync(): { commit: number; index: number; durableLast: number; leader: RaftNode; rd: Ready; storage: MemoryStorage } {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const leader = net.raft('n1');
  const { index } = leader.propose(bytes('x'));
  const rd = leader.ready();
  // n1 has NOT persisted rd yet; its early appends are already with the followers.
  const answers = follower(net, 'n2', rd.earlyMessages);
  for (const m of answers) if (m.to === 'n1') leader.step(m);
  return { commit: leader.status().commit, index, durableLast: net.node('n1').storage.lastIndex(), leader, rd, storage: net.node('n1').storage };
}

function assertLeaderWaitsForItsOwnFsync(t: ExecutionContext): void {
  const r = ackBeforeLeaderFsync();
  t.true(
    r.rd.entries.some((e) => e.index === r.index),
    'the proposal is in the Ready to persist',
  );
  t.true(r.durableLast < r.index, 'the leader has not persisted it');
  t.true(r.commit < r.index, `committed ${r.commit} with one durable copy of entry ${r.index} (n2's)`);
  // Once the leader's own write is durable, it counts: n1 + n2 is a majority.
  persist(r.storage, r.rd);
  r.leader.advance(r.rd);
  t.is(r.leader.status().commit, r.index);
  const next = r.leader.ready();
  t.true(next.committedEntries.some((e) => e.index === r.index));
}

test('a follower acknowledgement alone does not commit an entry the leader has not persisted', (t) => {
  assertLeaderWaitsForItsOwnFsync(t);
});

test('two followers acknowledging commits the entry before the leader persists it (majority durable)', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const leader = net.raft('n1');
  const { index } = leader.propose(bytes('x'));
  const rd = leader.ready();
  for (const id of ['n2', 'n3']) for (const m of follower(net, id, rd.earlyMessages)) if (m.to === 'n1') leader.step(m);
  t.is(leader.status().commit, index);
  t.true(net.node('n1').storage.lastIndex() < index);
});

test('only a leader’s appends, heartbeats and snapshot chunks may precede its fsync; answers never do', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.raft('n1').propose(bytes('x'));
  const rd = net.raft('n1').ready();
  t.true(rd.earlyMessages.length > 0);
  t.true(rd.earlyMessages.every((m) => rd.messages.includes(m) && ['append', 'heartbeat', 'snapshot'].includes(m.type)));
  // A follower's acknowledgement and a granted vote wait for the fsync.
  const n2 = net.node('n2');
  for (const m of rd.messages) if (m.to === 'n2') n2.raft.step(m);
  const frd = n2.raft.ready();
  t.true(frd.messages.some((m) => m.type === 'append-resp'));
  t.deepEqual(frd.earlyMessages, []);
});

test('a leader whose winning vote is not durable yet sends nothing early (single voter with a learner)', (t) => {
  const storage = new MemoryStorage({ voters: ['n1'], learners: ['n2'] });
  const node = new RaftNode({
    id: 'n1',
    storage,
    electionTick: 10,
    heartbeatTick: 1,
    preVote: true,
    checkQuorum: true,
    maxSizePerMsg: 1 << 20,
    maxInflightMsgs: 16,
    snapshotChunkSize: 1 << 20,
    applied: storage.snapshot().metadata.index,
    random: () => 0.5,
  });
  node.campaignNow();
  t.is(node.currentRole, 'leader');
  const rd = node.ready();
  t.truthy(rd.hardState);
  t.true(rd.messages.some((m) => m.type === 'append' && m.to === 'n2'));
  t.deepEqual(rd.earlyMessages, [], 'the term and vote are in this very Ready');
  // Nor is the no-op committed before it is durable, even though the leader is the only voter.
  t.deepEqual(rd.committedEntries, []);
  persist(storage, rd);
  node.advance(rd);
  const next = node.ready();
  t.true(next.committedEntries.length > 0);
  persist(storage, next);
  node.advance(next);
  node.tick();
  const third = node.ready();
  t.true(
    third.earlyMessages.some((m) => m.type === 'heartbeat' && m.to === 'n2'),
    'once the vote is durable, its messages may go early',
  );
});

// Mutation: the pre-§10.2.1 rule, where the leader counts an entry for itself as soon as it is
// appended. The first test must fail under it.
test('mutation: a leader counting its unpersisted entries is caught by the first test', (t) => {
  type Internals = {
    appendEntries: (ents: unknown[]) => void;
    prs: Map<string, { maybeUpdate(n: number): boolean }>;
    id: string;
    log: { lastIndex(): number };
    maybeCommit(): boolean;
  };
  const proto = RaftNode.prototype as unknown as Internals;
  const orig = proto.appendEntries;
  proto.appendEntries = function (this: Internals, ents: unknown[]) {
    orig.call(this, ents);
    this.prs.get(this.id)?.maybeUpdate(this.log.lastIndex());
    this.maybeCommit();
  };
  try {
    const r = ackBeforeLeaderFsync();
    t.true(r.commit >= r.index, 'under the mutation the entry commits with only n2 holding it durably');
  } finally {
    proto.appendEntries = orig;
  }
  // And the real core is back.
  const r = ackBeforeLeaderFsync();
  t.true(r.commit < r.index);
});
