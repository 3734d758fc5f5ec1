// Membership changes one server at a time: the safety rules (entry of the term committed first, one
// change in flight), learners that catch up before promotion, and removing the leader.
import test from 'ava';
import { ProposalDroppedError } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

test('a learner receives the log but does not count towards the quorum or campaign', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.addJoiner('n4');
  net.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
  net.drain();
  net.raft('n1').propose(bytes('a'));
  net.drain();
  net.tickAll(1);
  t.deepEqual(net.data('n4'), ['a']);
  t.deepEqual(net.raft('n4').confState(), { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  // With n2 and n3 gone the learner cannot help commit.
  net.crash('n2');
  net.crash('n3');
  const { index } = net.raft('n1').propose(bytes('b'));
  net.drain();
  t.true(net.raft('n1').status().commit < index);
  // A learner never campaigns.
  net.isolate('n4');
  net.tick('n4', 100);
  t.is(net.raft('n4').currentRole, 'follower');
});

test('a learner is promoted only once caught up', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.addJoiner('n4');
  net.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
  net.drain();
  net.tickAll(1);
  // Make n4 lag.
  net.isolate('n4');
  net.raft('n1').propose(bytes('x'));
  net.drain();
  net.tickAll(1);
  const err = t.throws(() => net.raft('n1').proposeConfChange({ type: 'add-voter', nodeId: 'n4' }), { instanceOf: ProposalDroppedError });
  t.regex(err.message, /not caught up/);
  net.heal();
  net.tickAll(2);
  net.raft('n1').proposeConfChange({ type: 'add-voter', nodeId: 'n4' });
  net.drain();
  net.tickAll(1);
  for (const id of ['n1', 'n2', 'n3', 'n4']) t.deepEqual(net.raft(id).confState(), { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] });
});

test('only one configuration change may be uncommitted at a time', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.isolate('n1');
  net.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
  net.drain();
  const err = t.throws(() => net.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n5' }), { instanceOf: ProposalDroppedError });
  t.regex(err.message, /still uncommitted/);
});

test('a new leader proposes no change before an entry of its term is committed', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  // n1 wins but its no-op cannot commit: the responses are lost.
  net.filter = (m) => m.type !== 'append-resp';
  net.elect('n1');
  t.is(net.raft('n1').currentRole, 'leader');
  const err = t.throws(() => net.raft('n1').proposeConfChange({ type: 'remove-node', nodeId: 'n3' }), { instanceOf: ProposalDroppedError });
  t.regex(err.message, /entry of this term/);
  net.filter = () => true;
  net.tickAll(1);
  t.notThrows(() => net.raft('n1').proposeConfChange({ type: 'remove-node', nodeId: 'n3' }));
});

test('a configuration takes effect when appended and reverts if the entry is truncated', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
  net.elect('n1');
  net.isolate('n1');
  net.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n9' });
  net.drain();
  t.deepEqual(net.raft('n1').confState().learners, ['n9']);
  net.heal();
  net.cut('n1', 'n2');
  net.cut('n1', 'n3');
  net.elect('n2');
  net.raft('n2').propose(bytes('y'));
  net.drain();
  net.heal();
  net.tickAll(2);
  t.deepEqual(net.raft('n1').confState(), { voters: ['n1', 'n2', 'n3'], learners: [] });
});

test('removing the leader: it steps down once the change commits and the rest elect a leader', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.raft('n1').proposeConfChange({ type: 'remove-node', nodeId: 'n1' });
  net.drain();
  t.is(net.raft('n1').currentRole, 'follower');
  net.tickAll(40);
  const leaders = net.leaders();
  t.is(leaders.length, 1);
  t.not(leaders[0], 'n1');
  net.raft(leaders[0] as string).propose(bytes('after'));
  net.drain();
  net.tickAll(1);
  t.deepEqual(net.data('n2'), ['after']);
  t.deepEqual(net.raft('n2').confState().voters, ['n2', 'n3']);
});

test('invalid changes are refused with a reason', (t) => {
  const net = new SyncNetwork(['n1']);
  net.elect('n1');
  t.throws(() => net.raft('n1').proposeConfChange({ type: 'remove-node', nodeId: 'n1' }), { message: /only voter/ });
  t.throws(() => net.raft('n1').proposeConfChange({ type: 'add-voter', nodeId: 'n1' }), { message: /already a voter/ });
  t.throws(() => net.raft('n1').proposeConfChange({ type: 'remove-node', nodeId: 'n7' }), { message: /not a member/ });
  t.throws(() => net.raft('n1').transferLeadership('n7'), { message: /not a voter/ });
});

test('a member added to a group gets the base configuration by snapshot and can become a voter', (t) => {
  const net = new SyncNetwork(['n1']);
  net.elect('n1');
  net.raft('n1').propose(bytes('before'));
  net.drain();
  net.addJoiner('n2');
  net.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n2' });
  net.drain();
  net.tickAll(2);
  t.deepEqual(net.raft('n2').confState(), { voters: ['n1'], learners: ['n2'] });
  t.deepEqual(net.data('n2'), ['before']);
  net.raft('n1').proposeConfChange({ type: 'add-voter', nodeId: 'n2' });
  net.drain();
  net.tickAll(1);
  t.deepEqual(net.raft('n2').confState().voters, ['n1', 'n2']);
});

test('a group bootstrapped without a snapshot refuses to catch up a newcomer from index 1', async (t) => {
  const { RaftNode } = await import('../../control-plane/raft/core/raft-node.js');
  // A storage that bootstraps at index 0 (no snapshot), unlike the documented convention.
  const { MemoryStorage } = await import('../../control-plane/raft/core/memory-storage.js');
  const storage = new MemoryStorage({ voters: [], learners: [] });
  const orig = storage.initialState.bind(storage);
  storage.initialState = () => ({ ...orig(), confState: { voters: ['n1'], learners: [] } });
  const node = new RaftNode({
    id: 'n1',
    storage,
    electionTick: 10,
    heartbeatTick: 1,
    preVote: false,
    checkQuorum: false,
    maxSizePerMsg: 1 << 20,
    maxInflightMsgs: 4,
    snapshotChunkSize: 1 << 20,
    applied: 0,
    random: () => 0.5,
  });
  node.campaignNow();
  t.is(node.currentRole, 'leader');
  // The leader's no-op commits once it is durable (a leader counts only its persisted entries).
  const first = node.ready();
  storage.append(first.entries);
  if (first.hardState) storage.setHardState(first.hardState);
  node.advance(first);
  node.proposeConfChange({ type: 'add-learner', nodeId: 'n2' });
  const rd = node.ready();
  storage.append(rd.entries);
  node.advance(rd);
  const probe = rd.messages.find((m) => m.type === 'append' && m.to === 'n2');
  t.truthy(probe);
  // n2 has nothing: it rejects, and the leader would have to start from index 1.
  t.throws(
    () =>
      node.step({
        type: 'append-resp',
        from: 'n2',
        to: 'n1',
        term: node.currentTerm,
        reject: true,
        index: probe?.type === 'append' ? probe.prevIndex : 0,
        rejectHintIndex: 0,
        rejectHintTerm: 0,
      }),
    { message: /cannot catch up n2 from index 1: the group was bootstrapped without a snapshot/ },
  );
});
