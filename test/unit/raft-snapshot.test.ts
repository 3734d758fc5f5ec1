// Snapshots and log compaction: a member behind the compaction point is caught up with a chunked
// InstallSnapshot; lost chunks are resent; restart from a snapshot.
import test from 'ava';
import type { Message, SnapshotChunk } from '../../control-plane/raft/core/types.js';
import { SyncNetwork, bytes } from '../sim/sync-network.js';

function lagAndCompact(net: SyncNetwork, data: Uint8Array): void {
  net.elect('n1');
  net.crash('n3');
  for (let i = 0; i < 20; i++) net.raft('n1').propose(bytes(`e${i}`));
  net.drain();
  net.tickAll(1);
  net.compact('n1', data);
  net.compact('n2', data);
}

test('a member behind the compaction point receives the snapshot in chunks and catches up', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { snapshotChunkSize: 100 });
  const data = new Uint8Array(1050).map((_, i) => i % 251);
  lagAndCompact(net, data);
  net.restart('n3');
  const before = net.sent.length;
  net.tickAll(3);
  const chunks = net.sent.slice(before).filter((m): m is SnapshotChunk => m.type === 'snapshot' && m.to === 'n3');
  t.is(chunks.length, 11);
  t.deepEqual(
    chunks.map((c) => c.offset),
    [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
  );
  t.true(chunks[10]?.done);
  const snap = net.node('n3').storage.snapshot();
  t.deepEqual([...snap.data], [...data]);
  t.is(snap.metadata.index, net.raft('n1').log.applied);
  // And the log continues after it.
  net.raft('n1').propose(bytes('after'));
  net.drain();
  net.tickAll(1);
  t.deepEqual(net.data('n3'), ['after']);
  t.is(net.raft('n3').status().commit, net.raft('n1').status().commit);
});

test('a lost chunk is sent again after the next heartbeat response', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3'], { snapshotChunkSize: 100 });
  const data = new Uint8Array(350).fill(7);
  lagAndCompact(net, data);
  net.restart('n3');
  let dropped = false;
  net.filter = (m: Message) => {
    if (!dropped && m.type === 'snapshot' && m.offset === 200) {
      dropped = true;
      return false;
    }
    return true;
  };
  net.tickAll(5);
  t.true(dropped);
  t.deepEqual([...net.node('n3').storage.snapshot().data], [...data]);
  t.is(net.raft('n1').status().progress['n3']?.state, 'replicate');
});

test('a member restarts from its snapshot plus the log after it', (t) => {
  const net = new SyncNetwork(['n1', 'n2', 'n3']);
  net.elect('n1');
  for (let i = 0; i < 5; i++) net.raft('n1').propose(bytes(`a${i}`));
  net.drain();
  net.tickAll(1);
  net.compact('n2', bytes('state'), 2);
  net.raft('n1').propose(bytes('b'));
  net.drain();
  net.tickAll(1);
  net.crash('n2');
  net.restart('n2');
  const n2 = net.node('n2');
  const snapIndex = n2.storage.snapshot().metadata.index;
  t.is(n2.raft.log.applied, snapIndex);
  n2.applied.length = 0;
  net.tickAll(2);
  t.deepEqual(net.data('n2'), ['b']);
});
