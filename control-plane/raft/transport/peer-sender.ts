// Sends one peer's Raft traffic on a long-lived gRPC stream: Raft messages, writes forwarded to
// the leader and refusals of forwarded writes. Everything queued within one round of the event
// loop goes out as one batch; while the stream pushes back (HTTP/2 flow control), batches grow instead
// of piling up. Raft tolerates lost messages, so a broken stream loses what was written to it (the
// core retries through heartbeats and probes) and is opened again on the next send; a queue that
// grows past its bound loses its oldest messages rather than memory.
import * as grpc from '@grpc/grpc-js';

import type { Message } from '../core/index.js';
import type { RaftPeerClient } from './peer-client.js';
import { toWire, type WireBatch, type WireMessage, type WireProposal } from './wire.js';

const HEALTHY_MS = 5000;

export interface PeerSenderOptions {
  group: string;
  from: string;
  fromAddress: string;
  /** Messages (and, separately, forwarded proposals) queued beyond this are dropped oldest first. */
  maxQueued?: number;
  onError?: (err: Error) => void;
  /** The connection was refused or dropped (UNAVAILABLE), as when the peer's process died. */
  onUnreachable?: () => void;
  /**
   * Sends that failed, for the metrics: 1 for a stream that broke with an error (whatever it
   * carried may be lost), or the number of queued messages dropped because the queue was full.
   */
  onSendFailure?: (count: number) => void;
}

export class PeerSender {
  private messages: WireMessage[] = [];
  private proposals: WireProposal[] = [];
  private refused: string[] = [];
  private stream: grpc.ClientWritableStream<WireBatch> | undefined;
  private scheduled = false;
  /** The stream's buffer is full: wait for 'drain' before writing more. */
  private blocked = false;
  private closed = false;
  /** Consecutive broken streams; errors are reported on the first only, so a dead peer does not flood logs. */
  private failures = 0;

  constructor(
    readonly client: RaftPeerClient,
    private readonly options: PeerSenderOptions,
  ) {}

  send(m: Message): void {
    if (this.closed) return;
    this.messages.push(toWire(m));
    this.bound(this.messages);
    this.schedule();
  }

  /** A client write for the leader (see RaftHost.proposeOrForward). */
  forward(p: WireProposal): void {
    if (this.closed) return;
    this.proposals.push(p);
    this.bound(this.proposals);
    this.schedule();
  }

  /** Tells the forwarder that these proposals were not taken. */
  refuse(ids: string[]): void {
    if (this.closed || ids.length === 0) return;
    this.refused.push(...ids);
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.messages = [];
    this.proposals = [];
    this.refused = [];
    const s = this.stream;
    this.stream = undefined;
    if (s) s.end();
    this.client.close();
  }

  private bound<T>(queue: T[]): void {
    const max = this.options.maxQueued ?? 4096;
    if (queue.length <= max) return;
    const dropped = queue.length - max;
    queue.splice(0, dropped);
    this.options.onSendFailure?.(dropped);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Sends made in the same round of the event loop (one Ready's messages, the writes of every
    // client request read in that round) share a batch.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed || this.blocked) return;
    if (this.messages.length === 0 && this.proposals.length === 0 && this.refused.length === 0) return;
    const stream = this.stream ?? this.open();
    const batch: WireBatch = { group: this.options.group, from: this.options.from, fromAddress: this.options.fromAddress, messages: this.messages };
    if (this.proposals.length > 0) batch.proposals = this.proposals;
    if (this.refused.length > 0) batch.refused = this.refused;
    this.messages = [];
    this.proposals = [];
    this.refused = [];
    if (!stream.write(batch)) {
      this.blocked = true;
      stream.once('drain', () => {
        this.blocked = false;
        this.pump();
      });
    }
  }

  private open(): grpc.ClientWritableStream<WireBatch> {
    const openedAt = Date.now();
    const stream = this.client.openStream((err) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.blocked = false;
      if (!err) return;
      this.options.onSendFailure?.(1);
      if (err.code === grpc.status.UNAVAILABLE) this.options.onUnreachable?.();
      // A stream that carried traffic for a while was healthy: report the next failure again.
      if (Date.now() - openedAt > HEALTHY_MS) this.failures = 0;
      if (this.failures++ === 0) this.options.onError?.(err);
    });
    // Errors arrive through the callback above; without a listener an 'error' event would throw.
    stream.on('error', () => {});
    this.stream = stream;
    return stream;
  }
}
