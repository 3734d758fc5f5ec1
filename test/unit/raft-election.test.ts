// Leader election: randomized timeouts, vote rules, pre-vote, check-quorum and the leader lease.
import test from 'ava';
import { MemoryStorage } from '../../control-plane/raft/core/memory-storage.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';
import type { Message } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

test('a single member elects itself and commits its no-op', (t) => {
  const net = new SyncNetwork(['n1']);
  net.tick('n1', 20);
  t.deepEqual(net.leaders(), ['n1']);
  const st = net.raft('n1').status();
  t.is(st.term, 2);
  t.is(st.commit, 2);
  net.raft('n1').propose(bytes('x'));
  net.drain();
  t.deepEqual(net.data('n1'), ['x']);
});

test('three members: randomized timeouts elect exactly one leader', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.tickAll(25);
  const leaders = net.leaders();
  t.is(leaders.length, 1);
  const [leader] = leaders;
  if (leader === undefined) return t.fail('no leader elected');
  const term = net.raft(leader).currentTerm;
  for (const id of ['n1', 'n2', 'n3']) {
    t.is(net.raft(id).currentTerm, term);
    t.is(net.raft(id).leader, leader);
  }
});

test('the election timeout is randomized within [electionTick, 2*electionTick)', (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    let r = 0;
    const values = [0.0, 0.999, 0.5];
    const node = new RaftNode({
      id: 'n1',
      storage: new MemoryStorage({ voters: ['n1', 'n2', 'n3'], learners: [] }),
      electionTick: 10,
      heartbeatTick: 1,
      preVote: false,
      checkQuorum: false,
      maxSizePerMsg: 1024,
      maxInflightMsgs: 4,
      snapshotChunkSize: 1024,
      applied: 0,
      random: () => values[r++ % 3] as number,
    });
    let ticks = 0;
    while (node.currentRole === 'follower') {
      node.tick();
      ticks++;
    }
    t.true(ticks >= 10 && ticks < 20, `campaigned after ${ticks} ticks`);
  }
});

test('a member votes at most once per term and remembers it across a restart', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
  const n3 = net.node('n3');
  const vote = (from: string, term: number): Message => ({ type: 'vote', from, to: 'n3', term, lastLogIndex: 1, lastLogTerm: 1, transfer: false });
  n3.raft.step(vote('n1', 5));
  const rd1 = n3.raft.ready();
  t.is(rd1.hardState?.vote, 'n1');
  t.false(rd1.messages.find((m) => m.type === 'vote-resp')?.type === 'vote-resp' && (rd1.messages[0] as { reject: boolean }).reject);
  n3.storage.setHardState(rd1.hardState as { term: number; vote: string; commit: number });
  n3.raft.advance(rd1);
  net.restart('n3');
  net.node('n3').raft.step(vote('n2', 5));
  const rd2 = net.node('n3').raft.ready();
  const resp = rd2.messages.find((m) => m.type === 'vote-resp');
  t.truthy(resp);
  t.true(resp?.type === 'vote-resp' && resp.reject);
});

test('a candidate with a shorter log cannot win', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false });
  net.elect('n1');
  net.isolate('n3');
  net.raft('n1').propose(bytes('a'));
  net.drain();
  net.heal();
  net.isolate('n1');
  // n3 misses the entry: n2 refuses it; n2 itself can win.
  net.elect('n3');
  t.not(net.raft('n3').currentRole, 'leader');
  // Whoever times out, only n2 (which holds the entry) can become leader.
  net.tick('n2', 1);
  for (let i = 0; i < 60 && net.raft('n2').currentRole !== 'leader'; i++) {
    net.raft('n2').tick();
    net.raft('n3').tick();
    net.drain();
  }
  t.is(net.raft('n2').currentRole, 'leader');
  t.not(net.raft('n3').currentRole, 'leader');
});

test('pre-vote: a partitioned member does not inflate its term or disrupt the leader on return', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const term = net.raft('n1').currentTerm;
  net.isolate('n3');
  net.tick('n3', 100);
  t.is(net.raft('n3').currentTerm, term, 'pre-vote never got a quorum, so no term bump');
  net.heal();
  net.tickAll(3);
  t.deepEqual(net.leaders(), ['n1']);
  t.is(net.raft('n1').currentTerm, term);
});

test('without pre-vote, the same partition inflates the term (contrast)', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
  net.elect('n1');
  const term = net.raft('n1').currentTerm;
  net.isolate('n3');
  net.tick('n3', 100);
  t.true(net.raft('n3').currentTerm > term);
});

test('check-quorum: an isolated leader steps down after an election timeout', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.isolate('n1');
  net.tick('n1', 10);
  t.is(net.raft('n1').currentRole, 'leader', 'first round: peers were active');
  net.tick('n1', 10);
  t.is(net.raft('n1').currentRole, 'follower');
});

test('lease: with check-quorum a follower that hears from its leader ignores a higher-term vote request', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const n2 = net.raft('n2');
  const term = n2.currentTerm;
  n2.step({ type: 'vote', from: 'n3', to: 'n2', term: term + 5, lastLogIndex: 100, lastLogTerm: term + 4, transfer: false });
  t.is(n2.currentTerm, term);
  t.is(n2.leader, 'n1');
  // ...but a transfer-initiated election is honoured.
  n2.step({ type: 'vote', from: 'n3', to: 'n2', term: term + 5, lastLogIndex: 100, lastLogTerm: term + 4, transfer: true });
  t.is(n2.currentTerm, term + 5);
});

test('a stale leader learns the new term from an append response and steps down', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.isolate('n1');
  net.tick('n2', 30);
  net.tick('n3', 30);
  const newLeader = net.leaders().find((id) => id !== 'n1');
  t.truthy(newLeader);
  t.is(net.raft('n1').currentRole, 'leader');
  net.heal();
  net.raft('n1').propose(bytes('stale'));
  net.drain();
  t.is(net.raft('n1').currentRole, 'follower');
  t.false(net.data('n2').includes('stale'));
});

test('rejected vote requests from a stale member do not hold back the election timer', (t) => {
  // n3 lags and keeps campaigning with ever higher terms; n1 must still time out and win.
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
  net.elect('n1');
  net.isolate('n3');
  net.raft('n1').propose(bytes('a'));
  net.drain();
  net.crash('n1');
  net.heal();
  net.restart('n1');
  let ticks = 0;
  while (net.raft('n1').currentRole !== 'leader' && ticks < 40) {
    // every 5 ticks, n3 campaigns again (it always loses: its log is behind)
    if (ticks % 5 === 0) net.raft('n3').campaignNow();
    net.raft('n1').tick();
    net.drain();
    ticks++;
  }
  t.true(net.raft('n1').currentRole === 'leader' || net.raft('n2').currentRole === 'leader', `no leader after ${ticks} ticks`);
});

/** Ticks every up member once at a time, draining messages after each round, until `done` or `max` rounds. */
function tickUntil(net: SyncNetwork, ids: string[], done: () => boolean, max: number): number {
  for (let round = 1; round <= max; round++) {
    for (const id of ids) net.tick(id);
    if (done()) return round;
  }
  return -1;
}

test('a leader reported down by its followers is replaced within a few ticks, the first survivor by id winning', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.raft('n1').campaignNow();
  net.drain();
  t.deepEqual(net.leaders(), ['n1']);
  const oldTerm = net.raft('n2').currentTerm;
  net.crash('n1');
  net.raft('n2').reportPeerDown('n1');
  net.raft('n3').reportPeerDown('n1');
  t.is(net.raft('n2').leader, '');
  // The election timeout is 10–19 ticks; the report makes n2 campaign after 1 and n3 after 3.
  const rounds = tickUntil(net, ['n2', 'n3'], () => net.leaders().length === 1, 10);
  t.true(rounds >= 1 && rounds <= 3, `new leader after ${rounds} ticks`);
  t.deepEqual(net.leaders(), ['n2']);
  t.is(net.raft('n3').leader, 'n2');
  t.is(net.raft('n2').currentTerm, oldTerm + 1);
});

test('a report about a leader that is alive disturbs nothing while the other follower still hears from it', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.raft('n1').campaignNow();
  net.drain();
  const term = net.raft('n1').currentTerm;
  net.raft('n3').reportPeerDown('n1');
  // n3 pre-campaigns after 3 ticks; n2 is in n1's lease and ignores it; n1's heartbeats bring n3 back.
  for (let i = 0; i < 30; i++) {
    net.tick('n1');
    net.tick('n2');
    net.tick('n3');
  }
  t.deepEqual(net.leaders(), ['n1']);
  for (const id of ['n1', 'n2', 'n3']) t.is(net.raft(id).currentTerm, term);
  t.is(net.raft('n3').leader, 'n1');
});

test('a report about a member that is not the leader, or on a leader, is ignored', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.raft('n1').campaignNow();
  net.drain();
  net.raft('n2').reportPeerDown('n3');
  net.raft('n1').reportPeerDown('n2');
  t.is(net.raft('n2').leader, 'n1');
  t.is(net.raft('n1').currentRole, 'leader');
  net.tickAll(5);
  t.deepEqual(net.leaders(), ['n1']);
});
