// ReadIndex bookkeeping on the leader (thesis §6.4): each read records the commit index when it
// arrived; once a majority acknowledges a heartbeat carrying its context, the leader knows it was
// still the leader at that moment, so reads up to that commit index are linearizable.
import type { NodeId } from './types.js';

interface PendingRead {
  context: string;
  index: number;
  from: NodeId;
  acks: Set<NodeId>;
}

export class ReadOnlyQueue {
  private queue: PendingRead[] = [];

  clear(): void {
    this.queue = [];
  }

  /** False when a read with this context is already pending. */
  add(context: string, index: number, from: NodeId, self: NodeId): boolean {
    if (this.queue.some((r) => r.context === context)) return false;
    this.queue.push({ context, index, from, acks: new Set([self]) });
    return true;
  }

  lastContext(): string {
    return this.queue.length > 0 ? (this.queue[this.queue.length - 1] as PendingRead).context : '';
  }

  /** Records an ack; returns the reads (in order) that a quorum has now confirmed. */
  ack(from: NodeId, context: string, hasQuorum: (acks: Set<NodeId>) => boolean): Array<{ context: string; index: number; from: NodeId }> {
    const pos = this.queue.findIndex((r) => r.context === context);
    if (pos < 0) return [];
    const r = this.queue[pos] as PendingRead;
    r.acks.add(from);
    if (!hasQuorum(r.acks)) return [];
    // A heartbeat round started after earlier reads arrived confirms them too.
    const released = this.queue.slice(0, pos + 1);
    this.queue = this.queue.slice(pos + 1);
    return released.map((x) => ({ context: x.context, index: x.index, from: x.from }));
  }
}
