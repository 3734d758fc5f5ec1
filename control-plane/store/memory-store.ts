// The in-memory Store backend: the reference implementation of the store contract, used by unit
// tests and as the state machine the Raft backend applies committed entries to. It follows etcd's
// semantics closely (revisions start at 1, the first write makes 2; an absent key compares as
// version/createRevision/modRevision 0; deleting an absent key writes nothing) so that code tested
// against it behaves the same on the etcd backend.
import {
  CompactedError,
  FutureRevisionError,
  type Compare,
  type KeyValue,
  type RangeResponse,
  type Store,
  type TxnOp,
  type TxnOpResult,
  type TxnRequest,
  type TxnResponse,
  type Watch,
  type WatchEvent,
  type WatchHandler,
} from './store.js';

export class StoreClosedError extends Error {
  constructor() {
    super('store is closed');
    this.name = 'StoreClosedError';
  }
}

/** One entry in a key's history; kv undefined is a tombstone (the key was deleted at `revision`). */
interface KeyVersion {
  revision: number;
  kv: KeyValue | undefined;
}

interface LogEntry {
  revision: number;
  events: WatchEvent[];
}

interface Watcher {
  prefix: string;
  handler: WatchHandler;
  onError: ((err: Error) => void) | undefined;
  queue: LogEntry[];
  active: boolean;
  drainScheduled: boolean;
}

export class MemoryStore implements Store {
  private revision = 1;
  /** Reads and watches below this revision fail; 0 until the first compaction. */
  private compactRevision = 0;
  private readonly history = new Map<string, KeyVersion[]>();
  /** Every key that has history, sorted, so a prefix range is a binary search plus a scan. */
  private readonly sortedKeys: string[] = [];
  private readonly log: LogEntry[] = [];
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    const kv = this.current(key);
    return kv && { ...kv };
  }

  async range(prefix: string, options?: { revision?: number }): Promise<RangeResponse> {
    this.assertOpen();
    const requested = options?.revision ?? 0;
    const at = requested > 0 ? requested : this.revision;
    if (at > this.revision) throw new FutureRevisionError(at, this.revision);
    if (at < this.compactRevision) throw new CompactedError(at, this.compactRevision);
    return { kvs: this.rangeAt(prefix, at), revision: at };
  }

  async put(key: string, value: string): Promise<{ revision: number; prev?: KeyValue }> {
    const res = await this.txn({ compare: [], success: [{ type: 'put', key, value }] });
    const result = res.results[0];
    const prev = result?.type === 'put' ? result.prev : undefined;
    return prev ? { revision: res.revision, prev } : { revision: res.revision };
  }

  async delete(key: string): Promise<{ revision: number; deleted: number }> {
    const res = await this.txn({ compare: [], success: [{ type: 'delete', key }] });
    const result = res.results[0];
    return { revision: res.revision, deleted: result?.type === 'delete' ? result.deleted : 0 };
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    this.assertOpen();
    const succeeded = request.compare.every((c) => this.evaluate(c));
    const ops = succeeded ? request.success : (request.failure ?? []);
    // Validate before touching anything, so a rejected txn leaves no trace.
    assertNoDuplicateWrites(ops);

    const writeRevision = this.revision + 1;
    const events: WatchEvent[] = [];
    const results = ops.map((op) => this.apply(op, writeRevision, events));
    if (events.length > 0) {
      this.revision = writeRevision;
      const entry = { revision: writeRevision, events };
      this.log.push(entry);
      this.notify(entry);
    }
    return { succeeded, revision: this.revision, results };
  }

  async watch(
    prefix: string,
    fromRevision: number,
    handler: WatchHandler,
    onError?: (err: Error) => void,
  ): Promise<Watch> {
    this.assertOpen();
    const start = fromRevision > 0 ? fromRevision : this.revision + 1;
    if (start < this.compactRevision) throw new CompactedError(start, this.compactRevision);
    const watcher: Watcher = { prefix, handler, onError, queue: [], active: true, drainScheduled: false };
    // Registration and the history snapshot happen in one synchronous step, so no write can fall
    // between the replayed history and the first live event.
    for (const entry of this.log) {
      if (entry.revision < start) continue;
      const matching = entry.events.filter((e) => e.kv.key.startsWith(prefix));
      if (matching.length > 0) watcher.queue.push({ revision: entry.revision, events: matching });
    }
    this.watchers.add(watcher);
    this.scheduleDrain(watcher);
    return {
      cancel: () => {
        watcher.active = false;
        watcher.queue = [];
        this.watchers.delete(watcher);
      },
    };
  }

  async compact(revision: number): Promise<void> {
    this.assertOpen();
    if (revision > this.revision) throw new FutureRevisionError(revision, this.revision);
    if (revision < this.compactRevision) throw new CompactedError(revision, this.compactRevision);
    this.compactRevision = revision;
    for (let i = this.sortedKeys.length - 1; i >= 0; i--) {
      const key = this.sortedKeys[i] as string;
      const versions = this.history.get(key) as KeyVersion[];
      // Keep the newest version at or before `revision` (it is what a read at `revision` sees),
      // unless it is a tombstone: then nothing at or after `revision` needs it.
      const visible = lastIndexAtOrBefore(versions, revision);
      if (visible < 0) continue;
      const dropThrough = versions[visible]?.kv ? visible - 1 : visible;
      if (dropThrough >= 0) versions.splice(0, dropThrough + 1);
      if (versions.length === 0) {
        this.history.delete(key);
        this.sortedKeys.splice(i, 1);
      }
    }
    const firstKept = this.log.findIndex((e) => e.revision >= revision);
    this.log.splice(0, firstKept < 0 ? this.log.length : firstKept);
  }

  async currentRevision(): Promise<number> {
    this.assertOpen();
    return this.revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ended = [...this.watchers];
    this.watchers.clear();
    for (const w of ended) {
      w.active = false;
      w.queue = [];
    }
    setImmediate(() => {
      for (const w of ended) w.onError?.(new StoreClosedError());
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }

  private current(key: string): KeyValue | undefined {
    const versions = this.history.get(key);
    return versions?.[versions.length - 1]?.kv;
  }

  private rangeAt(prefix: string, at: number): KeyValue[] {
    const kvs: KeyValue[] = [];
    for (let i = lowerBound(this.sortedKeys, prefix); i < this.sortedKeys.length; i++) {
      const key = this.sortedKeys[i] as string;
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
      this.sortedKeys.splice(lowerBound(this.sortedKeys, key), 0, key);
    }
    versions.push(version);
  }

  private notify(entry: LogEntry): void {
    for (const w of this.watchers) {
      const matching = entry.events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (matching.length === 0) continue;
      w.queue.push({ revision: entry.revision, events: matching });
      this.scheduleDrain(w);
    }
  }

  // Delivery always happens on a later turn of the event loop: a writer never runs watch handlers
  // inside its own call, and a slow handler delays only its own queue, never the write path.
  private scheduleDrain(w: Watcher): void {
    if (w.drainScheduled || w.queue.length === 0) return;
    w.drainScheduled = true;
    setImmediate(() => {
      w.drainScheduled = false;
      let delivered = 0;
      try {
        while (w.active && delivered < w.queue.length) {
          const entry = w.queue[delivered++] as LogEntry;
          w.handler(entry.events, entry.revision);
        }
      } catch (err) {
        // A handler that throws has lost track of the stream; end the watch so its owner re-lists.
        w.active = false;
        this.watchers.delete(w);
        w.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
      w.queue.splice(0, delivered);
    });
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
function assertNoDuplicateWrites(ops: TxnOp[]): void {
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
