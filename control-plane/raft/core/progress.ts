// The leader's view of one member's log, with the flow control of etcd's raft design: a member is
// probed one message at a time until its match is found, then replicated to with a window of
// in-flight appends, or sent a snapshot when the entries it needs are compacted.
import type { PeerStatus, ProgressState, Snapshot } from './types.js';

/** Last indexes of append messages in flight, oldest first. */
export class Inflights {
  private readonly items: number[] = [];
  constructor(readonly capacity: number) {}

  add(lastIndex: number): void {
    this.items.push(lastIndex);
  }

  /** Frees every message whose last index is <= index (they were acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.items.length && (this.items[n] as number) <= index) n++;
    if (n > 0) this.items.splice(0, n);
  }

  freeFirstOne(): void {
    this.items.shift();
  }

  full(): boolean {
    return this.items.length >= this.capacity;
  }

  count(): number {
    return this.items.length;
  }

  reset(): void {
    this.items.length = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: one probe is out, wait for its answer (or a heartbeat response). */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent, its bytes and the acked offset. */
  pendingSnapshot = 0;
  snapshot: Snapshot | undefined;
  snapshotOffset = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflight: number,
    public learner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshot = undefined;
    this.snapshotOffset = 0;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, the member has at least the snapshot's entries.
    const floor = this.state === 'snapshot' ? Math.max(this.match, this.pendingSnapshot) : this.match;
    this.resetState('probe');
    this.next = floor + 1;
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshot: Snapshot): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshot.metadata.index;
    this.snapshot = snapshot;
  }

  /** An acknowledgement of index n; false when it is stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append whose prevIndex was `rejected`; `matchHint` is where the member's log
   * may match. False when the rejection is stale (answers an older message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  status(): PeerStatus {
    return { match: this.match, next: this.next, state: this.state, learner: this.learner, recentActive: this.recentActive };
  }
}
