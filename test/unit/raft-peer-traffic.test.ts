// The Raft transport's traffic counts (control-plane/raft/transport/peer-traffic.ts), behind
// tessera_network_peer_{sent,received}_bytes_total and tessera_network_peer_sent_failures_total:
// a real sender and a real Raft gRPC server on loopback, in this process (no TLS: the counting
// sits in the (de)serializers, below the credentials).
import test from 'ava';
import type * as grpc from '@grpc/grpc-js';

import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { bind, newRaftServer, shutdown } from '../../control-plane/raft/host/serve-member.js';
import type { Message } from '../../control-plane/raft/core/index.js';
import { RaftPeerClient } from '../../control-plane/raft/transport/peer-client.js';
import { PeerSender } from '../../control-plane/raft/transport/peer-sender.js';
import { MAX_COUNTED_PEERS, PeerTraffic } from '../../control-plane/raft/transport/peer-traffic.js';
import { raftService } from '../../control-plane/raft/transport/proto.js';
import { addRaftService, type RaftServiceHandlers } from '../../control-plane/raft/transport/raft-service.js';
import type { WireBatch } from '../../control-plane/raft/transport/wire.js';
import { eventually } from '../helpers/eventually.js';
import { freePort } from '../helpers/free-port.js';

test('PeerTraffic sums per peer, bounds the ids it keeps, and forgets departed members', (t) => {
  const traffic = new PeerTraffic();
  traffic.sent('m1', 100);
  traffic.sent('m1', 20);
  traffic.received('m2', 7);
  traffic.sendFailed('m1');
  traffic.sendFailed('m1', 3);
  t.is(traffic.sentBytes.get('m1'), 120);
  t.is(traffic.receivedBytes.get('m2'), 7);
  t.is(traffic.sendFailures.get('m1'), 4);

  for (let i = 0; i < MAX_COUNTED_PEERS * 2; i++) traffic.received(`made-up-${i}`, 1);
  t.is(traffic.receivedBytes.size, MAX_COUNTED_PEERS, 'no more ids than the bound');
  traffic.received('m2', 3);
  t.is(traffic.receivedBytes.get('m2'), 10, 'a peer already counted keeps counting at the bound');

  traffic.retain(new Set(['m2']));
  t.deepEqual([...traffic.receivedBytes.keys()], ['m2']);
  t.deepEqual([...traffic.sentBytes.keys()], []);
  t.deepEqual([...traffic.sendFailures.keys()], []);
});

function appendTo(to: string, payload: Uint8Array, index: number): Message {
  return {
    type: 'append',
    from: 'm0',
    to,
    term: 2,
    prevIndex: index - 1,
    prevTerm: 2,
    commit: index - 1,
    entries: [{ term: 2, index, type: 'normal', data: payload }],
  };
}

test('a real sender and server count the same serialized bytes on both sides', async (t) => {
  const received: Array<{ batch: WireBatch; bytes: number | undefined }> = [];
  const handlers: RaftServiceHandlers = {
    receive: (batch, bytes) => {
      received.push({ batch, bytes });
    },
    propose: () => Promise.reject(new Error('not used')),
    rangeJson: () => Promise.reject(new Error('not used')),
    status: () => Promise.reject(new Error('not used')),
    changeMembers: () => Promise.reject(new Error('not used')),
  };
  const server: grpc.Server = newRaftServer();
  addRaftService(server, handlers);
  const port = await bind(server, '127.0.0.1:0', LOCAL_INSECURE);
  t.teardown(() => shutdown(server));

  let sent = 0;
  const sizes: number[] = [];
  const client = new RaftPeerClient(`127.0.0.1:${port}`, LOCAL_INSECURE, {
    onSentBytes: (bytes) => {
      sent += bytes;
      sizes.push(bytes);
    },
  });
  const sender = new PeerSender(client, { group: 'g', from: 'm0', fromAddress: '127.0.0.1:1' });
  t.teardown(() => sender.close());

  // Three rounds of the event loop: three batches on the stream.
  const payload = new Uint8Array(10_000).fill(7);
  for (let i = 1; i <= 3; i++) {
    sender.send(appendTo('m1', payload, i));
    await new Promise((r) => setImmediate(r));
  }
  await eventually('the three batches received', async () => received.length === 3, 10_000, 20);
  const receivedBytes = received.reduce((sum, r) => sum + (r.bytes ?? Number.NaN), 0);
  t.is(receivedBytes, sent, 'the server counted every byte the client serialized');
  t.is(sizes.length, 3, 'one serialization per batch');
  for (const size of sizes) t.true(size > payload.length && size < payload.length + 200, `a batch of one 10000-byte entry is ${size} bytes`);
  const { service } = raftService();
  const reencoded = service['Stream']!.requestSerialize(received[0]!.batch).length;
  t.true(client.connected(), 'the channel that carried them is connected (tessera_network_active_peers)');
  t.is(received[0]!.bytes, reencoded, 'the size noted is the encoded batch as decoded');

  // Unary Send counts too (a tool's or a test's single batch).
  const before = sent;
  await client.send({ group: 'g', from: 'm0', fromAddress: '', messages: [] });
  await eventually('the unary batch received', async () => received.length === 4, 10_000, 20);
  t.is(received[3]!.bytes, sent - before);
});

test('a sender to a member that is not there counts its failed streams; a full queue counts the messages it drops', async (t) => {
  const port = await freePort();
  let failures = 0;
  let unreachable = 0;
  let sent = 0;
  const client = new RaftPeerClient(`127.0.0.1:${port}`, LOCAL_INSECURE, { onSentBytes: (bytes) => (sent += bytes) });
  const sender = new PeerSender(client, {
    group: 'g',
    from: 'm0',
    fromAddress: '127.0.0.1:1',
    onSendFailure: (count) => (failures += count),
    onUnreachable: () => unreachable++,
  });
  t.teardown(() => sender.close());
  sender.send(appendTo('m1', new Uint8Array(10), 1));
  await eventually('the broken stream counted', async () => failures >= 1, 15_000, 20);
  t.true(unreachable >= 1, 'nobody listens: UNAVAILABLE');
  t.false(client.connected(), 'no connected channel to a member that is not there');
  // Counted as sent when handed to the stream, before the connection failed: such bytes are lost
  // with the stream, which sent_failures_total counts (docs/prometheus.md says so).
  t.true(sent > 10, 'the batch was serialized onto the stream');

  // The queue bound: messages queued in one round beyond it are dropped, oldest first, and counted.
  let dropped = 0;
  const bounded = new PeerSender(new RaftPeerClient(`127.0.0.1:${port}`, LOCAL_INSECURE), {
    group: 'g',
    from: 'm0',
    fromAddress: '127.0.0.1:1',
    maxQueued: 4,
    onSendFailure: (count) => (dropped += count),
  });
  t.teardown(() => bounded.close());
  for (let i = 1; i <= 10; i++) bounded.send(appendTo('m1', new Uint8Array(1), i));
  t.is(dropped, 6, 'ten queued within one round, four kept');
});
