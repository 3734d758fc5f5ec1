// The in-memory Store backend: the reference implementation of the store contract, used by unit
// tests and with `tsd --store memory`. The MVCC semantics live in mvcc/mvcc-state.ts, shared with
// the Raft backend (which applies committed entries to the same state), so the two cannot drift.
import { MvccState, type MvccStats } from './mvcc/mvcc-state.js';
import { WatchHub } from './mvcc/watch-hub.js';
import type { KeyValue, RangeResponse, Store, TxnRequest, TxnResponse, Watch, WatchHandler } from './store.js';
import { deleteByTxn, putByTxn } from './single-key-ops.js';

export class StoreClosedError extends Error {
  constructor() {
    super('store is closed');
    this.name = 'StoreClosedError';
  }
}

export class MemoryStore implements Store {
  private readonly state = new MvccState();
  private readonly hub = new WatchHub();
  private closed = false;
  /** Told how long each compaction took (metrics); must be cheap and must not throw. */
  onCompaction: ((seconds: number) => void) | undefined;

  mvccStats(): MvccStats {
    return this.state.stats();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    return this.state.get(key);
  }

  async range(prefix: string, options?: { revision?: number }): Promise<RangeResponse> {
    this.assertOpen();
    return this.state.range(prefix, options?.revision ?? 0);
  }

  put(key: string, value: string): Promise<{ revision: number; prev?: KeyValue }> {
    return putByTxn((r) => this.txn(r), key, value);
  }

  delete(key: string): Promise<{ revision: number; deleted: number }> {
    return deleteByTxn((r) => this.txn(r), key);
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    this.assertOpen();
    const { response, entry } = this.state.txn(request);
    if (entry) this.hub.notify(entry);
    return response;
  }

  async watch(prefix: string, fromRevision: number, handler: WatchHandler, onError?: (err: Error) => void): Promise<Watch> {
    this.assertOpen();
    return this.hub.watch(this.state, prefix, fromRevision, handler, onError);
  }

  async compact(revision: number): Promise<void> {
    this.assertOpen();
    const started = performance.now();
    this.state.compact(revision);
    this.onCompaction?.((performance.now() - started) / 1000);
  }

  async currentRevision(): Promise<number> {
    this.assertOpen();
    return this.state.revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.endAll(new StoreClosedError());
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }
}
