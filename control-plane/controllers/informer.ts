// Keeps an in-memory copy of every object of one kind, kept current by a store watch, and tells
// subscribers what changed. Controllers read from it and write through the ObjectStore; after a
// watch error the informer re-lists, so a controller never acts on a view that silently stopped.
import type { AnyObject, Kind } from '../../common/resources/types.js';
import type { KeyValue, Store, Watch, WatchEvent } from '../store/store.js';

export type InformerEvent<T> = { type: 'added' | 'modified'; object: T; previous?: T } | { type: 'deleted'; object: T };

export type InformerListener<T> = (event: InformerEvent<T>) => void;

/** Objects grouped by a value derived from each (e.g. a task's node), kept as the cache changes. */
interface Index<T> {
  valueOf: (object: T) => string | undefined;
  groups: Map<string, Map<string, T>>;
}

export class Informer<T extends AnyObject> {
  private readonly cache = new Map<string, T>();
  private readonly indexes = new Map<string, Index<T>>();
  private readonly listeners: Array<InformerListener<T>> = [];
  private watch: Watch | undefined;
  private stopped = false;
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private revision = 0;
  private revisionWaiters: Array<{ revision: number; resolve: () => void }> = [];

  constructor(
    private readonly store: Store,
    readonly kind: Kind,
    private readonly prefix: string,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

  /** Returns a function that ends the subscription. */
  subscribe(listener: InformerListener<T>): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  async start(): Promise<void> {
    await this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
  }

  hasSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /**
   * Resolves once the cache reflects every change up to `revision`, so a controller that just
   * wrote does not act again on a view that lacks its own write.
   */
  waitForRevision(revision: number): Promise<void> {
    if (this.revision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.revisionWaiters.push({ revision, resolve }));
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /**
   * Keeps the objects grouped by `valueOf` under `name` (the first definition of a name holds), so
   * that a reader of one group (a node's tasks, a service's tasks) does not walk every object.
   */
  addIndex(name: string, valueOf: (object: T) => string | undefined): void {
    if (this.indexes.has(name)) return;
    const index: Index<T> = { valueOf, groups: new Map() };
    this.indexes.set(name, index);
    for (const [key, object] of this.cache) this.indexAdd(index, key, object);
  }

  /** The objects whose `name` index value is `value` (empty for an unknown index or value). */
  listBy(name: string, value: string): T[] {
    const group = this.indexes.get(name)?.groups.get(value);
    return group ? [...group.values()] : [];
  }

  private indexAdd(index: Index<T>, key: string, object: T): void {
    const value = index.valueOf(object);
    if (value === undefined) return;
    let group = index.groups.get(value);
    if (!group) index.groups.set(value, (group = new Map()));
    group.set(key, object);
  }

  private indexRemove(index: Index<T>, key: string, object: T): void {
    const value = index.valueOf(object);
    if (value === undefined) return;
    const group = index.groups.get(value);
    group?.delete(key);
    if (group?.size === 0) index.groups.delete(value);
  }

  private cacheSet(key: string, object: T, previous: T | undefined): void {
    for (const index of this.indexes.values()) {
      if (previous) this.indexRemove(index, key, previous);
      this.indexAdd(index, key, object);
    }
    this.cache.set(key, object);
  }

  private cacheDelete(key: string, object: T): void {
    for (const index of this.indexes.values()) this.indexRemove(index, key, object);
    this.cache.delete(key);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    this.watch?.cancel();
    const { kvs, revision } = await this.store.range(this.prefix);
    const seen = new Set<string>();
    for (const kv of kvs) {
      seen.add(kv.key);
      this.applyPut(kv);
    }
    // A snapshot: listeners called from emit may read or change the cache while we walk it.
    for (const [key, object] of Array.from(this.cache)) {
      if (!seen.has(key)) {
        this.cacheDelete(key, object);
        this.emit({ type: 'deleted', object });
      }
    }
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
    this.advanceRevision(revision);
    this.watch = await this.store.watch(
      this.prefix,
      revision + 1,
      (events, eventRevision) => {
        this.onEvents(events);
        this.advanceRevision(eventRevision);
      },
      (err) => {
        this.onError(err);
        if (!this.stopped) setTimeout(() => void this.relist().catch(this.onError), 200).unref();
      },
    );
  }

  /**
   * Writes to other prefixes move the store's revision without an event here, so a waiter for a
   * revision this informer will never see an event at is released by `noteRevision` too.
   */
  noteRevision(revision: number): void {
    this.advanceRevision(revision);
  }

  private advanceRevision(revision: number): void {
    if (revision <= this.revision) return;
    this.revision = revision;
    const ready = this.revisionWaiters.filter((w) => w.revision <= revision);
    this.revisionWaiters = this.revisionWaiters.filter((w) => w.revision > revision);
    for (const w of ready) w.resolve();
  }

  private onEvents(events: WatchEvent[]): void {
    for (const event of events) {
      if (event.type === 'put') this.applyPut(event.kv);
      else {
        const object = this.cache.get(event.kv.key);
        if (object) {
          this.cacheDelete(event.kv.key, object);
          this.emit({ type: 'deleted', object });
        }
      }
    }
  }

  private applyPut(kv: KeyValue): void {
    let object: T;
    try {
      object = JSON.parse(kv.value) as T;
    } catch (err) {
      this.onError(new Error(`corrupt object at ${kv.key}: ${(err as Error).message}`));
      return;
    }
    object.metadata.resourceVersion = String(kv.modRevision);
    const previous = this.cache.get(kv.key);
    if (previous && previous.metadata.resourceVersion === object.metadata.resourceVersion) return;
    this.cacheSet(kv.key, object, previous);
    this.emit(previous ? { type: 'modified', object, previous } : { type: 'added', object });
  }

  private emit(event: InformerEvent<T>): void {
    // A snapshot: a listener may unsubscribe (splice the array) while we call them.
    for (const listener of this.listeners.slice()) listener(event);
  }
}

/**
 * The revisions a controller wrote in one reconcile pass, so it can wait until its informer has
 * seen them (and never act twice on a view that lacks its own writes).
 */
export class OwnWrites {
  private revision = 0;

  note<T extends { metadata: { resourceVersion?: string } }>(written: T | undefined): void {
    const rv = Number(written?.metadata.resourceVersion ?? 0);
    if (rv > this.revision) this.revision = rv;
  }

  seenBy(informer: { waitForRevision(revision: number): Promise<void> }): Promise<void> {
    return this.revision > 0 ? informer.waitForRevision(this.revision) : Promise.resolve();
  }
}
