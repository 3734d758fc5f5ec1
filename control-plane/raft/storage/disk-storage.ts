// DiskRaftStorage: the Raft core's read-only log view (RaftLogStorage), held in memory and made
// durable by the WAL and snapshot files under one directory (wal/ and snap/).
//
// Only what is durable is visible: save() updates the in-memory view after the WAL fsync, so the
// core never reads an entry that a crash could still lose.
//
// Encryption at rest: every WAL record and snapshot file is sealed with a data key from the keyring
// in keys/ (keyring.ts; its key-encryption key in keys/kek unless one is given, as autolock does:
// keyring-lock.ts). A directory left
// by an older version, in plaintext, is encrypted at open, before anything else is written: the
// snapshot the log points to is sealed anew, older plaintext snapshot files are deleted, and the
// log is rewritten into one encrypted segment (Wal.rewriteAll); only then does the keyring stop
// accepting plaintext. (The unlinked plaintext blocks are not wiped: that is the file system's.)
// rotateDataKey() makes a new data key that takes over at the next snapshot; a key is dropped
// once no segment or snapshot file on disk needs it. Rotation is also automatic: at every open of
// an existing keyring, and once the current key has sealed ROTATE_AFTER_SEALS records in this
// process. So a key seals at most one process lifetime's records (and at most about 2^24 of them)
// before a successor takes over at the next snapshot: random 96-bit nonces stay far below the 2^32
// seals per key that NIST SP 800-38D allows.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LogCompactedError, LogUnavailableError, type ConfState, type Entry, type HardState, type RaftLogStorage, type Snapshot } from '../core/types.js';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';
import { Keyring } from './keyring.js';
import { lockKeyring, unlockKeyringForGood } from './keyring-lock.js';
import { Snapshotter, snapshotFileName, type SnapshotObserver } from './snapshotter.js';
import { FrameType, type WalRecord } from './wal-codec.js';
import { Wal, type WalObserver, type WalOpenResult } from './wal.js';

/** Seals by one data key in one process after which the next snapshot brings a new key. */
const ROTATE_AFTER_SEALS = 2 ** 24;

export interface DiskRaftStorageOptions {
  /** Configuration of a brand-new group (ignored once the directory holds state). Default: no members. */
  bootstrap?: ConfState;
  segmentBytes?: number;
  keepSnapshots?: number;
  fs?: DurableFs;
  randomUint32?: () => number;
  /** The key-encryption key, when it must not come from <dir>/keys/kek. */
  kek?: Uint8Array;
  /** Seals by one key after which it is rotated at the next snapshot (see the header); for tests. */
  rotateAfterSeals?: number;
}

/** What one Ready asks to persist (a subset of the core's Ready). */
export interface PersistRequest {
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
}

export class DiskRaftStorage implements RaftLogStorage {
  private hardState: HardState;
  private snap: Snapshot;
  /** Entries after the snapshot: log[0].index === snap.metadata.index + 1. */
  private log: Entry[];
  /** Saves are applied to the in-memory view in call order, even when group commit batches them. */
  private tail: Promise<void> = Promise.resolve();
  /** Snapshot and last index once every save already called has landed; validates new saves up front. */
  private projected: { snapIndex: number; lastIndex: number };
  /** The hard state of the latest save called (landed or not). */
  private projectedHard: HardState;
  /** Nonces the keyring had drawn when the current data key took over (or at open). */
  private sealsBeforeCurrentKey = 0;
  /** The snapshot file being written beside Raft's writes (prepareSnapshot), if any. */
  private preparing: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly wal: Wal,
    private readonly snapshotter: Snapshotter,
    private readonly keyring: Keyring,
    opened: WalOpenResult,
    snapshot: Snapshot,
    private readonly rotateAfterSeals: number,
    private readonly keysDir: string,
  ) {
    this.hardState = opened.state.hardState;
    this.snap = snapshot;
    this.log = opened.state.entries;
    this.projected = { snapIndex: this.snap.metadata.index, lastIndex: this.lastIndex() };
    this.projectedHard = { ...this.hardState };
  }

  /** Recovery notes for logs: a torn tail cut off, orphan snapshot files removed. */
  readonly recovery: string[] = [];

  static async open(dir: string, options: DiskRaftStorageOptions = {}): Promise<DiskRaftStorage> {
    const walDir = join(dir, 'wal');
    const snapDir = join(dir, 'snap');
    await mkdir(walDir, { recursive: true });
    await mkdir(snapDir, { recursive: true });
    const fs = options.fs ?? nodeDurableFs;
    const fsOption = { fs };
    const unkeyed = new Snapshotter(snapDir, fsOption);
    const fresh = (await unkeyed.list()).length === 0 && (await fs.readdir(walDir)).length === 0;
    const keyring = await Keyring.open(join(dir, 'keys'), {
      fs,
      ...(options.kek ? { kek: options.kek } : {}),
      existingData: !fresh,
      encryptedDataExists: () => encryptedFilesExist(walDir, unkeyed, fs),
    });
    const snapshotter = new Snapshotter(snapDir, {
      fs,
      keys: keyring,
      ...(options.keepSnapshots === undefined ? {} : { keep: options.keepSnapshots }),
    });
    if (fresh) {
      // The bootstrap configuration is made durable as snapshot 0, so a restart cannot change it.
      const confState = options.bootstrap ?? { voters: [], learners: [] };
      await snapshotter.save({ metadata: { index: 0, term: 0, confState }, data: new Uint8Array() });
    }
    const opened = await Wal.open(walDir, {
      ...fsOption,
      keys: keyring,
      ...(options.segmentBytes === undefined ? {} : { segmentBytes: options.segmentBytes }),
      ...(options.randomUint32 ? { randomUint32: options.randomUint32 } : {}),
    });
    const marker = opened.state.snapshot;
    let snapshot: Snapshot;
    try {
      snapshot = await snapshotter.load(marker.index, marker.term);
    } catch (err) {
      await opened.wal.close();
      throw err;
    }
    const storage = new DiskRaftStorage(opened.wal, snapshotter, keyring, opened, snapshot, options.rotateAfterSeals ?? ROTATE_AFTER_SEALS, join(dir, 'keys'));
    if (opened.truncated) {
      const t = opened.truncated;
      storage.recovery.push(`cut a torn WAL tail: ${t.droppedBytes} bytes at ${t.file}:${t.offset} (${t.reason})`);
    }
    try {
      for (const name of await snapshotter.removeNewerThan(marker.index)) {
        storage.recovery.push(`removed snapshot ${name}: its WAL record was never written`);
      }
      if (keyring.acceptPlaintext) await storage.encryptOlderVersionFiles();
      // See the header: a key in use before this process started is replaced at its first snapshot.
      if (!keyring.created) await keyring.rotate();
    } catch (err) {
      await opened.wal.close();
      throw err;
    }
    return storage;
  }

  /** Seals what an older version left in plaintext (see the header); the keyring then refuses plaintext. */
  private async encryptOlderVersionFiles(): Promise<void> {
    const notes: string[] = [];
    const current = this.snap.metadata;
    for (const f of await this.snapshotter.keyIds()) {
      if (f.keyId === undefined) notes.push(`left snapshot ${f.name} as it is: its header cannot be read`);
      if (f.keyId !== 0) continue;
      if (f.name === snapshotFileName(current.index, current.term)) {
        await this.snapshotter.save(this.snap);
        notes.push(`encrypted snapshot ${f.name}`);
      } else {
        await this.snapshotter.remove(f.name);
        notes.push(`deleted older plaintext snapshot ${f.name}`);
      }
    }
    if (this.wal.segmentKeyIds().has(0)) {
      const before = this.wal.segmentNames();
      await this.wal.rewriteAll(this.log);
      notes.push(`rewrote the plaintext WAL (${before.join(', ')}) as ${this.wal.segmentNames().join(', ')}, encrypted`);
    }
    await this.keyring.finishMigration();
    if (notes.length > 0) this.recovery.push(`encryption at rest: ${notes.join('; ')}`);
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const first = this.firstIndex();
    if (lo < first) throw new LogCompactedError(lo, first);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.log[i - first] as Entry;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    const snapIndex = this.snap.metadata.index;
    if (index === snapIndex) return this.snap.metadata.term;
    if (index < snapIndex) throw new LogCompactedError(index, snapIndex + 1);
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    return (this.log[index - snapIndex - 1] as Entry).term;
  }

  firstIndex(): number {
    return this.snap.metadata.index + 1;
  }

  lastIndex(): number {
    return this.snap.metadata.index + this.log.length;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Persists one Ready's snapshot, entries and hard state (in that order, one WAL fsync), then
   * shows them through the log view. Concurrent calls share fsyncs (group commit).
   *
   * `sync: false` is only for a hard state alone that moves nothing but the commit index: it is
   * written with the next synced save and resolves without waiting for it (a lost commit index is
   * learnt again from the leader).
   */
  async save(req: PersistRequest, options: { sync?: boolean } = {}): Promise<void> {
    const sync = options.sync !== false;
    if (!sync && (req.snapshot || req.entries.length > 0)) throw new Error('save: only a hard state may be saved without sync');
    if (!sync && req.hardState && (req.hardState.term !== this.projectedHard.term || req.hardState.vote !== this.projectedHard.vote)) {
      throw new Error('save: a hard state that changes the term or vote must be synced');
    }
    // Validate everything before writing anything: a bad request must not reach the WAL.
    const first = req.entries[0];
    const projected = { ...this.projected };
    if (req.snapshot) {
      const { index } = req.snapshot.metadata;
      if (index < projected.snapIndex) throw new Error(`save: snapshot ${index} is older than snapshot ${projected.snapIndex}`);
      projected.snapIndex = index;
      projected.lastIndex = Math.max(projected.lastIndex, index);
    }
    if (first) {
      for (let i = 1; i < req.entries.length; i++) {
        if ((req.entries[i] as Entry).index !== first.index + i) throw new Error(`save: entries are not contiguous at position ${i}`);
      }
      if (first.index <= projected.snapIndex) throw new Error(`save: entry ${first.index} is at or below the snapshot index ${projected.snapIndex}`);
      if (first.index > projected.lastIndex + 1) throw new Error(`save: entry ${first.index} leaves a gap after ${projected.lastIndex}`);
      projected.lastIndex = first.index + req.entries.length - 1;
    }
    this.projected = projected;
    if (req.hardState) this.projectedHard = { ...req.hardState };
    if (req.snapshot) {
      await this.keyTakeoverAtSnapshot();
      await this.snapshotter.save(req.snapshot);
    }
    const records: WalRecord[] = [];
    if (req.snapshot) records.push({ type: FrameType.Snapshot, snapshot: { index: req.snapshot.metadata.index, term: req.snapshot.metadata.term } });
    if (req.entries.length > 0) records.push({ type: FrameType.Entries, entries: req.entries });
    if (req.hardState) records.push({ type: FrameType.HardState, hardState: req.hardState });
    const durable = this.wal.append(records, { sync });
    const applied = this.tail.then(async () => {
      await durable;
      if (req.snapshot) this.installSnapshot(req.snapshot);
      if (first) this.appendEntries(req.entries);
      if (req.hardState) this.hardState = { ...req.hardState };
    });
    // The failure reaches this save's caller (await applied below); the next save must not inherit
    // it, and meets its own (the WAL refuses every write after a failed one).
    this.tail = applied.catch(() => {});
    await applied;
    if (req.snapshot) {
      await this.snapshotter.prune();
      await this.dropUnusedKeys();
    }
  }

  /**
   * Records a snapshot the application made of its state at `index` (<= applied), drops the
   * entries it covers and releases WAL segments holding only those.
   */
  async compact(index: number, confState: ConfState, data: Uint8Array): Promise<void> {
    const snapshot = await this.prepareSnapshot(index, confState, data);
    if (snapshot) await this.commitSnapshot(snapshot);
  }

  /**
   * compact() in two steps, so the slow one can run beside Raft's writes: this one writes the
   * snapshot file (nothing refers to it yet; recovery removes it if commitSnapshot never comes).
   * Undefined when a snapshot at or past `index` is already in place.
   */
  prepareSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot | undefined> {
    const prepared = this.writeSnapshotFile(index, confState, data);
    // close() waits for it: the key takeover and the file must not land after the storage closed.
    this.preparing = prepared.catch(() => undefined);
    return prepared;
  }

  private async writeSnapshotFile(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot | undefined> {
    await this.tail;
    if (this.closed || index <= this.snap.metadata.index) return undefined;
    if (index > this.lastIndex()) throw new LogUnavailableError(index, this.lastIndex());
    const snapshot: Snapshot = { metadata: { index, term: this.term(index), confState }, data };
    await this.keyTakeoverAtSnapshot();
    await this.snapshotter.save(snapshot);
    return snapshot;
  }

  /** Makes a prepared snapshot the storage's own: to be called between Raft's writes, not beside them. */
  async commitSnapshot(snapshot: Snapshot): Promise<void> {
    await this.tail;
    const { index, term } = snapshot.metadata;
    // A newer snapshot (from the leader) was installed meanwhile: this one is left to pruning.
    if (index <= this.snap.metadata.index) return;
    await this.wal.append([{ type: FrameType.Snapshot, snapshot: { index, term } }]);
    this.installSnapshot(snapshot);
    this.projected.snapIndex = Math.max(this.projected.snapIndex, index);
    await this.snapshotter.prune();
    await this.wal.releaseTo(index);
    await this.dropUnusedKeys();
  }

  /**
   * Makes a new data key. It takes over at the next snapshot: that snapshot's file and, from the
   * WAL's next write on, a new segment are sealed with it. Older keys stay (wrapped) until no
   * segment or snapshot file on disk needs them. Returns the new key's id.
   */
  rotateDataKey(): Promise<number> {
    return this.keyring.rotate();
  }

  /**
   * Autolock (keyring-lock.ts): with an unlock key, the data keys are re-wrapped under the KEK
   * derived from it and keys/kek is shredded; without one, under a new KEK in keys/kek. True when
   * something changed. The data keys stay as they are: nothing sealed is rewritten.
   */
  protectKeys(unlockKey: Uint8Array | undefined): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return unlockKey ? lockKeyring(this.keysDir, this.keyring, unlockKey) : unlockKeyringForGood(this.keysDir, this.keyring);
  }

  /** Ids of the data keys held: the current one, a rotated one waiting, older ones still needed. */
  dataKeyIds(): { current: number; next: number | undefined; held: number[] } {
    return { current: this.keyring.current().id, next: this.keyring.nextId(), held: this.keyring.ids() };
  }

  /** A snapshot is where a rotated data key takes over; one that sealed enough here is rotated first (see the header). */
  private async keyTakeoverAtSnapshot(): Promise<void> {
    if (this.keyring.noncesDrawn() - this.sealsBeforeCurrentKey >= this.rotateAfterSeals) await this.keyring.rotate();
    if (await this.keyring.promote()) this.sealsBeforeCurrentKey = this.keyring.noncesDrawn();
  }

  /** Drops the data keys no file on disk needs any more (called once files were durably removed). */
  private async dropUnusedKeys(): Promise<void> {
    const inUse = await this.snapshotter.keyIdsInUse();
    // A snapshot file whose header cannot be read might need any key: keep them all.
    if (!inUse) return;
    for (const id of this.wal.segmentKeyIds()) inUse.add(id);
    await this.keyring.retain(inUse);
  }

  walSegments(): string[] {
    return this.wal.segmentNames();
  }

  walStats(): Wal['stats'] {
    return this.wal.stats;
  }

  /** Reports every WAL batch and snapshot file written from now on to `observer` (metrics). */
  observe(observer: WalObserver & SnapshotObserver): void {
    this.wal.observer = observer;
    this.snapshotter.observer = observer;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
    await this.preparing;
    await this.wal.close();
  }

  private installSnapshot(s: Snapshot): void {
    const { index, term } = s.metadata;
    const keepsTail = index > this.snap.metadata.index && index <= this.lastIndex() && this.term(index) === term;
    this.log = keepsTail ? this.log.slice(index - this.snap.metadata.index) : [];
    this.snap = s;
  }

  private appendEntries(es: Entry[]): void {
    const first = (es[0] as Entry).index;
    const base = this.snap.metadata.index;
    // Later entries win: a new leader's entries replace our suffix from `first` on.
    this.log.length = first - base - 1;
    for (const e of es) this.log.push(e);
  }
}

/** Whether any WAL segment or snapshot file in these directories is encrypted (read from headers only). */
async function encryptedFilesExist(walDir: string, snapshots: Snapshotter, fs: DurableFs): Promise<boolean> {
  if ((await Wal.keyIdsOnDisk(walDir, fs)).some((id) => id !== 0)) return true;
  return (await snapshots.keyIds()).some((f) => f.keyId !== undefined && f.keyId !== 0);
}
