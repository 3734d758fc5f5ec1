// The allocation document in the store: read it, write it compare-and-swap, and keep a watched
// copy for the dispatcher (like an informer, for one key).
import type { Store, Watch } from '../store/store.js';
import { NETWORK_ALLOCATIONS_KEY, emptyNetworkState, type ClusterNetworkState } from './types.js';

export interface StoredNetworkState {
  state: ClusterNetworkState;
  /** The key's mod revision, 0 when it does not exist yet. */
  modRevision: number;
}

export function parseNetworkState(value: string): ClusterNetworkState {
  const parsed = JSON.parse(value) as unknown;
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { networks?: unknown }).networks !== 'object') {
    throw new Error(`${NETWORK_ALLOCATIONS_KEY} does not hold a network allocation document`);
  }
  return parsed as ClusterNetworkState;
}

export async function readNetworkState(store: Store): Promise<StoredNetworkState> {
  const kv = await store.get(NETWORK_ALLOCATIONS_KEY);
  return kv ? { state: parseNetworkState(kv.value), modRevision: kv.modRevision } : { state: emptyNetworkState(), modRevision: 0 };
}

/** Writes the document if it is still at `modRevision`; returns the new revision, or undefined on a conflict. */
export async function writeNetworkState(store: Store, state: ClusterNetworkState, modRevision: number): Promise<number | undefined> {
  const res = await store.txn({
    compare: [{ key: NETWORK_ALLOCATIONS_KEY, target: 'modRevision', op: '=', value: modRevision }],
    success: [{ type: 'put', key: NETWORK_ALLOCATIONS_KEY, value: JSON.stringify(state) }],
  });
  return res.succeeded ? res.revision : undefined;
}

/** A watched copy of the document; listeners hear about every change. */
export class NetworkStateWatcher {
  current: ClusterNetworkState = emptyNetworkState();
  private watch: Watch | undefined;
  private stopped = false;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly store: Store,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

  subscribe(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    this.watch?.cancel();
    const { kvs, revision } = await this.store.range(NETWORK_ALLOCATIONS_KEY);
    const kv = kvs.find((k) => k.key === NETWORK_ALLOCATIONS_KEY);
    this.set(kv ? parseNetworkState(kv.value) : emptyNetworkState());
    this.watch = await this.store.watch(
      NETWORK_ALLOCATIONS_KEY,
      revision + 1,
      (events) => {
        for (const event of events) {
          if (event.kv.key !== NETWORK_ALLOCATIONS_KEY) continue;
          try {
            this.set(event.type === 'put' ? parseNetworkState(event.kv.value) : emptyNetworkState());
          } catch (err) {
            this.onError(err as Error);
          }
        }
      },
      (err) => {
        this.onError(err);
        if (!this.stopped) setTimeout(() => void this.start().catch(this.onError), 200).unref();
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
  }

  private set(state: ClusterNetworkState): void {
    this.current = state;
    // A snapshot: a listener may unsubscribe while we call them.
    for (const listener of this.listeners.slice()) listener();
  }
}
