// The log as the core sees it: durable entries (through RaftLogStorage) followed by entries and a
// snapshot that are not yet durable ("unstable"), plus the commit and applied indexes.
import { limitSize } from './memory-storage.js';
import { LogCompactedError, LogUnavailableError, type Entry, type RaftLogStorage, type Snapshot } from './types.js';

export class RaftLog {
  /** Entries not yet persisted start at unstableOffset (they shadow storage from there on). */
  private unstableEntries: Entry[] = [];
  private unstableOffset: number;
  private unstableSnapshot: Snapshot | undefined;
  committed: number;
  applied: number;

  constructor(
    readonly storage: RaftLogStorage,
    applied: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstableOffset = last + 1;
    const { hardState } = storage.initialState();
    if (hardState.commit > last) {
      throw new Error(`raft log: durable commit index ${hardState.commit} is beyond the durable last index ${last} (log lost entries)`);
    }
    this.committed = Math.max(hardState.commit, first - 1);
    if (applied > this.committed) {
      throw new Error(`raft log: applied index ${applied} is beyond the commit index ${this.committed}`);
    }
    this.applied = Math.max(applied, first - 1);
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.metadata.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.unstableOffset + this.unstableEntries.length - 1;
    if (this.unstableSnapshot) return this.unstableSnapshot.metadata.index;
    return Math.min(this.storage.lastIndex(), this.unstableOffset - 1);
  }

  /** The term of entry i, or undefined when i is compacted or beyond the log. */
  term(i: number): number | undefined {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return undefined;
    if (this.unstableSnapshot && i === this.unstableSnapshot.metadata.index) return this.unstableSnapshot.metadata.term;
    if (i >= this.unstableOffset) return (this.unstableEntries[i - this.unstableOffset] as Entry).term;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (err instanceof LogCompactedError || err instanceof LogUnavailableError) return undefined;
      throw err;
    }
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    if (t === undefined) throw new Error(`raft log: term of last index ${this.lastIndex()} unavailable`);
    return t;
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries: when (prevIndex, prevTerm) matches, drop conflicting entries,
   * append the new ones, advance commit, and return the index of the last new entry; otherwise
   * undefined. `onTruncate(from)` is told when entries from `from` on are replaced.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, ents: Entry[], onTruncate: (from: number) => void): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + ents.length;
    let conflict = 0;
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) {
        conflict = e.index;
        break;
      }
    }
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`raft log: entry ${conflict} conflicts with a committed entry (committed ${this.committed})`);
      }
      onTruncate(conflict);
      this.append(ents.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    const after = (ents[0] as Entry).index;
    if (after - 1 < this.committed) throw new Error(`raft log: append at ${after} would overwrite committed ${this.committed}`);
    const end = this.unstableOffset + this.unstableEntries.length;
    if (after === end) {
      this.unstableEntries.push(...ents);
    } else if (after <= this.unstableOffset) {
      // Replaces durable entries too; storage drops them when these are persisted.
      this.unstableOffset = after;
      this.unstableEntries = [...ents];
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, after - this.unstableOffset).concat(ents);
    }
  }

  /** Entries [lo, hi) with about maxBytes of data (at least one). Throws LogCompactedError. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new LogCompactedError(lo, this.firstIndex());
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(hi - 1, this.lastIndex());
    let out: Entry[] = [];
    if (lo < this.unstableOffset) {
      const stableHi = Math.min(hi, this.unstableOffset);
      out = this.storage.entries(lo, stableHi, maxBytes);
      if (out.length < stableHi - lo) return out;
    }
    if (hi > this.unstableOffset) {
      const from = Math.max(lo, this.unstableOffset) - this.unstableOffset;
      out = out.concat(this.unstableEntries.slice(from, hi - this.unstableOffset));
    }
    return limitSize(out, maxBytes);
  }

  commitTo(c: number): void {
    if (c <= this.committed) return;
    if (c > this.lastIndex()) throw new Error(`raft log: commit ${c} is beyond last index ${this.lastIndex()}`);
    this.committed = c;
  }

  /** Leader side: commit maxIndex if it is from the leader's term (Raft §5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** The largest index <= index whose term is <= term (for fast rejection backtracking). */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i >= this.firstIndex() - 1; i--) {
      const t = this.term(i);
      if (t === undefined || t <= term) return i;
    }
    return i;
  }

  /** Follower installs a snapshot: everything before and at its index is replaced. */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstableSnapshot = snap;
    this.unstableOffset = snap.metadata.index + 1;
    this.unstableEntries = [];
  }

  /**
   * Last index of the log that is durable (persisted and not about to be replaced by unstable
   * entries). 0 while a received snapshot is pending: nothing of the new log is durable yet.
   */
  lastStableIndex(): number {
    if (this.unstableSnapshot) return 0;
    return Math.min(this.storage.lastIndex(), this.unstableOffset - 1);
  }

  hasPendingEntries(): boolean {
    return this.unstableEntries.length > 0;
  }

  pendingEntries(): Entry[] {
    return [...this.unstableEntries];
  }

  pendingSnapshot(): Snapshot | undefined {
    return this.unstableSnapshot;
  }

  /** Entries [i, t] were persisted; forget them unless they were replaced since. */
  stableTo(i: number, t: number): void {
    if (i < this.unstableOffset || i >= this.unstableOffset + this.unstableEntries.length) return;
    if ((this.unstableEntries[i - this.unstableOffset] as Entry).term !== t) return;
    this.unstableEntries = this.unstableEntries.slice(i + 1 - this.unstableOffset);
    this.unstableOffset = i + 1;
  }

  stableSnapTo(i: number): void {
    if (this.unstableSnapshot && this.unstableSnapshot.metadata.index === i) this.unstableSnapshot = undefined;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > Math.max(this.applied, this.firstIndex() - 1);
  }

  nextCommittedEntries(): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed < lo) return [];
    return this.slice(lo, this.committed + 1, Number.MAX_SAFE_INTEGER);
  }

  appliedTo(i: number): void {
    if (i <= this.applied) return;
    if (i > this.committed) throw new Error(`raft log: applied ${i} beyond committed ${this.committed}`);
    this.applied = i;
  }
}
