// Typed objects over any Store backend. Objects are stored as JSON at objectKey(kind, stack, name);
// the key's mod revision is the object's resourceVersion, so optimistic concurrency is one txn
// compare, and "list at revision R, watch from R+1" gives a controller a gap-free view.
import { randomUUID } from 'node:crypto';
import { API_VERSION, type AnyObject, type Kind } from '../../common/resources/types.js';
import { kindPrefix, objectKey, parseObjectKey } from './keys.js';
import type { KeyValue, Store, TxnRequest, Watch, WatchEvent } from './store.js';

export type ObjectOfKind<K extends Kind> = Extract<AnyObject, { kind: K }>;

export class NotFoundError extends Error {
  constructor(
    readonly objectKind: Kind,
    readonly objectStack: string,
    readonly objectName: string,
  ) {
    super(`${objectKind} ${qualified(objectStack, objectName)} not found`);
    this.name = 'NotFoundError';
  }
}

export class AlreadyExistsError extends Error {
  constructor(
    readonly objectKind: Kind,
    readonly objectStack: string,
    readonly objectName: string,
  ) {
    super(`${objectKind} ${qualified(objectStack, objectName)} already exists`);
    this.name = 'AlreadyExistsError';
  }
}

export class ConflictError extends Error {
  constructor(
    readonly objectKind: Kind,
    readonly objectStack: string,
    readonly objectName: string,
    readonly expectedVersion: string,
    readonly actualVersion: string,
  ) {
    super(
      `${objectKind} ${qualified(objectStack, objectName)} was modified concurrently ` +
        `(expected resourceVersion ${expectedVersion}, found ${actualVersion}); re-read and retry`,
    );
    this.name = 'ConflictError';
  }
}

function qualified(stack: string, name: string): string {
  return stack ? `${stack}/${name}` : name;
}

export type ObjectEventType = 'added' | 'modified' | 'deleted';

export interface ObjectEvent<T> {
  type: ObjectEventType;
  /** For 'deleted': the last stored state, with resourceVersion set to the deletion's revision. */
  object: T;
  stack: string;
  name: string;
}

export type ObjectWatchHandler<T> = (events: Array<ObjectEvent<T>>, revision: number) => void;

export interface ObjectStoreOptions {
  /** Injected for deterministic tests; defaults to random UUIDs and the wall clock. */
  newUid?: () => string;
  now?: () => Date;
  /** How many times updateWithRetry re-reads after a conflict before giving up. */
  maxUpdateAttempts?: number;
}

/**
 * JSON with object keys sorted, so two structurally equal values always serialise the same.
 * Used to decide whether a spec changed (generation bump) without being fooled by key order.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

function stackOf(obj: AnyObject): string {
  return obj.metadata.stack ?? '';
}

export class ObjectStore {
  private readonly newUid: () => string;
  private readonly now: () => Date;
  private readonly maxUpdateAttempts: number;

  constructor(
    readonly store: Store,
    options: ObjectStoreOptions = {},
  ) {
    this.newUid = options.newUid ?? randomUUID;
    this.now = options.now ?? (() => new Date());
    this.maxUpdateAttempts = options.maxUpdateAttempts ?? 16;
  }

  async get<K extends Kind>(kind: K, stack: string, name: string): Promise<ObjectOfKind<K> | undefined> {
    const kv = await this.store.get(objectKey(kind, stack, name));
    return kv ? decode<ObjectOfKind<K>>(kv) : undefined;
  }

  /** Every object of a kind (in one stack if given), sorted by key, and the revision they were read at. */
  async list<K extends Kind>(kind: K, options: { stack?: string; revision?: number } = {}): Promise<{ items: Array<ObjectOfKind<K>>; revision: number }> {
    const res = await this.store.range(kindPrefix(kind, options.stack), options.revision !== undefined ? { revision: options.revision } : undefined);
    return { items: res.kvs.map((kv) => decode<ObjectOfKind<K>>(kv)), revision: res.revision };
  }

  /** Stores a new object; uid, createdAt and generation are assigned here, never by the caller. */
  async create<T extends AnyObject>(obj: T): Promise<T> {
    const stack = stackOf(obj);
    const { name } = obj.metadata;
    const key = objectKey(obj.kind, stack, name);
    const stored = structuredClone(obj);
    const { resourceVersion: _ignored, ...metadata } = stored.metadata;
    stored.metadata = { ...metadata, uid: this.newUid(), createdAt: this.now().toISOString(), generation: 1 };
    const res = await this.store.txn({
      compare: [{ key, target: 'createRevision', op: '=', value: 0 }],
      success: [{ type: 'put', key, value: JSON.stringify(stored) }],
    });
    if (!res.succeeded) throw new AlreadyExistsError(obj.kind, stack, name);
    stored.metadata.resourceVersion = String(res.revision);
    return stored;
  }

  /**
   * Replaces an object. With metadata.resourceVersion set, the write happens only if the stored
   * object is still at that version (ConflictError otherwise); without it, against whatever is
   * stored now. uid and createdAt are kept from the stored object; generation is bumped when the
   * spec changed.
   */
  async update<T extends AnyObject>(obj: T): Promise<T> {
    const stack = stackOf(obj);
    const { name } = obj.metadata;
    const key = objectKey(obj.kind, stack, name);
    const currentKv = await this.store.get(key);
    if (!currentKv) throw new NotFoundError(obj.kind, stack, name);
    const expected = obj.metadata.resourceVersion ?? String(currentKv.modRevision);
    if (expected !== String(currentKv.modRevision)) {
      throw new ConflictError(obj.kind, stack, name, expected, String(currentKv.modRevision));
    }
    const current = decode<T>(currentKv);
    const stored = structuredClone(obj);
    const { resourceVersion: _ignored, ...metadata } = stored.metadata;
    const specChanged = canonicalJson(current.spec) !== canonicalJson(stored.spec);
    const generation = (current.metadata.generation ?? 1) + (specChanged ? 1 : 0);
    stored.metadata = {
      ...metadata,
      ...(current.metadata.uid !== undefined ? { uid: current.metadata.uid } : {}),
      ...(current.metadata.createdAt !== undefined ? { createdAt: current.metadata.createdAt } : {}),
      generation,
    };
    const res = await this.store.txn({
      compare: [{ key, target: 'modRevision', op: '=', value: Number(expected) }],
      success: [{ type: 'put', key, value: JSON.stringify(stored) }],
      failure: [{ type: 'get', key }],
    });
    if (!res.succeeded) {
      const now = res.results[0];
      const kv = now?.type === 'get' ? now.kv : undefined;
      if (!kv) throw new NotFoundError(obj.kind, stack, name);
      throw new ConflictError(obj.kind, stack, name, expected, String(kv.modRevision));
    }
    stored.metadata.resourceVersion = String(res.revision);
    return stored;
  }

  /**
   * Writes several objects in one transaction (one Raft entry), each only if it is still at the
   * resourceVersion it carries, with no read first: the caller's copy (from an informer) is the
   * base. For changes that leave `spec` alone (placements, status): metadata is written as given,
   * generation included. Resolves with the written objects, or undefined when any of them had
   * changed or gone (then nothing was written, and the caller decides again or writes one by one).
   */
  async updateAllIfUnchanged<T extends AnyObject>(objs: readonly T[]): Promise<T[] | undefined> {
    if (objs.length === 0) return [];
    const compare: TxnRequest['compare'] = [];
    const success: TxnRequest['success'] = [];
    const stored = objs.map((obj) => {
      const { resourceVersion, ...metadata } = obj.metadata;
      if (resourceVersion === undefined) throw new Error(`updateAllIfUnchanged: ${obj.kind} ${qualified(stackOf(obj), metadata.name)} has no resourceVersion`);
      const key = objectKey(obj.kind, stackOf(obj), metadata.name);
      const copy = { ...obj, metadata };
      compare.push({ key, target: 'modRevision', op: '=', value: Number(resourceVersion) });
      success.push({ type: 'put', key, value: JSON.stringify(copy) });
      return copy;
    });
    const res = await this.store.txn({ compare, success });
    if (!res.succeeded) return undefined;
    return stored.map((obj) => ({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(res.revision) } }));
  }

  /** Deletes an object (only at the given resourceVersion, if one is given) and returns its last state. */
  async delete<K extends Kind>(kind: K, stack: string, name: string, options: { resourceVersion?: string } = {}): Promise<ObjectOfKind<K>> {
    const key = objectKey(kind, stack, name);
    const compare =
      options.resourceVersion !== undefined
        ? { key, target: 'modRevision' as const, op: '=' as const, value: Number(options.resourceVersion) }
        : { key, target: 'createRevision' as const, op: '>' as const, value: 0 };
    const res = await this.store.txn({
      compare: [compare],
      success: [{ type: 'delete', key }],
      failure: [{ type: 'get', key }],
    });
    const result = res.results[0];
    if (res.succeeded && result?.type === 'delete' && result.prev[0]) {
      const last = decode<ObjectOfKind<K>>(result.prev[0]);
      last.metadata.resourceVersion = String(res.revision);
      return last;
    }
    const kv = result?.type === 'get' ? result.kv : undefined;
    if (!kv) throw new NotFoundError(kind, stack, name);
    throw new ConflictError(kind, stack, name, options.resourceVersion ?? '', String(kv.modRevision));
  }

  /**
   * Reads, applies mutate, writes; on a conflict, reads again and re-applies. mutate gets a private
   * copy and returns the desired object, or undefined when no write is needed (then the result is
   * undefined too). Throws NotFoundError if the object does not exist.
   */
  async updateWithRetry<K extends Kind>(
    kind: K,
    stack: string,
    name: string,
    mutate: (obj: ObjectOfKind<K>) => ObjectOfKind<K> | undefined,
  ): Promise<ObjectOfKind<K> | undefined> {
    let lastConflict: ConflictError | undefined;
    for (let attempt = 0; attempt < this.maxUpdateAttempts; attempt++) {
      const current = await this.get(kind, stack, name);
      if (!current) throw new NotFoundError(kind, stack, name);
      const desired = mutate(structuredClone(current));
      if (desired === undefined) return undefined;
      desired.metadata.resourceVersion = current.metadata.resourceVersion;
      try {
        return await this.update(desired);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        lastConflict = err;
      }
    }
    throw lastConflict ?? new Error(`updateWithRetry ${kind} ${qualified(stack, name)}: no attempts made`);
  }

  /**
   * Watches one kind from a revision (0 = from now on). 'added' vs 'modified' is decided from
   * whether the key existed before the write, which the store reports with every event.
   */
  async watch<K extends Kind>(kind: K, fromRevision: number, handler: ObjectWatchHandler<ObjectOfKind<K>>, onError?: (err: Error) => void): Promise<Watch> {
    return this.store.watch(
      kindPrefix(kind),
      fromRevision,
      (events, revision) => {
        const mapped: Array<ObjectEvent<ObjectOfKind<K>>> = [];
        for (const event of events) {
          const converted = toObjectEvent<K>(kind, event);
          if (converted) mapped.push(converted);
        }
        if (mapped.length > 0) handler(mapped, revision);
      },
      onError,
    );
  }
}

function decode<T extends AnyObject>(kv: KeyValue): T {
  const obj = JSON.parse(kv.value) as T;
  obj.metadata.resourceVersion = String(kv.modRevision);
  return obj;
}

function toObjectEvent<K extends Kind>(kind: K, event: WatchEvent): ObjectEvent<ObjectOfKind<K>> | undefined {
  const parsed = parseObjectKey(event.kv.key);
  if (!parsed) return undefined;
  const { stack, name } = parsed;
  if (event.type === 'put') {
    return { type: event.prev ? 'modified' : 'added', object: decode(event.kv), stack, name };
  }
  let object: ObjectOfKind<K>;
  if (event.prev) {
    object = decode(event.prev);
  } else {
    // A backend may drop the previous value (etcd after compaction); the key still says what went.
    object = { apiVersion: API_VERSION, kind, metadata: { name, ...(stack ? { stack } : {}) } } as ObjectOfKind<K>;
  }
  object.metadata.resourceVersion = String(event.kv.modRevision);
  return { type: 'deleted', object, stack, name };
}
