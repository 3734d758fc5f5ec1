// Sends one peer's Raft messages: at most one batch in flight; whatever queues up while it flies
// goes in the next batch. Raft tolerates lost messages, so a failed batch is dropped (the core
// retries through heartbeats and probes) and a queue that grows past its bound loses its oldest
// messages rather than memory.
import { toWire, type WireBatch, type WireMessage } from './wire.js';
import type { Message } from '../core/index.js';
import type { RaftPeerClient } from './peer-client.js';

export interface PeerSenderOptions {
  group: string;
  from: string;
  fromAddress: string;
  /** Messages queued beyond this are dropped oldest first. */
  maxQueued?: number;
  onError?: (err: Error) => void;
}

export class PeerSender {
  private queue: WireMessage[] = [];
  private inFlight = false;
  private closed = false;
  /** Consecutive failures; errors are reported on the first only, so a dead peer does not flood logs. */
  private failures = 0;

  constructor(readonly client: RaftPeerClient, private readonly options: PeerSenderOptions) {}

  send(m: Message): void {
    if (this.closed) return;
    this.queue.push(toWire(m));
    const max = this.options.maxQueued ?? 4096;
    if (this.queue.length > max) this.queue.splice(0, this.queue.length - max);
    this.pump();
  }

  private pump(): void {
    if (this.inFlight || this.closed || this.queue.length === 0) return;
    const messages = this.queue;
    this.queue = [];
    this.inFlight = true;
    const batch: WireBatch = { group: this.options.group, from: this.options.from, fromAddress: this.options.fromAddress, messages };
    this.client
      .send(batch)
      .then(() => {
        this.failures = 0;
      })
      .catch((err: Error) => {
        if (this.failures++ === 0) this.options.onError?.(err);
      })
      .finally(() => {
        this.inFlight = false;
        this.pump();
      });
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.client.close();
  }
}
