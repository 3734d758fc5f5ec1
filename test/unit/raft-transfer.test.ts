// Leader transfer: the leader catches the target up, then sends timeout-now; the target campaigns
// at once, bypassing pre-vote and the other members' lease.
import test from 'ava';
import { ProposalDroppedError } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

test('transfer to an up-to-date follower', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const term = net.raft('n1').currentTerm;
  net.raft('n1').transferLeadership('n2');
  net.drain();
  t.deepEqual(net.leaders(), ['n2']);
  t.is(net.raft('n2').currentTerm, term + 1);
});

test('transfer to a lagging follower catches it up first', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.isolate('n3');
  for (let i = 0; i < 5; i++) net.raft('n1').propose(bytes(`v${i}`));
  net.drain();
  net.heal();
  net.raft('n1').transferLeadership('n3');
  net.drain();
  t.deepEqual(net.leaders(), ['n3']);
  net.tickAll(1);
  t.deepEqual(net.data('n3'), ['v0', 'v1', 'v2', 'v3', 'v4']);
});

test('proposals are refused while a transfer is in progress, and a stuck transfer is abandoned', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.crash('n3');
  net.raft('n1').propose(bytes('x'));
  net.drain();
  net.raft('n1').transferLeadership('n3');
  net.drain();
  t.throws(() => net.raft('n1').propose(bytes('y')), { instanceOf: ProposalDroppedError, message: /transferred/ });
  net.tick('n1', 12);
  t.is(net.raft('n1').currentRole, 'leader');
  t.notThrows(() => net.raft('n1').propose(bytes('z')));
});
