// What this member's Raft transport has carried to and from each other member, as plain numbers
// (etcd's etcd_network_peer_sent_bytes_total and friends; control-plane/metrics/raft-metrics.ts
// turns them into counters when Prometheus scrapes). Bytes are the serialized protobuf batches
// (Raft messages, forwarded writes, refusals), without gRPC, HTTP/2 or TLS framing. A batch is
// sent when gRPC serializes it onto the peer's stream: if that stream then breaks, its bytes were
// counted as sent and the broken stream as a failure.
import type { NodeId } from '../core/index.js';

/**
 * The most peers counted at once. Members are few; the bound only keeps a stream of made-up
 * sender ids (possible where the transport does not check certificates: tests, loopback) from
 * growing the maps. Ids beyond it are not counted until `retain` drops departed members.
 */
export const MAX_COUNTED_PEERS = 64;

export class PeerTraffic {
  readonly sentBytes = new Map<NodeId, number>();
  readonly receivedBytes = new Map<NodeId, number>();
  /** Broken streams to the peer, and messages dropped because the queue to it was full. */
  readonly sendFailures = new Map<NodeId, number>();

  sent(to: NodeId, bytes: number): void {
    add(this.sentBytes, to, bytes);
  }

  received(from: NodeId, bytes: number): void {
    add(this.receivedBytes, from, bytes);
  }

  sendFailed(to: NodeId, count = 1): void {
    add(this.sendFailures, to, count);
  }

  /** Forgets the peers that are no longer members (their series go with them). */
  retain(members: ReadonlySet<NodeId>): void {
    for (const map of [this.sentBytes, this.receivedBytes, this.sendFailures]) {
      for (const id of map.keys()) if (!members.has(id)) map.delete(id);
    }
  }
}

function add(map: Map<NodeId, number>, peer: NodeId, n: number): void {
  const was = map.get(peer);
  if (was === undefined && map.size >= MAX_COUNTED_PEERS) return;
  map.set(peer, (was ?? 0) + n);
}
