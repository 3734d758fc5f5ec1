// The etcd Store backend, for users who already run etcd: the store contract maps almost one to
// one onto etcd's KV and Watch APIs (global revision, txn compares, watch from a revision).
//
// Watches use their own gRPC watch stream (etcd3's raw WatchClient) rather than etcd3's Watcher:
// that one drops the compact_revision of a cancelled watch and resumes after a reconnect from the
// response header revision, which for a historical batch can lie past events not yet delivered.
// Here a broken stream resumes from the last revision actually delivered + 1.
import { Etcd3, type IOptions } from 'etcd3';
import type {
  ICompare,
  IDeleteRangeResponse,
  IDuplexStream,
  IKeyValue,
  IRangeResponse,
  IRequestOp,
  IResponseOp,
  IWatchRequest,
  IWatchResponse,
} from 'etcd3/lib/rpc.js';
import { StoreClosedError } from './memory-store.js';
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

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  /** Passed through to the etcd3 client (credentials, auth, call options). */
  client?: Omit<IOptions, 'hosts'>;
}

const key = (s: string): Buffer => Buffer.from(s, 'utf8');

/** The end of the key range holding every key that starts with `prefix` (etcd's range_end). */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix, 'utf8');
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  // Empty prefix or all 0xff: every key from `prefix` on.
  return Buffer.from([0]);
}

/**
 * A response's previous key-value. etcd3's typings call prev_kv always set, but its decoder
 * (proto-loader, defaults: true) gives null when etcd had none: a new key, or prev_kv not asked.
 */
function prevKv(res: { prev_kv: IKeyValue }): IKeyValue | null {
  return (res as { prev_kv: IKeyValue | null }).prev_kv;
}

function revision(s: string | number): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Error(`etcd returned revision ${s}, beyond what this client handles`);
  return n;
}

function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: revision(kv.create_revision),
    modRevision: revision(kv.mod_revision),
    version: revision(kv.version),
  };
}

function isGrpcError(err: unknown, text: string): boolean {
  return err instanceof Error && err.message.includes(text);
}

const COMPACTED = 'required revision has been compacted';
const FUTURE = 'required revision is a future revision';

const COMPARE_RESULT = { '=': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

function toCompare(c: Compare): ICompare {
  const base: ICompare = { key: key(c.key), result: COMPARE_RESULT[c.op] };
  switch (c.target) {
    case 'value':
      return { ...base, target: 'Value', value: key(String(c.value)) };
    case 'version':
      return { ...base, target: 'Version', version: Number(c.value) };
    case 'createRevision':
      return { ...base, target: 'Create', create_revision: Number(c.value) };
    case 'modRevision':
      return { ...base, target: 'Mod', mod_revision: Number(c.value) };
  }
}

function toRequestOp(op: TxnOp): IRequestOp {
  switch (op.type) {
    case 'put':
      return { request_put: { key: key(op.key), value: key(op.value), prev_kv: true } };
    case 'delete':
      return { request_delete_range: { key: key(op.key), prev_kv: true } };
    case 'deletePrefix':
      return { request_delete_range: { key: key(op.prefix), range_end: prefixRangeEnd(op.prefix), prev_kv: true } };
    case 'get':
      return { request_range: { key: key(op.key) } };
    case 'range':
      return { request_range: { key: key(op.prefix), range_end: prefixRangeEnd(op.prefix) } };
  }
}

function deleteResult(res: IDeleteRangeResponse): TxnOpResult {
  return { type: 'delete', deleted: revision(res.deleted), prev: res.prev_kvs.map(toKeyValue) };
}

function toResult(op: TxnOp, res: IResponseOp): TxnOpResult {
  switch (op.type) {
    case 'put': {
      const prev = prevKv(res.response_put);
      return prev ? { type: 'put', prev: toKeyValue(prev) } : { type: 'put' };
    }
    case 'delete':
    case 'deletePrefix':
      return deleteResult(res.response_delete_range);
    case 'get': {
      const kv = res.response_range.kvs[0];
      return kv ? { type: 'get', kv: toKeyValue(kv) } : { type: 'get' };
    }
    case 'range':
      return { type: 'range', kvs: res.response_range.kvs.map(toKeyValue) };
  }
}

function toWatchEvent(ev: IWatchResponse['events'][number]): WatchEvent {
  const previous = prevKv(ev);
  const prev = previous ? toKeyValue(previous) : undefined;
  const kv = toKeyValue(ev.kv);
  const type = ev.type === 'Put' ? 'put' : 'delete';
  return prev ? { type, kv, prev } : { type, kv };
}

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

interface ActiveWatch {
  prefix: string;
  handler: WatchHandler;
  onError: ((err: Error) => void) | undefined;
  /** Next revision to deliver; a resumed stream starts here. */
  next: number;
  stream: WatchStream | undefined;
  ended: boolean;
  /** Batches waiting for delivery, drained on a later turn so a handler never runs inside I/O callbacks. */
  queue: Array<{ revision: number; events: WatchEvent[] }>;
  drainScheduled: boolean;
}

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly watches = new Set<ActiveWatch>();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new Error('EtcdStore: at least one endpoint is required');
    for (const e of options.endpoints) {
      if (!/^https?:\/\/[^/]+$/.test(e)) throw new Error(`EtcdStore: endpoint ${JSON.stringify(e)} is not http(s)://host:port`);
    }
    this.client = new Etcd3({ ...options.client, hosts: options.endpoints });
  }

  async get(k: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    const res = await this.client.kv.range({ key: key(k) });
    const kv = res.kvs[0];
    return kv && toKeyValue(kv);
  }

  async range(prefix: string, options?: { revision?: number }): Promise<RangeResponse> {
    this.assertOpen();
    const at = options?.revision ?? 0;
    let res: IRangeResponse;
    try {
      res = await this.client.kv.range({ key: key(prefix), range_end: prefixRangeEnd(prefix), revision: at > 0 ? at : 0 });
    } catch (err) {
      throw await this.translate(err, at);
    }
    // etcd's header carries the current revision; a read at a past revision reports that revision.
    return { kvs: res.kvs.map(toKeyValue), revision: at > 0 ? at : revision(res.header.revision) };
  }

  async put(k: string, value: string): Promise<{ revision: number; prev?: KeyValue }> {
    this.assertOpen();
    const res = await this.client.kv.put({ key: key(k), value: key(value), prev_kv: true });
    const rev = revision(res.header.revision);
    const prev = prevKv(res);
    return prev ? { revision: rev, prev: toKeyValue(prev) } : { revision: rev };
  }

  async delete(k: string): Promise<{ revision: number; deleted: number }> {
    this.assertOpen();
    const res = await this.client.kv.deleteRange({ key: key(k) });
    return { revision: revision(res.header.revision), deleted: revision(res.deleted) };
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    this.assertOpen();
    const failure = request.failure ?? [];
    const res = await this.client.kv.txn({
      compare: request.compare.map(toCompare),
      success: request.success.map(toRequestOp),
      failure: failure.map(toRequestOp),
    });
    const ops = res.succeeded ? request.success : failure;
    // Repeated fields come as [] when empty (proto-loader, defaults: true).
    const responses = res.responses;
    if (responses.length !== ops.length) throw new Error(`etcd answered ${responses.length} results for ${ops.length} txn ops`);
    return {
      succeeded: res.succeeded,
      revision: revision(res.header.revision),
      results: ops.map((op, i) => toResult(op, responses[i] as IResponseOp)),
    };
  }

  async watch(prefix: string, fromRevision: number, handler: WatchHandler, onError?: (err: Error) => void): Promise<Watch> {
    this.assertOpen();
    if (fromRevision > 0) {
      // etcd acknowledges a watch below the compaction revision as created and cancels it only
      // afterwards, so check first; a compaction racing past this check ends the watch via onError.
      try {
        await this.client.kv.range({ key: Buffer.from([0]), count_only: true, revision: fromRevision });
      } catch (err) {
        if (!isGrpcError(err, FUTURE)) throw await this.translate(err, fromRevision);
      }
    }
    const w: ActiveWatch = { prefix, handler, onError, next: fromRevision, stream: undefined, ended: false, queue: [], drainScheduled: false };
    await this.openStream(w);
    this.watches.add(w);
    return { cancel: () => this.endWatch(w) };
  }

  async compact(rev: number): Promise<void> {
    this.assertOpen();
    try {
      await this.client.kv.compact({ revision: rev, physical: true });
    } catch (err) {
      throw await this.translate(err, rev);
    }
  }

  async currentRevision(): Promise<number> {
    this.assertOpen();
    // A count-only read of a single key is the cheapest linearizable way to learn the revision.
    const res = await this.client.kv.range({ key: Buffer.from([0]), count_only: true });
    return revision(res.header.revision);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ended = [...this.watches];
    for (const w of ended) this.endWatch(w);
    this.client.close();
    setImmediate(() => {
      for (const w of ended) w.onError?.(new StoreClosedError());
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }

  /** Maps etcd's "compacted"/"future revision" errors onto the store contract's errors. */
  private async translate(err: unknown, requested: number): Promise<unknown> {
    if (isGrpcError(err, COMPACTED)) return new CompactedError(requested, await this.compactRevision());
    if (isGrpcError(err, FUTURE)) return new FutureRevisionError(requested, await this.currentRevision());
    return err;
  }

  /** etcd reports the compaction revision only on a cancelled watch, so ask with one from revision 1. */
  private async compactRevision(): Promise<number> {
    const stream = await this.client.watchClient.watch();
    try {
      return await new Promise<number>((resolve, reject) => {
        stream.on('data', (res) => resolve(revision(res.compact_revision || 0)));
        stream.on('error', reject);
        stream.write({ create_request: { key: Buffer.from([0]), start_revision: 1 } });
      });
    } finally {
      stream.cancel();
    }
  }

  /** Opens (or re-opens) the watch stream for w from w.next; resolves once etcd created the watch. */
  private async openStream(w: ActiveWatch): Promise<void> {
    const stream = await this.client.watchClient.watch();
    w.stream = stream;
    await new Promise<void>((resolve, reject) => {
      let created = false;
      stream.on('data', (res) => {
        if (res.canceled) {
          const compacted = revision(res.compact_revision || 0);
          const err =
            compacted > 0
              ? new CompactedError(w.next, compacted)
              : new Error(`etcd cancelled the watch on ${w.prefix}: ${res.cancel_reason || 'no reason given'}`);
          if (!created) reject(err);
          else this.failWatch(w, err);
          stream.cancel();
          return;
        }
        if (res.created) {
          created = true;
          // A "from now" watch starts after the revision current at creation.
          if (w.next === 0) w.next = revision(res.header.revision) + 1;
          resolve();
        }
        this.receive(w, res);
      });
      stream.on('error', (err) => {
        if (!created) reject(err);
        else this.resume(w, stream);
      });
      stream.on('end', () => {
        if (created) this.resume(w, stream);
      });
      stream.write({
        create_request: {
          key: key(w.prefix),
          range_end: prefixRangeEnd(w.prefix),
          prev_kv: true,
          ...(w.next > 0 ? { start_revision: w.next } : {}),
        },
      });
    }).catch((err: unknown) => {
      stream.cancel();
      throw err;
    });
  }

  private receive(w: ActiveWatch, res: IWatchResponse): void {
    if (w.ended || res.events.length === 0) return;
    // One response may hold several revisions; the contract delivers one batch per revision.
    for (const ev of res.events) {
      const event = toWatchEvent(ev);
      const rev = event.kv.modRevision;
      if (rev < w.next) continue; // already delivered before a resume
      const last = w.queue[w.queue.length - 1];
      if (last && last.revision === rev) last.events.push(event);
      else w.queue.push({ revision: rev, events: [event] });
    }
    const last = w.queue[w.queue.length - 1];
    if (last) w.next = last.revision + 1;
    this.scheduleDrain(w);
  }

  private scheduleDrain(w: ActiveWatch): void {
    if (w.drainScheduled || w.queue.length === 0) return;
    w.drainScheduled = true;
    setImmediate(() => {
      w.drainScheduled = false;
      const batches = w.queue;
      w.queue = [];
      try {
        for (const b of batches) {
          if (w.ended) return;
          w.handler(b.events, b.revision);
        }
      } catch (err) {
        this.failWatch(w, err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** A broken stream (member down, connection reset) resumes from the next undelivered revision. */
  private resume(w: ActiveWatch, broken: WatchStream): void {
    if (w.ended || w.stream !== broken || this.closed) return;
    w.stream = undefined;
    broken.cancel();
    setTimeout(() => {
      if (w.ended || this.closed) return;
      this.openStream(w).catch((err: unknown) => this.failWatch(w, err instanceof Error ? err : new Error(String(err))));
    }, 100);
  }

  private failWatch(w: ActiveWatch, err: Error): void {
    if (w.ended) return;
    this.endWatch(w);
    w.onError?.(err);
  }

  private endWatch(w: ActiveWatch): void {
    if (w.ended) return;
    w.ended = true;
    w.queue = [];
    this.watches.delete(w);
    w.stream?.cancel();
    w.stream = undefined;
  }
}
