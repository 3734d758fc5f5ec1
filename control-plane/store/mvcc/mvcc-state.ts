// The MVCC state shared by every Store backend that keeps its own data (memory, raft): one global
// revision, per-key version history, the event log watches replay from, compaction, and a
// serialised form for Raft snapshots. Pure and synchronous: no timers, no I/O, no watch delivery
// (that is watch-hub.ts), so applying the same commands in the same order gives the same state on
// every member. Semantics follow etcd (revisions start at 1, the first write makes 2; an absent key
// compares as version/createRevision/modRevision 0; deleting an absent key writes nothing).
import {
  CompactedError,
  FutureRevisionError,
  type Compare,
  type KeyValue,
  type TxnOp,
  type TxnOpResult,
  type TxnRequest,
  type TxnResponse,
  type WatchEvent,
} from '../store.js';

/** One entry in a key's history; kv undefined is a tombstone (the key was deleted at `revision`). */
export interface KeyVersion {
  revision: number;
  kv: KeyValue | undefined;
}

/** The events written at one revision, as watches see them. */
export interface LogEntry {
  revision: number;
  events: WatchEvent[];
}

/**
 * A snapshot. Version 2 writes a log entry whose events the history can reproduce as
 * [revision, [['p' | 'd', key], …]] (put or delete, in the txn's order) instead of the events with
 * their values and previous values, which the history holds already; that is most of them, and
 * the snapshot shrinks to about a third. Version 1 (every entry whole) is still read.
 */
interface SerializedState {
  v: 1 | 2;
  revision: number;
  compactRevision: number;
  history: Array<[string, KeyVersion[]]>;
  log: Array<LogEntry | LogEntryRef>;
}

type LogEntryRef = [revision: number, events: Array<['p' | 'd', string]>];

/** Sizes for metrics, kept up to date as writes are applied (no scan when they are read). */
export interface MvccStats {
  revision: number;
  compactRevision: number;
  /** Keys that exist now (not deleted). */
  keys: number;
  /** Characters of keys and values in every version held (about bytes: keys and values are mostly ASCII JSON). */
  sizeHeld: number;
}

/** What one version holds (see MvccStats.sizeHeld). */
function versionSize(key: string, version: KeyVersion): number {
  return key.length + (version.kv ? version.kv.value.length : 0);
}

export class MvccState {
  revision = 1;
  /** Reads and watches below this revision fail; 0 until the first compaction. */
  compactRevision = 0;
  private history = new Map<string, KeyVersion[]>();
  /**
   * Every key that has history, sorted, so a prefix range is a binary search plus a scan; keys
   * new since it was last needed wait in newKeys and are merged in by keysInOrder(), so a stream
   * of new keys costs a sort of the newcomers per read instead of a splice into the whole array
   * per write.
   */
  private sortedKeys: string[] = [];
  private newKeys: string[] = [];
  private log: LogEntry[] = [];
  private liveKeys = 0;
  private sizeHeld = 0;

  stats(): MvccStats {
    return { revision: this.revision, compactRevision: this.compactRevision, keys: this.liveKeys, sizeHeld: this.sizeHeld };
  }

  get(key: string): KeyValue | undefined {
    const kv = this.current(key);
    return kv && { ...kv };
  }

  /** Keys under prefix at `revision` (0: current). */
  range(prefix: string, revision = 0): { kvs: KeyValue[]; revision: number } {
    const at = revision > 0 ? revision : this.revision;
    if (at > this.revision) throw new FutureRevisionError(at, this.revision);
    if (at < this.compactRevision) throw new CompactedError(at, this.compactRevision);
    return { kvs: this.rangeAt(prefix, at), revision: at };
  }

  /** Applies a transaction; `entry` is set when it wrote something (for watchers). */
  txn(request: TxnRequest): { response: TxnResponse; entry?: LogEntry } {
    const succeeded = request.compare.every((c) => this.evaluate(c));
    const ops = succeeded ? request.success : (request.failure ?? []);
    // Validate before touching anything, so a rejected txn leaves no trace.
    assertNoDuplicateWrites(ops);
    const writeRevision = this.revision + 1;
    const events: WatchEvent[] = [];
    const results = ops.map((op) => this.apply(op, writeRevision, events));
    if (events.length === 0) return { response: { succeeded, revision: this.revision, results } };
    this.revision = writeRevision;
    const entry = { revision: writeRevision, events };
    this.log.push(entry);
    return { response: { succeeded, revision: this.revision, results }, entry };
  }

  /** The logged revisions >= start whose events match prefix. Throws CompactedError. */
  historyFrom(prefix: string, start: number): LogEntry[] {
    if (start < this.compactRevision) throw new CompactedError(start, this.compactRevision);
    const out: LogEntry[] = [];
    for (const entry of this.log) {
      if (entry.revision < start) continue;
      const matching = entry.events.filter((e) => e.kv.key.startsWith(prefix));
      if (matching.length > 0) out.push({ revision: entry.revision, events: matching });
    }
    return out;
  }

  compact(revision: number): void {
    if (revision > this.revision) throw new FutureRevisionError(revision, this.revision);
    if (revision < this.compactRevision) throw new CompactedError(revision, this.compactRevision);
    this.compactRevision = revision;
    // New arrays rather than splicing in place: a snapshot being written in slices
    // (serializeInSlices) holds the old ones and must see them as they were.
    const keys: string[] = [];
    for (const key of this.keysInOrder()) {
      const versions = this.history.get(key) as KeyVersion[];
      // Keep the newest version at or before `revision` (it is what a read at `revision` sees),
      // unless it is a tombstone: then nothing at or after `revision` needs it.
      const visible = lastIndexAtOrBefore(versions, revision);
      const dropThrough = visible < 0 ? -1 : versions[visible]?.kv ? visible - 1 : visible;
      for (let i = 0; i <= dropThrough; i++) this.sizeHeld -= versionSize(key, versions[i] as KeyVersion);
      if (dropThrough >= 0) {
        if (dropThrough + 1 === versions.length) {
          this.history.delete(key);
          continue;
        }
        this.history.set(key, versions.slice(dropThrough + 1));
      }
      keys.push(key);
    }
    this.sortedKeys = keys;
    const firstKept = this.log.findIndex((e) => e.revision >= revision);
    this.log = firstKept < 0 ? [] : this.log.slice(firstKept);
  }

  serialize(): Uint8Array {
    return Buffer.from([...this.serializedPieces()].join(''));
  }

  /**
   * serialize() in slices of about `sliceMs`, awaiting `pause` between them, so a large state does
   * not hold up the event loop (Raft heartbeats). The bytes are the state as it was when called,
   * whatever is applied meanwhile: histories and the log only grow at the end (cut off here at
   * the revision of the call) and compaction replaces arrays instead of changing them.
   */
  async serializeInSlices(pause: () => Promise<void>, sliceMs = 4): Promise<Uint8Array> {
    const pieces = this.serializedPieces();
    const chunks: Buffer[] = [];
    let text: string[] = [];
    let sliceStart = performance.now();
    let n = 0;
    for (let next = pieces.next(); !next.done; next = pieces.next()) {
      text.push(next.value);
      if (++n % 256 !== 0 || performance.now() - sliceStart < sliceMs) continue;
      chunks.push(Buffer.from(text.join('')));
      text = [];
      await pause();
      sliceStart = performance.now();
    }
    chunks.push(Buffer.from(text.join('')));
    return Buffer.concat(chunks);
  }

  /** The JSON of a SerializedState, piece by piece; what it covers is fixed at the first next(). */
  private *serializedPieces(): Generator<string, void, undefined> {
    const at = this.revision;
    // Captured now: the histories and the log as arrays (compaction replaces them rather than
    // changing them; writes only append, past `at`, which is cut off below).
    const captured = new Map(this.keysInOrder().map((k) => [k, this.history.get(k) as KeyVersion[]]));
    const log = this.log;
    const logLength = log.length;
    yield `{"v":2,"revision":${at},"compactRevision":${this.compactRevision},"history":[`;
    let separator = '';
    for (const [key, all] of captured) {
      let end = all.length;
      while (end > 0 && (all[end - 1] as KeyVersion).revision > at) end--;
      if (end === 0) continue;
      yield `${separator}${JSON.stringify([key, end === all.length ? all : all.slice(0, end)])}`;
      separator = ',';
    }
    yield '],"log":[';
    for (let i = 0; i < logLength; i++) {
      const e = log[i] as LogEntry;
      if (e.revision > at) break;
      yield `${i === 0 ? '' : ','}${JSON.stringify(logEntryRef(e, captured) ?? e)}`;
    }
    yield ']}';
  }

  /** Rebuilds a state from serialize()'s bytes; empty bytes are a fresh state. */
  static deserialize(data: Uint8Array): MvccState {
    const s = new MvccState();
    if (data.length === 0) return s;
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(data));
    } catch (err) {
      throw new Error(`mvcc snapshot: not JSON: ${(err as Error).message}`);
    }
    if (!looksSerialized(parsed)) {
      throw new Error('mvcc snapshot: unknown format (expected version 1 or 2 with revision, history and log)');
    }
    s.revision = parsed.revision;
    s.compactRevision = parsed.compactRevision;
    s.history = new Map(parsed.history);
    s.sortedKeys = parsed.history.map(([k]) => k);
    for (const [key, versions] of parsed.history) {
      if (!Array.isArray(versions)) throw new Error(`mvcc snapshot: the history of ${JSON.stringify(String(key)).slice(0, 80)} is not a list`);
      for (const v of versions) s.sizeHeld += versionSize(key, v);
      if (versions[versions.length - 1]?.kv) s.liveKeys++;
    }
    s.log = parsed.log.map((e) => (Array.isArray(e) ? logEntryFrom(e, s.history) : e));
    return s;
  }

  private current(key: string): KeyValue | undefined {
    const versions = this.history.get(key);
    return versions?.[versions.length - 1]?.kv;
  }

  private keysInOrder(): string[] {
    if (this.newKeys.length > 0) {
      this.sortedKeys = mergeSorted(this.sortedKeys, this.newKeys.sort());
      this.newKeys = [];
    }
    return this.sortedKeys;
  }

  private rangeAt(prefix: string, at: number): KeyValue[] {
    const kvs: KeyValue[] = [];
    const keys = this.keysInOrder();
    for (let i = lowerBound(keys, prefix); i < keys.length; i++) {
      const key = keys[i] as string;
      if (!key.startsWith(prefix)) break;
      const versions = this.history.get(key) as KeyVersion[];
      const kv = versions[lastIndexAtOrBefore(versions, at)]?.kv;
      if (kv) kvs.push({ ...kv });
    }
    return kvs;
  }

  private evaluate(c: Compare): boolean {
    const kv = this.current(c.key);
    if (c.target === 'value') {
      // etcd: a value comparison on an absent key is always false, whatever the operator.
      if (!kv) return false;
      return compareWith(c.op, kv.value, String(c.value));
    }
    const actual = kv ? kv[c.target] : 0;
    return compareWith(c.op, actual, Number(c.value));
  }

  private apply(op: TxnOp, writeRevision: number, events: WatchEvent[]): TxnOpResult {
    switch (op.type) {
      case 'put': {
        const prev = this.current(op.key);
        const kv: KeyValue = {
          key: op.key,
          value: op.value,
          createRevision: prev ? prev.createRevision : writeRevision,
          modRevision: writeRevision,
          version: prev ? prev.version + 1 : 1,
        };
        this.record(op.key, { revision: writeRevision, kv });
        events.push(prev ? { type: 'put', kv: { ...kv }, prev: { ...prev } } : { type: 'put', kv: { ...kv } });
        return prev ? { type: 'put', prev: { ...prev } } : { type: 'put' };
      }
      case 'delete': {
        const prev = this.deleteKey(op.key, writeRevision, events);
        return { type: 'delete', deleted: prev ? 1 : 0, prev: prev ? [{ ...prev }] : [] };
      }
      case 'deletePrefix': {
        const prevs: KeyValue[] = [];
        for (const kv of this.rangeAt(op.prefix, this.revision + 1)) {
          const prev = this.deleteKey(kv.key, writeRevision, events);
          if (prev) prevs.push({ ...prev });
        }
        return { type: 'delete', deleted: prevs.length, prev: prevs };
      }
      case 'get': {
        const kv = this.current(op.key);
        return kv ? { type: 'get', kv: { ...kv } } : { type: 'get' };
      }
      case 'range':
        return { type: 'range', kvs: this.rangeAt(op.prefix, writeRevision) };
    }
  }

  private deleteKey(key: string, writeRevision: number, events: WatchEvent[]): KeyValue | undefined {
    const prev = this.current(key);
    if (!prev) return undefined;
    this.record(key, { revision: writeRevision, kv: undefined });
    events.push({
      type: 'delete',
      kv: { key, value: '', createRevision: 0, modRevision: writeRevision, version: 0 },
      prev: { ...prev },
    });
    return prev;
  }

  private record(key: string, version: KeyVersion): void {
    let versions = this.history.get(key);
    if (!versions) {
      versions = [];
      this.history.set(key, versions);
      this.newKeys.push(key);
    }
    const wasLive = versions[versions.length - 1]?.kv !== undefined;
    if (version.kv && !wasLive) this.liveKeys++;
    else if (!version.kv && wasLive) this.liveKeys--;
    this.sizeHeld += versionSize(key, version);
    versions.push(version);
  }
}

function compareWith<T extends string | number>(op: Compare['op'], actual: T, expected: T): boolean {
  switch (op) {
    case '=':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

/** etcd rejects a txn that writes one key twice; so do we, so both backends accept the same txns. */
export function assertNoDuplicateWrites(ops: TxnOp[]): void {
  const putKeys = new Set<string>();
  const deletedKeys = new Set<string>();
  const deletedPrefixes: string[] = [];
  for (const op of ops) {
    if (op.type === 'put') {
      if (putKeys.has(op.key)) throw new Error(`duplicate key in txn: ${op.key}`);
      putKeys.add(op.key);
    } else if (op.type === 'delete') {
      deletedKeys.add(op.key);
    } else if (op.type === 'deletePrefix') {
      deletedPrefixes.push(op.prefix);
    }
  }
  for (const key of putKeys) {
    if (deletedKeys.has(key) || deletedPrefixes.some((p) => key.startsWith(p))) {
      throw new Error(`txn both puts and deletes key ${key}`);
    }
  }
}

/** Index of the version written at exactly `revision`, or -1. */
function indexAt(versions: KeyVersion[], revision: number): number {
  const i = lastIndexAtOrBefore(versions, revision);
  return i >= 0 && (versions[i] as KeyVersion).revision === revision ? i : -1;
}

/** The short form of a log entry, when the history reproduces every event of it exactly. */
function logEntryRef(e: LogEntry, history: Map<string, KeyVersion[]>): LogEntryRef | undefined {
  const refs: LogEntryRef[1] = [];
  for (const ev of e.events) {
    const versions = history.get(ev.kv.key);
    const i = versions ? indexAt(versions, e.revision) : -1;
    if (!versions || i < 0) return undefined;
    if ((ev.type === 'put') !== ((versions[i] as KeyVersion).kv !== undefined)) return undefined;
    // Compaction may have dropped the version before (an event at the compacted revision itself).
    if (ev.prev?.modRevision !== versions[i - 1]?.kv?.modRevision) return undefined;
    refs.push([ev.type === 'put' ? 'p' : 'd', ev.kv.key]);
  }
  return [e.revision, refs];
}

/** A log entry rebuilt from its short form and the history, as the write made it. */
function logEntryFrom(ref: unknown[], history: Map<string, KeyVersion[]>): LogEntry {
  const [revision, refs] = ref;
  if (!Number.isSafeInteger(revision) || !Array.isArray(refs)) throw new Error('mvcc snapshot: a log entry reference is not [revision, events]');
  const events = refs.map((r: unknown): WatchEvent => {
    const [type, key] = Array.isArray(r) ? r : [];
    const versions = typeof key === 'string' ? history.get(key) : undefined;
    const i = versions ? indexAt(versions, revision as number) : -1;
    if (!versions || i < 0) throw new Error(`mvcc snapshot: the log at revision ${String(revision)} names ${JSON.stringify(key)}, which has no version there`);
    const kv = (versions[i] as KeyVersion).kv;
    const prev = versions[i - 1]?.kv;
    if (type === 'p' && kv) return prev ? { type: 'put', kv: { ...kv }, prev: { ...prev } } : { type: 'put', kv: { ...kv } };
    if (type === 'd' && !kv && prev) {
      return { type: 'delete', kv: { key: key as string, value: '', createRevision: 0, modRevision: revision as number, version: 0 }, prev: { ...prev } };
    }
    throw new Error(
      `mvcc snapshot: the log at revision ${String(revision)} has a ${JSON.stringify(type)} of ${JSON.stringify(key)} that its history contradicts`,
    );
  });
  return { revision: revision as number, events };
}

/** The outline of a SerializedState (the snapshot bytes come from disk or from the leader). */
function looksSerialized(v: unknown): v is SerializedState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return (s.v === 1 || s.v === 2) && Number.isSafeInteger(s.revision) && Array.isArray(s.history) && Array.isArray(s.log);
}

/** The sorted union of two sorted arrays with no element in common. */
function mergeSorted(a: string[], b: string[]): string[] {
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push((a[i] as string) < (b[j] as string) ? (a[i++] as string) : (b[j++] as string));
  while (i < a.length) out.push(a[i++] as string);
  while (j < b.length) out.push(b[j++] as string);
  return out;
}

/** Index of the first element >= value in a sorted array. */
function lowerBound(sorted: string[], value: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the newest version with revision <= at, or -1. */
function lastIndexAtOrBefore(versions: KeyVersion[], at: number): number {
  let lo = 0;
  let hi = versions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((versions[mid] as KeyVersion).revision <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
