// An in-memory RaftLogStorage for tests and the simulator; it doubles as the reference for what
// the on-disk implementation must answer.
import { LogCompactedError, LogUnavailableError, type ConfState, type Entry, type HardState, type RaftLogStorage, type Snapshot } from './types.js';
import { cloneConfState } from './conf-change.js';

export class MemoryStorage implements RaftLogStorage {
  private hardState: HardState = { term: 0, vote: '', commit: 0 };
  private snap: Snapshot;
  /** ents[0] is a dummy standing for the snapshot's index and term. */
  private ents: Entry[];

  /**
   * bootstrap: the configuration of a fresh group, or empty lists for a member that will join one.
   * A fresh group starts from a snapshot at index 1, term 1 holding the configuration (and empty
   * application data), so a member added later learns the base configuration from that snapshot
   * rather than from a log that only holds the changes.
   */
  constructor(bootstrap: ConfState) {
    const fresh = bootstrap.voters.length > 0;
    const index = fresh ? 1 : 0;
    this.snap = { metadata: { index, term: index, confState: cloneConfState(bootstrap) }, data: new Uint8Array(0) };
    this.ents = [{ index, term: index, type: 'normal', data: new Uint8Array(0) }];
    if (fresh) this.hardState = { term: 1, vote: '', commit: 1 };
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  private offset(): number {
    return (this.ents[0] as Entry).index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(index: number): number {
    const off = this.offset();
    if (index < off) throw new LogCompactedError(index, off + 1);
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    return (this.ents[index - off] as Entry).term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new LogCompactedError(lo, off + 1);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(hi - 1, this.lastIndex());
    return limitSize(this.ents.slice(lo - off, hi - off), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  // --- writers, used by the application while handling a Ready ---

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /** Appends entries, replacing any existing entries from the first new index on. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    const off = this.offset();
    if (first > this.lastIndex() + 1) {
      throw new Error(`memory storage: append at ${first} leaves a gap after last index ${this.lastIndex()}`);
    }
    // Entries at or below the snapshot are already covered by it.
    const fresh = entries.filter((e) => e.index > off);
    if (fresh.length === 0) return;
    const start = (fresh[0] as Entry).index - off;
    this.ents = this.ents.slice(0, start).concat(fresh);
  }

  /** Replaces everything with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) return;
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: 'normal', data: new Uint8Array(0) }];
  }

  /** Records a snapshot of the application's state at `index` (<= applied). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) return this.snap;
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    this.snap = { metadata: { index, term: this.term(index), confState: cloneConfState(confState) }, data };
    return this.snap;
  }

  /** Drops entries before `index`; the entry at `index` becomes the dummy. */
  compact(index: number): void {
    const off = this.offset();
    if (index <= off) return;
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    const dummy = this.ents[index - off] as Entry;
    const head: Entry = { index: dummy.index, term: dummy.term, type: 'normal', data: new Uint8Array(0) };
    this.ents = [head].concat(this.ents.slice(index - off + 1));
  }

  /** A deep-enough copy (entries are immutable once written). */
  clone(): MemoryStorage {
    const c = new MemoryStorage({ voters: [], learners: [] });
    c.hardState = { ...this.hardState };
    c.snap = this.snap;
    c.ents = [...this.ents];
    return c;
  }
}

/** Keeps at least one entry, then as many as fit in maxBytes of data. */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = (ents[0] as Entry).data.length;
  let n = 1;
  while (n < ents.length) {
    size += (ents[n] as Entry).data.length;
    if (size > maxBytes) break;
    n++;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
