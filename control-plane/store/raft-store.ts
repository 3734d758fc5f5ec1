// The Raft backend of the Store contract. Writes (txn, put, delete, compact) are proposals: on the
// leader they go into the log, on a follower they are forwarded to the leader inside its batches of
// Raft traffic, and they resolve once applied here (so a watch on this member has seen the write
// too). Reads go through ReadIndex, so they are linearizable on any member; watches are served
// from the local applied state and its history.
import { join } from 'node:path';

import type { TransportSecurity } from '../../common/transport/credentials.js';
import type { ConfChange, NodeId } from '../raft/core/index.js';
import { ForwardLostError, NotLeaderError, RaftHost, type RaftHostObserver } from '../raft/host/raft-host.js';
import { DiskRaftStorage } from '../raft/storage/disk-storage.js';
import type { ChangeMembersRequest, WireMemberStatus, WireStatus } from '../raft/transport/peer-client.js';
import type { RaftServiceHandlers } from '../raft/transport/raft-service.js';
import type { WireBatch } from '../raft/transport/wire.js';
import { StoreClosedError } from './memory-store.js';
import {
  decodeCommand,
  decodeResult,
  encodeCommand,
  encodeResult,
  resultError,
  validateTxnRequest,
  type CommandResult,
  type StoreCommand,
} from './mvcc/commands.js';
import { assertNoDuplicateWrites, type MvccStats } from './mvcc/mvcc-state.js';
import type { SnapshotObserver } from '../raft/storage/snapshotter.js';
import type { WalObserver } from '../raft/storage/wal.js';
import { bootstrapSnapshotData, ReplicatedState } from './mvcc/replicated-state.js';
import { WatchHub } from './mvcc/watch-hub.js';
import type { KeyValue, RangeResponse, Store, TxnRequest, TxnResponse, Watch, WatchHandler } from './store.js';
import { deleteByTxn, putByTxn } from './single-key-ops.js';

export interface RaftStoreOptions {
  id: NodeId;
  group: string;
  /** Where the other members reach this one's Raft service (host:port). */
  address: string;
  /** The member's own directory (WAL and snapshots). */
  dataDir: string;
  /** Founding members of a new group (this one included); omit to join an existing group. */
  bootstrap?: Array<{ id: NodeId; address: string }>;
  security: TransportSecurity;
  tickMs?: number;
  electionTick?: number;
  snapshotEvery?: number;
  snapshotChunkBytes?: number;
  log?: (message: string) => void;
  /** The key-encryption key of the storage's keyring, when it is not in <dataDir>/keys/kek (autolock). */
  kek?: Uint8Array;
}

/** Everything the Raft store reports as it happens (metrics: control-plane/metrics/raft-metrics.ts). */
export interface RaftStoreObserver extends WalObserver, SnapshotObserver, RaftHostObserver {
  compaction(seconds: number): void;
}

export class RaftStore implements Store, RaftServiceHandlers {
  private readonly hub = new WatchHub();
  private closed = false;

  private constructor(
    readonly host: RaftHost<CommandResult>,
    private readonly state: ReplicatedState,
    private readonly storage: DiskRaftStorage,
  ) {}

  /** Reports WAL batches, snapshots and compactions from now on to `observer` (one observer). */
  observe(observer: RaftStoreObserver): void {
    this.storage.observe(observer);
    this.host.observer = observer;
    this.state.onCompaction = (seconds) => observer.compaction(seconds);
  }

  /** The applied state's sizes (this member's). */
  mvccStats(): MvccStats {
    return this.state.mvcc.stats();
  }

  /** What the WAL wrote since this process opened it. */
  walStats(): { batches: number; bytes: number } {
    return this.storage.walStats();
  }

  /** Autolock: re-wraps the storage's data keys (DiskRaftStorage.protectKeys). */
  protectKeys(unlockKey: Uint8Array | undefined): Promise<boolean> {
    return this.storage.protectKeys(unlockKey);
  }

  static async open(options: RaftStoreOptions): Promise<RaftStore> {
    const bootstrap = options.bootstrap;
    if (bootstrap && !bootstrap.some((m) => m.id === options.id)) throw new Error(`raft store: bootstrap members do not include this member ${options.id}`);
    const storage = await DiskRaftStorage.open(join(options.dataDir), {
      bootstrap: bootstrap ? { voters: bootstrap.map((m) => m.id).sort(), learners: [] } : { voters: [], learners: [] },
      ...(options.kek ? { kek: options.kek } : {}),
    });
    for (const note of storage.recovery) options.log?.(`raft storage: ${note}`);
    if (bootstrap && storage.lastIndex() === 0) {
      // Every founding member starts from the same snapshot at index 1, term 1, so a member added
      // later learns the base configuration (and the addresses) from the snapshot, not the log.
      const confState = storage.snapshot().metadata.confState;
      await storage.save({
        snapshot: { metadata: { index: 1, term: 1, confState }, data: bootstrapSnapshotData(bootstrap) },
        entries: [],
        hardState: { term: 1, vote: '', commit: 1 },
      });
    }
    let store: RaftStore | undefined;
    const state = new ReplicatedState(
      (entry) => store?.hub.notify(entry),
      () => store?.hub.endAll(new Error('the store was replaced by a snapshot from the leader; list and watch again')),
    );
    const host = new RaftHost<CommandResult>({
      id: options.id,
      group: options.group,
      address: options.address,
      storage,
      stateMachine: state,
      addressOf: (id) => state.members.get(id),
      security: options.security,
      ...(options.tickMs ? { tickMs: options.tickMs } : {}),
      ...(options.electionTick ? { electionTick: options.electionTick } : {}),
      ...(options.snapshotEvery ? { snapshotEvery: options.snapshotEvery } : {}),
      ...(options.snapshotChunkBytes ? { snapshotChunkBytes: options.snapshotChunkBytes } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    store = new RaftStore(host, state, storage);
    host.start();
    return store;
  }

  // ------------------------------------------------------------------ Store

  async get(key: string): Promise<KeyValue | undefined> {
    await this.linearize();
    return this.state.mvcc.get(key);
  }

  async range(prefix: string, options?: { revision?: number }): Promise<RangeResponse> {
    await this.linearize();
    return this.state.mvcc.range(prefix, options?.revision ?? 0);
  }

  put(key: string, value: string): Promise<{ revision: number; prev?: KeyValue }> {
    return putByTxn((r) => this.txn(r), key, value);
  }

  delete(key: string): Promise<{ revision: number; deleted: number }> {
    return deleteByTxn((r) => this.txn(r), key);
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    const txn = validateTxnRequest(request);
    // Refuse here what the state machine would refuse, without a round through the log.
    assertNoDuplicateWrites(txn.success);
    assertNoDuplicateWrites(txn.failure ?? []);
    const result = await this.write({ op: 'txn', txn });
    if ('error' in result) throw resultError(result);
    if (result.ok !== 'txn') throw new Error('raft store: txn answered with a non-txn result');
    return result.response;
  }

  async watch(prefix: string, fromRevision: number, handler: WatchHandler, onError?: (err: Error) => void): Promise<Watch> {
    this.assertOpen();
    return this.hub.watch(this.state.mvcc, prefix, fromRevision, handler, onError);
  }

  async compact(revision: number): Promise<void> {
    const result = await this.write({ op: 'compact', revision });
    if ('error' in result) throw resultError(result);
  }

  async currentRevision(): Promise<number> {
    await this.linearize();
    return this.state.mvcc.revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.endAll(new StoreClosedError());
    await this.host.stop();
  }

  // ------------------------------------------------------------------ cluster

  /** Members of the group and their addresses, per the replicated configuration. */
  memberAddresses(): Map<NodeId, string> {
    return new Map(this.state.members);
  }

  /** Whether `id` is in the group as this member has applied it (no copy: asked on every Raft call). */
  isMember(id: NodeId): boolean {
    return this.state.members.has(id);
  }

  isLeader(): boolean {
    return this.host.isLeader();
  }

  /** Every member's role, term, commit and applied index (asked of each member; unreachable ones say so). */
  async clusterMembers(): Promise<WireMemberStatus[]> {
    const own = await this.status();
    const leaderAddress = this.host.addressOf(own.leader);
    const view: WireStatus =
      this.host.isLeader() || !leaderAddress
        ? own
        : await this.host
            .peerClient(leaderAddress)
            .status()
            // Membership is the same in our own replicated view; only the leader's match indexes
            // are missing, and those members then show match 0.
            .catch(() => own);
    const ids = [...view.voters, ...view.learners];
    return Promise.all(
      ids.map(async (id): Promise<WireMemberStatus> => {
        const address = this.host.addressOf(id) ?? '';
        const learner = view.learners.includes(id);
        const fromLeader = view.members.find((m) => m.id === id);
        try {
          const s = id === this.host.id ? own : await this.host.peerClient(address).status(1000);
          return { id, address, role: learner ? 'learner' : s.role, term: s.term, commit: s.commit, applied: s.applied, match: fromLeader?.match ?? 0 };
        } catch {
          // Reported, not hidden: a member that does not answer is listed as unreachable.
          return { id, address, role: 'unreachable', term: 0, commit: 0, applied: 0, match: fromLeader?.match ?? 0 };
        }
      }),
    );
  }

  /** Adds (as learner), promotes or removes a member; forwarded to the leader when needed. */
  async changeMembers(req: ChangeMembersRequest): Promise<{ index: number }> {
    this.assertOpen();
    if (!this.host.isLeader()) {
      const leader = await this.host.waitForLeader(5000);
      if (leader !== this.host.id) return this.host.peerClient(this.leaderAddress(leader)).changeMembers(req);
    }
    if (req.type === 'add-learner') {
      if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(req.address)) throw new Error(`member change: address ${JSON.stringify(req.address)} is not host:port`);
      const recorded = await this.host.propose(encodeCommand({ op: 'member', id: req.id, address: req.address }));
      if (recorded.result && 'error' in recorded.result) throw resultError(recorded.result);
    }
    const change: ConfChange = { type: req.type, nodeId: req.id };
    const { index } = await this.host.proposeConfChange(change);
    return { index };
  }

  // ------------------------------------------------------------------ Raft service handlers

  receive(batch: WireBatch, bytes?: number): void {
    this.host.receive(batch, bytes);
  }

  /**
   * A write from another member (only the leader takes it: no chains of forwarding) or from a
   * client (`forward`: a follower forwards it once, like its own writes).
   */
  async propose(command: Uint8Array, forward = false, timeoutMs = 15_000): Promise<{ resultJson: string; index: number }> {
    this.assertOpen();
    // Validated here, then proposed as received: every member decodes it again when applying.
    const decoded = decodeCommand(command);
    if (forward && !this.host.isLeader()) {
      const { result, index } = await this.writeAt(decoded, timeoutMs, command);
      return { resultJson: encodeResult(result), index };
    }
    const { result, index } = await this.host.propose(command);
    return { resultJson: encodeResult(result ?? { ok: 'done' }), index };
  }

  async status(): Promise<WireStatus> {
    const s = this.host.status();
    const members: WireMemberStatus[] = Object.entries(s.progress).map(([id, p]) => ({
      id,
      address: this.host.addressOf(id) ?? '',
      role: p.learner ? 'learner' : id === s.leader ? 'leader' : 'follower',
      term: s.term,
      commit: 0,
      applied: 0,
      match: p.match,
    }));
    return {
      id: s.id,
      leader: s.leader,
      term: s.term,
      commit: s.commit,
      applied: this.host.appliedIndex,
      role: s.role,
      voters: s.confState.voters,
      learners: s.confState.learners,
      members,
    };
  }

  // The Raft service's Range (for tools and benchmarks in other processes).
  async rangeJson(prefix: string): Promise<string> {
    return JSON.stringify(await this.range(prefix));
  }

  // ------------------------------------------------------------------ internals

  private leaderAddress(leader: NodeId): string {
    const address = this.host.addressOf(leader);
    if (!address) throw new NotLeaderError(leader, undefined);
    return address;
  }

  private async write(command: StoreCommand, timeoutMs = 15_000): Promise<CommandResult> {
    return (await this.writeAt(command, timeoutMs)).result;
  }

  /** `encoded`: the command's bytes when the caller has them already (validated). */
  private async writeAt(command: StoreCommand, timeoutMs: number, encoded?: Uint8Array): Promise<{ result: CommandResult; index: number }> {
    this.assertOpen();
    const data = encoded ?? encodeCommand(command);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (!this.host.leader()) await this.host.waitForLeader(Math.max(0, deadline - Date.now()));
        // On a follower the write goes to the leader in the next batch of Raft traffic and
        // resolves once applied here, so a watch on this member has seen it too.
        const { result, index } = await this.host.proposeOrForward(data, Math.max(1, deadline - Date.now()));
        return { result: result ?? { ok: 'done' }, index };
      } catch (err) {
        // Retry only when the write certainly did not happen: no leader, or the leader refused
        // it, or the log moved on to a later term without it.
        const retriable = err instanceof NotLeaderError || err instanceof ForwardLostError;
        if (!retriable || Date.now() > deadline || this.closed) throw err;
        await new Promise((r) => setTimeout(r, err instanceof ForwardLostError ? 5 : 20));
      }
    }
  }

  private async linearize(): Promise<void> {
    this.assertOpen();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.host.readBarrier(Math.max(500, deadline - Date.now()));
        return;
      } catch (err) {
        if (!(err instanceof NotLeaderError) || Date.now() > deadline || this.closed) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }
}

export { encodeCommand, decodeResult };
