// The store contract (DESIGN.md "Store"): an MVCC key-value store with one global revision.
// Every backend (memory, raft, etcd) implements this and passes test/unit/store-conformance.

export interface KeyValue {
  key: string;
  value: string;
  /** Revision at which the key was created (since its last deletion). */
  createRevision: number;
  /** Revision of the last change to the key. */
  modRevision: number;
  /** Number of changes since creation; 1 for a new key. */
  version: number;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
export type CompareOp = '=' | '!=' | '<' | '>';

/** A comparison against a key; an absent key has version, createRevision and modRevision 0 and never equals a value. */
export interface Compare {
  key: string;
  target: CompareTarget;
  op: CompareOp;
  value: string | number;
}

export type TxnOp =
  | { type: 'put'; key: string; value: string }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }
  | { type: 'get'; key: string }
  | { type: 'range'; prefix: string };

export type TxnOpResult =
  | { type: 'put'; prev?: KeyValue }
  | { type: 'delete'; deleted: number; prev: KeyValue[] }
  | { type: 'get'; kv?: KeyValue }
  | { type: 'range'; kvs: KeyValue[] };

export interface TxnRequest {
  compare: Compare[];
  success: TxnOp[];
  failure?: TxnOp[];
}

export interface TxnResponse {
  succeeded: boolean;
  /** Store revision after the transaction (unchanged if it wrote nothing). */
  revision: number;
  results: TxnOpResult[];
}

export interface RangeResponse {
  kvs: KeyValue[];
  /** Store revision at which the range was read. */
  revision: number;
}

export type WatchEvent = { type: 'put'; kv: KeyValue; prev?: KeyValue } | { type: 'delete'; kv: KeyValue; prev?: KeyValue };

/** Events of one revision are delivered together, in revision order. */
export type WatchHandler = (events: WatchEvent[], revision: number) => void;

export interface Watch {
  cancel(): void;
}

export class CompactedError extends Error {
  constructor(
    readonly requested: number,
    readonly compactRevision: number,
  ) {
    super(`revision ${requested} has been compacted (compacted up to ${compactRevision})`);
    this.name = 'CompactedError';
  }
}

export class FutureRevisionError extends Error {
  constructor(
    readonly requested: number,
    readonly current: number,
  ) {
    super(`revision ${requested} is in the future (current revision ${current})`);
    this.name = 'FutureRevisionError';
  }
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /** All keys starting with prefix, sorted by key; at `revision` if given (must not be compacted). */
  range(prefix: string, options?: { revision?: number }): Promise<RangeResponse>;
  put(key: string, value: string): Promise<{ revision: number; prev?: KeyValue }>;
  delete(key: string): Promise<{ revision: number; deleted: number }>;
  txn(request: TxnRequest): Promise<TxnResponse>;
  /**
   * Calls handler with every change under prefix whose modRevision >= fromRevision: first the
   * historical ones, then live ones (the etcd convention, so "list at R, watch from R+1" misses nothing).
   * fromRevision 0 means "from now on". Throws CompactedError if fromRevision was compacted.
   * onError is called if the watch ends abnormally (backend closed, compaction overtook it).
   */
  watch(prefix: string, fromRevision: number, handler: WatchHandler, onError?: (err: Error) => void): Promise<Watch>;
  /** Drops history before `revision`; reads and watches at older revisions then fail with CompactedError. */
  compact(revision: number): Promise<void>;
  currentRevision(): Promise<number>;
  close(): Promise<void>;
}
