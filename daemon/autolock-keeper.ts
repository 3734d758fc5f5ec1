// One manager's side of autolock while it runs: it follows the cluster's autolock record
// (autolock-state.ts) and keeps its own keys (the Raft keyring, or the etcd backend's store key)
// wrapped accordingly — under the KEK derived from the current unlock key when autolock is on (the
// kek file shredded), opened by a kek file when it is off. So a manager that joins an autolocked cluster, and every running manager when
// the key rotates or autolock is turned on or off, re-wraps its keys by itself. The changes
// themselves (on, off, rotate) are made here too, for the Autolock service.
import * as grpc from '@grpc/grpc-js';

import { newUnlockKey, parseUnlockKey } from '../control-plane/raft/storage/unlock-key.js';
import type { Store, Watch } from '../control-plane/store/store.js';
import { AUTOLOCK_KEY, readAutolock, writeAutolock, type AutolockRecord } from './autolock-state.js';

/** A store write that lost its compare-and-swap this many times in a row is given up. */
const MAX_CAS_ATTEMPTS = 20;
/** After a failed re-wrap (say, no leader to read the record from), try again after this long. */
const RETRY_MS = 3000;

/** What the keeper changes: the Raft store's keyring (RaftStore.protectKeys), or the etcd store key. */
export interface ProtectedKeys {
  /** What the log calls them: "Raft data keys", "etcd store key". */
  readonly what: string;
  /** The file that opens them without autolock, for the log: "raft/keys/kek". */
  readonly kekFile: string;
  /** With an unlock key: wrap under the KEK derived from it; without: opened by the kek file. True when something changed. */
  protectKeys(unlockKey: Uint8Array | undefined): Promise<boolean>;
}

function failedPrecondition(message: string): Error {
  return Object.assign(new Error(message), { code: grpc.status.FAILED_PRECONDITION });
}

export class AutolockKeeper {
  private watch: Watch | undefined;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | undefined;
  /** The cluster's setting as last read here. */
  private enabled = false;

  private constructor(
    private readonly store: Store,
    private readonly keys: ProtectedKeys,
    private readonly log: (message: string) => void,
  ) {}

  /**
   * Starts following the record. `initialKey`: this manager was just created with autolock on
   * (`tsd init --autolock`) and its keyring is wrapped under this key; it becomes the cluster's
   * unless the store already holds a record.
   */
  static async start(store: Store, keys: ProtectedKeys, log: (message: string) => void, initialKey?: string): Promise<AutolockKeeper> {
    const keeper = new AutolockKeeper(store, keys, log);
    if (initialKey !== undefined) await writeAutolock(store, { enabled: true, unlockKey: initialKey }, 0);
    const { revision } = await store.range(AUTOLOCK_KEY);
    keeper.watch = await store.watch(
      AUTOLOCK_KEY,
      revision + 1,
      () => void keeper.reconcile(),
      (err) => {
        log(`autolock: watching ${AUTOLOCK_KEY} failed (${err.message}); checking every ${RETRY_MS / 1000} s instead`);
        keeper.pollAfterWatchFailure();
      },
    );
    await keeper.reconcile();
    return keeper;
  }

  /** Whether the cluster has autolock on, as last read by this manager. */
  get autolock(): boolean {
    return this.enabled;
  }

  /** Brings this manager's keyring in line with the record. Serialized; resolves when this round is done (errors are logged, and retried). */
  reconcile(): Promise<void> {
    const round = this.queue.then(() => this.applyRecord());
    this.queue = round.catch((err: unknown) => {
      this.log(`autolock: re-wrapping this manager's ${this.keys.what} failed: ${(err as Error).message}; trying again in ${RETRY_MS / 1000} s`);
      this.scheduleRetry();
    });
    return this.queue;
  }

  private async applyRecord(): Promise<void> {
    if (this.closed) return;
    const { record } = await readAutolock(this.store);
    this.enabled = record.enabled;
    if (!record.enabled) {
      if (await this.keys.protectKeys(undefined)) this.log(`autolock is off: ${this.keys.kekFile} opens this manager's ${this.keys.what} again`);
      return;
    }
    const key = parseUnlockKey(record.unlockKey ?? '');
    try {
      if (await this.keys.protectKeys(key)) {
        this.log(`autolock: this manager wrapped its ${this.keys.what} under the cluster's current unlock key; ${this.keys.kekFile} is removed`);
      }
    } finally {
      key.fill(0);
    }
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.reconcile();
    }, RETRY_MS);
    this.retry.unref();
  }

  private pollAfterWatchFailure(): void {
    if (this.closed) return;
    const timer = setInterval(() => (this.closed ? clearInterval(timer) : void this.reconcile()), RETRY_MS);
    timer.unref();
  }

  /** Turns autolock on (with a new key) or off; the key when this call turned it on. Waits for this manager's own re-wrap. */
  async setEnabled(enabled: boolean): Promise<{ changed: boolean; unlockKey?: string }> {
    const written = await this.change((current) => {
      if (current.enabled === enabled) return undefined;
      return enabled ? { enabled: true, unlockKey: newUnlockKey() } : { enabled: false };
    });
    if (!written) return { changed: false };
    await this.reconcile();
    return { changed: true, ...(written.unlockKey ? { unlockKey: written.unlockKey } : {}) };
  }

  /** The current unlock key, or a new one (rotate; this manager re-wraps before it returns, the others as they see it). */
  async unlockKey(rotate: boolean): Promise<string> {
    if (!rotate) {
      const { record } = await readAutolock(this.store);
      if (!record.enabled || record.unlockKey === undefined)
        throw failedPrecondition('autolock is off, so there is no unlock key (turn it on: tsctl cluster update --autolock=true)');
      return record.unlockKey;
    }
    const written = await this.change((current) => {
      if (!current.enabled) throw failedPrecondition('autolock is off, so there is no unlock key to rotate (turn it on: tsctl cluster update --autolock=true)');
      return { enabled: true, unlockKey: newUnlockKey() };
    });
    await this.reconcile();
    return written?.unlockKey ?? '';
  }

  /** Read, decide, compare-and-swap, until the write lands; undefined when `decide` wants no change. */
  private async change(decide: (current: AutolockRecord) => AutolockRecord | undefined): Promise<AutolockRecord | undefined> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const { record, modRevision } = await readAutolock(this.store);
      const next = decide(record);
      if (!next) return undefined;
      if (await writeAutolock(this.store, next, modRevision)) return next;
    }
    throw Object.assign(new Error(`autolock: ${MAX_CAS_ATTEMPTS} concurrent changes in a row; try again`), { code: grpc.status.ABORTED });
  }

  close(): void {
    this.closed = true;
    this.watch?.cancel();
    if (this.retry) clearTimeout(this.retry);
  }
}
