// A Store that seals every value before it reaches the store beneath (etcd) and opens every value
// it reads, with the data keys of a StoreKeyring (store-keyring.ts) and the sealing primitives of
// Raft storage (sealed-value.ts). Key names stay plaintext, so prefixes, ranges, revisions and
// watches work unchanged; a value changed in the store directly, or moved to another key, is
// refused with the key named (SealedValueError), never returned.
//
// Value comparisons cannot run on ciphertext (each seal has a fresh nonce), so a transaction that
// compares values is run as an optimistic read-decide-write: every compared key is read at one
// revision, the comparisons are decided here on the opened values, and the chosen branch is
// written guarded by each compared key's mod revision (retried when one changed). Transactions
// without value comparisons (all of Tessera's own) go through in one round trip.
import { sealValue, isSealedValue, openValue, SealedValueError } from './sealed-value.js';
import { SEALING_PREFIX, StoreKeyring } from './store-keyring.js';
import type { Compare, KeyValue, RangeResponse, Store, TxnOp, TxnOpResult, TxnRequest, TxnResponse, Watch, WatchEvent, WatchHandler } from './store.js';

/** Read-decide-write attempts of a value-comparing transaction before it gives up. */
const MAX_VALUE_COMPARE_ATTEMPTS = 100;
/** Where Tessera's own values live: what a keyring made over an existing store migrates. */
const TESSERA_PREFIX = '/tessera/';

function isSealingKey(key: string): boolean {
  return key.startsWith(SEALING_PREFIX);
}

/** A prefix whose range would include the keyring's keys. */
function coversSealing(prefix: string): boolean {
  return SEALING_PREFIX.startsWith(prefix) || prefix.startsWith(SEALING_PREFIX);
}

function refuseSealingKey(key: string): void {
  if (isSealingKey(key)) throw new Error(`sealed store: ${key} belongs to the store keyring and cannot be written through the store`);
}

/** etcd's comparison semantics (mvcc-state.ts holds the same for the memory and Raft stores); values compare as bytes. */
function compareHolds(c: Compare, kv: KeyValue | undefined): boolean {
  if (c.target === 'value') {
    // A value comparison on an absent key is always false, whatever the operator.
    if (!kv) return false;
    const order = Buffer.compare(Buffer.from(kv.value, 'utf8'), Buffer.from(String(c.value), 'utf8'));
    return c.op === '=' ? order === 0 : c.op === '!=' ? order !== 0 : c.op === '<' ? order < 0 : order > 0;
  }
  const actual = kv ? kv[c.target] : 0;
  const expected = Number(c.value);
  return c.op === '=' ? actual === expected : c.op === '!=' ? actual !== expected : c.op === '<' ? actual < expected : actual > expected;
}

export class SealedStore implements Store {
  private constructor(
    private readonly inner: Store,
    private readonly keyring: StoreKeyring,
  ) {}

  /**
   * Wraps `inner`, whose values are sealed with the keyring it holds (made now when it has none)
   * under `kek`. A store that held plaintext Tessera values before is sealed value by value first.
   */
  static async open(inner: Store, kek: Uint8Array, log: (message: string) => void = () => undefined): Promise<SealedStore> {
    const keyring = await StoreKeyring.open(inner, kek, async () => (await inner.range(TESSERA_PREFIX)).kvs.length > 0);
    const store = new SealedStore(inner, keyring);
    if (keyring.acceptPlaintext) {
      const sealed = await store.sealPlaintextValues();
      await keyring.finishMigration(inner, kek);
      log(`sealed store: ${sealed} plaintext value(s) under ${TESSERA_PREFIX} sealed; plaintext is refused from now on`);
    }
    return store;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    if (isSealingKey(key)) return undefined;
    const kv = await this.inner.get(key);
    return kv && this.opened(kv);
  }

  async range(prefix: string, options?: { revision?: number }): Promise<RangeResponse> {
    const res = await this.inner.range(prefix, options);
    return { revision: res.revision, kvs: this.openedAll(res.kvs) };
  }

  async put(key: string, value: string): Promise<{ revision: number; prev?: KeyValue }> {
    refuseSealingKey(key);
    const res = await this.inner.put(key, this.seal(key, value));
    return res.prev ? { revision: res.revision, prev: this.opened(res.prev) } : { revision: res.revision };
  }

  delete(key: string): Promise<{ revision: number; deleted: number }> {
    refuseSealingKey(key);
    return this.inner.delete(key);
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    for (const op of [...request.success, ...(request.failure ?? [])]) this.checkOp(op);
    if (request.compare.some((c) => c.target === 'value')) return this.txnComparingValues(request);
    const res = await this.inner.txn({ compare: request.compare, success: this.sealOps(request.success), failure: this.sealOps(request.failure ?? []) });
    return { ...res, results: res.results.map((r) => this.openResult(r)) };
  }

  async watch(prefix: string, fromRevision: number, handler: WatchHandler, onError?: (err: Error) => void): Promise<Watch> {
    // Set from callbacks that may run before the inner watch is returned (history is delivered first).
    const state: { inner: Watch | undefined; failed: boolean } = { inner: undefined, failed: false };
    const fail = (err: Error): void => {
      if (state.failed) return;
      state.failed = true;
      state.inner?.cancel();
      onError?.(err);
    };
    const inner = await this.inner.watch(
      prefix,
      fromRevision,
      (events, revision) => {
        if (state.failed) return;
        let opened: WatchEvent[];
        try {
          opened = events.filter((e) => !isSealingKey(e.kv.key)).map((e) => this.openEvent(e));
        } catch (err) {
          // A value that does not open ends the watch: skipping it would hand the watcher a history with a hole.
          fail(err as Error);
          return;
        }
        if (opened.length > 0) handler(opened, revision);
      },
      (err) => fail(err),
    );
    state.inner = inner;
    if (state.failed) inner.cancel();
    return inner;
  }

  compact(revision: number): Promise<void> {
    return this.inner.compact(revision);
  }

  currentRevision(): Promise<number> {
    return this.inner.currentRevision();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  // ---------------------------------------------------------------- sealing and opening

  private seal(key: string, value: string): string {
    return sealValue(this.keyring.current(), this.keyring.nonce(), key, value);
  }

  private open(key: string, text: string): string {
    if (this.keyring.acceptPlaintext && !isSealedValue(text)) return text;
    return openValue((id) => this.keyring.key(id), key, text);
  }

  private opened(kv: KeyValue): KeyValue {
    return { ...kv, value: this.open(kv.key, kv.value) };
  }

  private openedAll(kvs: KeyValue[]): KeyValue[] {
    return kvs.filter((kv) => !isSealingKey(kv.key)).map((kv) => this.opened(kv));
  }

  private openEvent(e: WatchEvent): WatchEvent {
    // A delete event's kv carries no value (etcd's and ours alike); its prev does.
    const kv = e.type === 'put' ? this.opened(e.kv) : e.kv;
    return e.prev ? { type: e.type, kv, prev: this.opened(e.prev) } : { type: e.type, kv };
  }

  private checkOp(op: TxnOp): void {
    if (op.type === 'put' || op.type === 'delete') refuseSealingKey(op.key);
    if (op.type === 'deletePrefix' && coversSealing(op.prefix)) {
      throw new Error(`sealed store: deleting prefix ${JSON.stringify(op.prefix)} would delete the store keyring`);
    }
  }

  private sealOps(ops: TxnOp[]): TxnOp[] {
    return ops.map((op) => (op.type === 'put' ? { ...op, value: this.seal(op.key, op.value) } : op));
  }

  private openResult(r: TxnOpResult): TxnOpResult {
    switch (r.type) {
      case 'put':
        return r.prev ? { type: 'put', prev: this.opened(r.prev) } : { type: 'put' };
      case 'delete':
        return { type: 'delete', deleted: r.deleted, prev: this.openedAll(r.prev) };
      case 'get':
        return r.kv && !isSealingKey(r.kv.key) ? { type: 'get', kv: this.opened(r.kv) } : { type: 'get' };
      case 'range':
        return { type: 'range', kvs: this.openedAll(r.kvs) };
    }
  }

  /** See the file's comment: the comparisons decided here on opened values, the write guarded by mod revisions. */
  private async txnComparingValues(request: TxnRequest): Promise<TxnResponse> {
    const keys = [...new Set(request.compare.map((c) => c.key))];
    for (let attempt = 0; attempt < MAX_VALUE_COMPARE_ATTEMPTS; attempt++) {
      const read = await this.inner.txn({ compare: [], success: keys.map((key) => ({ type: 'get' as const, key })), failure: [] });
      const current = new Map<string, KeyValue | undefined>();
      keys.forEach((key, i) => {
        const result = read.results[i];
        const kv = result?.type === 'get' ? result.kv : undefined;
        current.set(key, kv && !isSealingKey(kv.key) ? this.opened(kv) : undefined);
      });
      const holds = request.compare.every((c) => compareHolds(c, current.get(c.key)));
      const branch = holds ? request.success : (request.failure ?? []);
      const written = await this.inner.txn({
        compare: keys.map((key) => ({ key, target: 'modRevision' as const, op: '=' as const, value: current.get(key)?.modRevision ?? 0 })),
        success: this.sealOps(branch),
        failure: [],
      });
      if (written.succeeded) return { succeeded: holds, revision: written.revision, results: written.results.map((r) => this.openResult(r)) };
    }
    throw new Error(`sealed store: a transaction comparing values of ${keys.join(', ')} gave up after ${MAX_VALUE_COMPARE_ATTEMPTS} conflicting writes`);
  }

  /** Seals every plaintext value under /tessera/ in place (compare-and-swap on its mod revision); returns how many. */
  private async sealPlaintextValues(): Promise<number> {
    let sealed = 0;
    for (const kv of (await this.inner.range(TESSERA_PREFIX)).kvs) {
      if (isSealedValue(kv.value)) continue;
      const res = await this.inner.txn({
        compare: [{ key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision }],
        success: [{ type: 'put', key: kv.key, value: this.seal(kv.key, kv.value) }],
        failure: [{ type: 'get', key: kv.key }],
      });
      if (res.succeeded) sealed++;
      else {
        // Changed meanwhile by a manager that seals: it must open now, or it is not ours.
        const now = res.results[0];
        if (now?.type === 'get' && now.kv && !isSealedValue(now.kv.value)) throw new SealedValueError(kv.key, 'changed to plaintext during the migration');
      }
    }
    return sealed;
  }
}
