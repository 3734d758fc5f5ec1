// ReadIndex: a read point is released only after a heartbeat round confirms leadership, and only
// once the leader has committed an entry in its term; followers forward to the leader.
import test from 'ava';
import { ProposalDroppedError } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

test('the leader releases a read at its commit index after a quorum acknowledges a heartbeat', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.raft('n1').propose(bytes('a'));
  net.drain();
  const before = net.sent.length;
  net.raft('n1').readIndex('r1');
  net.drain();
  const hbs = net.sent.slice(before).filter((m) => m.type === 'heartbeat' && m.context === 'r1');
  t.is(hbs.length, 2);
  t.deepEqual(net.node('n1').readStates, [{ index: net.raft('n1').status().commit, context: 'r1' }]);
});

test('no read is released without a quorum (a deposed leader cannot serve stale reads)', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.isolate('n1');
  net.raft('n1').readIndex('r1');
  net.drain();
  net.tick('n1', 3);
  t.deepEqual(net.node('n1').readStates, []);
});

test('reads are refused until the leader has committed an entry of its term', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.filter = (m) => m.type !== 'append-resp';
  net.elect('n1');
  t.throws(() => net.raft('n1').readIndex('r1'), { instanceOf: ProposalDroppedError, message: /committed an entry in its term/ });
  net.filter = () => true;
  net.tickAll(1);
  net.raft('n1').readIndex('r2');
  net.drain();
  t.is(net.node('n1').readStates.length, 1);
});

test('a follower read is forwarded to the leader and answered with the leader commit index', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.raft('n1').propose(bytes('a'));
  net.drain();
  net.raft('n2').readIndex('f1');
  net.drain();
  t.deepEqual(net.node('n2').readStates, [{ index: net.raft('n1').status().commit, context: 'f1' }]);
});

test('several pending reads are released together by the later heartbeat round', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.filter = (m) => m.type !== 'heartbeat-resp';
  net.raft('n1').readIndex('a');
  net.raft('n1').readIndex('b');
  net.drain();
  t.deepEqual(net.node('n1').readStates, []);
  net.filter = () => true;
  net.tickAll(1);
  t.deepEqual(
    net.node('n1').readStates.map((r) => r.context),
    ['a', 'b'],
  );
});

test('a single-member group answers reads immediately', (t) => {
  const net = new SyncNetwork(['n1']);
  net.elect('n1');
  net.raft('n1').readIndex('solo');
  net.drain();
  t.is(net.node('n1').readStates.length, 1);
});
