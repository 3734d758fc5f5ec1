// Log replication: commit rules, batching, pipelining with an inflight window, probe state and
// fast backtracking with the rejection hint.
import test from 'ava';
import type { AppendRequest, Message } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

const appendsTo = (msgs: Message[], to: string): AppendRequest[] => msgs.filter((m): m is AppendRequest => m.type === 'append' && m.to === to);

test('proposals are replicated, committed and applied in order everywhere', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  for (const v of ['a', 'b', 'c']) net.raft('n1').propose(bytes(v));
  net.drain();
  net.tickAll(1); // heartbeat carries the commit index to followers
  for (const id of ['n1', 'n2', 'n3']) t.deepEqual(net.data(id), ['a', 'b', 'c']);
});

test('an entry is not committed without a majority', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  net.isolate('n1');
  const { index } = net.raft('n1').propose(bytes('lonely'));
  net.drain();
  t.true(net.raft('n1').status().commit < index);
  t.deepEqual(net.data('n1'), []);
});

test('proposals made between two Readies go out as one append per follower (batching)', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  const before = net.sent.length;
  for (let i = 0; i < 10; i++) net.raft('n1').propose(bytes(`v${i}`));
  net.drain();
  const appends = appendsTo(net.sent.slice(before), 'n2').filter((m) => m.entries.length > 0);
  t.is(appends.length, 1);
  t.is(appends[0]?.entries.length, 10);
});

test('maxSizePerMsg splits large batches', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { maxSizePerMsg: 10 });
  net.elect('n1');
  const before = net.sent.length;
  for (let i = 0; i < 6; i++) net.raft('n1').propose(bytes('12345'));
  net.drain();
  const appends = appendsTo(net.sent.slice(before), 'n2').filter((m) => m.entries.length > 0);
  t.true(appends.length >= 3);
  for (const a of appends) t.true(a.entries.length <= 2);
  net.tickAll(1);
  t.is(net.data('n2').length, 6);
});

test('replicate state pipelines up to maxInflightMsgs unacknowledged appends, then pauses', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { maxInflightMsgs: 3, maxSizePerMsg: 1 });
  net.elect('n1');
  t.is(net.raft('n1').status().progress['n2']?.state, 'replicate');
  // n2 stops answering.
  net.filter = (m) => !(m.from === 'n2' && m.type === 'append-resp');
  const before = net.sent.length;
  for (let i = 0; i < 10; i++) {
    net.raft('n1').propose(bytes(`x${i}`));
    net.drain();
  }
  // (Empty appends that only carry the new commit index are not part of the window.)
  const withEntries = (to: string): number => appendsTo(net.sent.slice(before), to).filter((m) => m.entries.length > 0).length;
  t.is(withEntries('n2'), 3, 'window of 3');
  t.is(withEntries('n3'), 10, 'n3 answers, so it gets every append');
  // Once n2 answers again (heartbeat response frees a slot), it catches up.
  net.filter = () => true;
  net.tickAll(3);
  t.is(net.data('n2').length, 10);
});

test('a follower in probe state gets one append at a time until it answers', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.filter = (m) => m.from !== 'n3';
  net.elect('n1'); // a new leader probes everyone; n3's answers are lost
  t.is(net.raft('n1').status().progress['n3']?.state, 'probe');
  const before = net.sent.length;
  for (let i = 0; i < 4; i++) {
    net.raft('n1').propose(bytes(`q${i}`));
    net.drain();
  }
  t.is(net.raft('n1').status().progress['n3']?.state, 'probe');
  t.is(appendsTo(net.sent.slice(before), 'n3').length, 0, 'the probe is unanswered: paused');
  net.filter = () => true;
  net.tickAll(2); // heartbeat response unpauses, the probe succeeds, then replicate
  t.is(net.raft('n1').status().progress['n3']?.state, 'replicate');
  t.deepEqual(net.data('n3'), ['q0', 'q1', 'q2', 'q3']);
});

test('a divergent follower is repaired in a few round trips thanks to the rejection hint', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false });
  net.elect('n1');
  // n1 (isolated) accumulates 50 uncommitted entries in its term.
  net.isolate('n1');
  for (let i = 0; i < 50; i++) net.raft('n1').propose(bytes(`lost${i}`));
  net.drain();
  // n2 leads the others and commits 5 entries in a newer term.
  net.heal();
  net.cut('n1', 'n2');
  net.cut('n1', 'n3');
  net.elect('n2');
  for (let i = 0; i < 5; i++) net.raft('n2').propose(bytes(`kept${i}`));
  net.drain();
  net.heal();
  const before = net.sent.length;
  net.tickAll(3);
  const rejects = net.sent.slice(before).filter((m) => m.type === 'append-resp' && m.from === 'n1' && m.reject);
  t.true(rejects.length <= 2, `${rejects.length} rejections`);
  t.deepEqual(net.data('n1'), net.data('n2'));
  t.false(net.data('n1').some((d) => d.startsWith('lost')));
});

test('a restarted member recovers its log and commit from storage', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  for (const v of ['a', 'b']) net.raft('n1').propose(bytes(v));
  net.drain();
  net.tickAll(1);
  net.crash('n2');
  net.raft('n1').propose(bytes('c'));
  net.drain();
  net.restart('n2');
  net.node('n2').applied.length = 0;
  net.tickAll(2);
  // After restart n2 re-applies from its snapshot (index 1) onwards.
  t.deepEqual(net.data('n2'), ['a', 'b', 'c']);
});

test('Figure 8: a leader does not commit an entry of an earlier term by counting replicas', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { preVote: false, checkQuorum: false, maxSizePerMsg: 1 });
  net.elect('n1'); // term 2, no-op at 2 committed everywhere
  net.tickAll(1);
  // n1 appends X at 3 (term 2) but nobody gets it.
  net.isolate('n1');
  net.raft('n1').propose(bytes('XX')); // two bytes: alone in a message of maxSizePerMsg 1
  net.drain();
  net.crash('n1');
  net.heal();
  // n3 wins term 3 with n2's vote; its no-op at 3 reaches nobody.
  net.filter = (m) => !(m.from === 'n3' && m.type === 'append');
  net.elect('n3');
  t.is(net.raft('n3').currentRole, 'leader');
  net.crash('n3');
  net.filter = () => true;
  // n1 comes back and wins term 4 with n2's vote. It replicates X to n2 (alone: maxSizePerMsg 1)
  // but the append carrying its own no-op is lost.
  net.restart('n1');
  // (The first append, the probe that n2 rejects, goes through.)
  let probes = 0;
  net.filter = (m) => {
    if (m.from !== 'n1' || m.type !== 'append' || !m.entries.some((e) => e.term === m.term)) return true;
    return probes++ === 0;
  };
  net.elect('n1');
  if (net.raft('n1').currentRole !== 'leader') net.elect('n1');
  t.is(net.raft('n1').currentRole, 'leader');
  t.is(net.node('n2').storage.term(3), 2, 'X is now on a majority (n1, n2)');
  t.is(net.raft('n1').status().commit, 2, 'but it is of an earlier term, so it is not committed');
  // Indeed it must not be: n1 crashes, n3 returns and wins (its last term 3 beats X's 2) and
  // overwrites X.
  net.crash('n1');
  net.filter = () => true;
  net.restart('n3');
  net.elect('n3');
  if (net.raft('n3').currentRole !== 'leader') net.elect('n3');
  t.is(net.raft('n3').currentRole, 'leader');
  net.tickAll(1);
  t.false(net.data('n2').includes('XX'));
  t.false(net.data('n1').includes('XX'));
});
