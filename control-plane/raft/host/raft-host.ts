// RaftHost: the I/O around one pure RaftNode. It ticks it on a timer, feeds it peer messages,
// and runs the Ready loop in the order the core requires: a leader's replication messages
// (rd.earlyMessages) go out first, so followers write while the leader writes (Raft thesis
// §10.2.1); then persist (snapshot, entries, hard state: one WAL fsync, shared by everything that
// queued up meanwhile — group commit) and meanwhile apply the committed entries (they are durable
// on a majority already); only once the write is durable the other messages (acknowledgements,
// votes) go out; then advance. It takes snapshots of the state machine every `snapshotEvery`
// applied entries and compacts the log, and resolves proposals and linearizable reads once they
// are applied.
import { randomBytes } from 'node:crypto';

import {
  ProposalDroppedError,
  RaftNode,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftStatus,
  type ReadState,
  type Ready,
  type Snapshot,
} from '../core/index.js';
import type { DiskRaftStorage } from '../storage/disk-storage.js';
import type { TransportSecurity } from '../../../common/transport/credentials.js';
import { RaftPeerClient } from '../transport/peer-client.js';
import { PeerSender } from '../transport/peer-sender.js';
import { PeerTraffic } from '../transport/peer-traffic.js';
import { checkProposal, fromWire, type WireBatch } from '../transport/wire.js';
import { isEnveloped, unwrapEntry, wrapForwarded } from './forwarded-entry.js';

/** The application the log drives. apply() must be deterministic: every member applies the same entries. */
export interface StateMachine<R> {
  apply(entry: Entry): R;
  snapshot(): Uint8Array;
  /**
   * The state as of the call, produced over several turns of the event loop while entries go on
   * being applied; used instead of snapshot() when present, so a large state does not stall Raft.
   */
  snapshotInBackground?(): Promise<Uint8Array>;
  restore(data: Uint8Array): void;
}

/** Told of what happens in the host (metrics: control-plane/metrics/raft-metrics.ts); must be cheap and must not throw. */
export interface RaftHostObserver {
  /** The state machine's snapshot was made (serialized; its file is written after): how long it took and its size. */
  stateSnapshotMade(seconds: number, bytes: number): void;
}

/** Counts kept for metrics; plain numbers, read when scraped. */
export interface RaftHostCounters {
  /** Times this member saw a new leader (none → a leader, or one leader → another), as etcd counts them. */
  leaderChanges: number;
  /** Writes proposed or forwarded here that failed: timed out, dropped, replaced by a new leader's entry, or lost. */
  proposalsFailed: number;
}

export interface RaftHostOptions<R> {
  id: NodeId;
  /** Members of one group share this name; batches from another group are refused. */
  group: string;
  /** Where peers reach this member (host:port). */
  address: string;
  storage: DiskRaftStorage;
  stateMachine: StateMachine<R>;
  /** Addresses of other members, looked up when a message must go to them. */
  addressOf: (id: NodeId) => string | undefined;
  security: TransportSecurity;
  tickMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  snapshotEvery?: number;
  snapshotChunkBytes?: number;
  proposalTimeoutMs?: number;
  random?: () => number;
  log?: (message: string) => void;
}

interface Pending<R> {
  term: number;
  resolve: (v: { result: R | undefined; index: number }) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** A forwarded write waiting to be applied here. */
interface Forward<R> {
  /** The term it was forwarded in: the leader takes it only as leader of that term. */
  term: number;
  resolve: (v: { result: R | undefined; index: number }) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A forwarded write that certainly did not happen: the leader refused it, or an entry of a later
 * term was applied first (entries of its term can no longer follow). Safe to send again.
 */
export class ForwardLostError extends Error {
  constructor(reason: string) {
    super(`forwarded write not applied: ${reason}`);
    this.name = 'ForwardLostError';
  }
}

/** A linearizable read found no leader to confirm it within its time (no quorum, or an election). */
export class NoLeaderAnswerError extends Error {
  constructor(timeoutMs: number) {
    super(`linearizable read: no answer from a leader within ${timeoutMs} ms`);
    this.name = 'NoLeaderAnswerError';
  }
}

export class NotLeaderError extends Error {
  constructor(
    readonly leader: NodeId,
    readonly leaderAddress: string | undefined,
  ) {
    super(leader ? `not the leader, leader is ${leader}${leaderAddress ? ` at ${leaderAddress}` : ''}` : 'no leader is known yet');
    this.name = 'NotLeaderError';
  }
}

export class RaftHost<R> {
  readonly node: RaftNode;
  private readonly tickMs: number;
  private readonly snapshotEvery: number;
  private readonly proposalTimeoutMs: number;
  private readonly log: (m: string) => void;
  private ticker: NodeJS.Timeout | undefined;
  private running = false;
  private runScheduled = false;
  private stopped = false;
  private failure: Error | undefined;
  private applied: number;
  private readonly pending = new Map<number, Pending<R>>();
  private readonly reads = new Map<string, { resolve: (index: number) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private appliedWaiters: Array<{ index: number; resolve: () => void }> = [];
  private readonly learned = new Map<NodeId, string>();
  private readonly senders = new Map<NodeId, PeerSender>();
  private readonly clients = new Map<string, RaftPeerClient>();
  private readCounter = 0;
  /** ReadIndex rounds: callers arriving while one is in flight share the next one. */
  private readInFlight: Promise<number> | undefined;
  private readNext: Promise<number> | undefined;
  /** Term and vote last made durable: a Ready that changes only the commit index need not wait for its fsync. */
  private durableTerm: number;
  private durableVote: NodeId;
  private leaderListeners: Array<(leader: NodeId, isLeader: boolean) => void> = [];
  private readonly forwards = new Map<string, Forward<R>>();
  /** Forward ids: unique per start of this member, so an old entry never answers a new request. */
  private readonly forwardPrefix: string;
  private forwardCounter = 0;
  /** Term of the last entry applied (forwards of older terms are lost once it moves past them). */
  private appliedTerm = 0;
  /** A snapshot is being made (serialized and written); only one at a time. */
  private snapshotting = false;
  /** A snapshot whose file is written, to be made the storage's own between two Readys. */
  private snapshotToCommit: Snapshot | undefined;
  /** The leader as of the last Ready with a soft state (leader changes are counted against it). */
  private seenLeader: NodeId = '';
  readonly counters: RaftHostCounters = { leaderChanges: 0, proposalsFailed: 0 };
  /** Bytes of Raft batches sent to and received from each other member, and failed sends. */
  readonly traffic = new PeerTraffic();
  observer: RaftHostObserver | undefined;

  constructor(private readonly options: RaftHostOptions<R>) {
    this.tickMs = options.tickMs ?? 100;
    this.snapshotEvery = options.snapshotEvery ?? 10_000;
    this.proposalTimeoutMs = options.proposalTimeoutMs ?? 15_000;
    this.log = options.log ?? (() => {});
    this.forwardPrefix = `${options.id}.${randomBytes(6).toString('hex')}.`;
    const snap = options.storage.snapshot();
    const initial = options.storage.initialState().hardState;
    this.durableTerm = initial.term;
    this.durableVote = initial.vote;
    options.stateMachine.restore(snap.data);
    this.applied = snap.metadata.index;
    this.node = new RaftNode({
      id: options.id,
      storage: options.storage,
      electionTick: options.electionTick ?? 10,
      heartbeatTick: options.heartbeatTick ?? 1,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsg: 1 << 20,
      maxInflightMsgs: 256,
      snapshotChunkSize: options.snapshotChunkBytes ?? 1 << 20,
      applied: this.applied,
      random: options.random ?? Math.random,
    });
  }

  get id(): NodeId {
    return this.options.id;
  }

  get address(): string {
    return this.options.address;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** Writes proposed here (on the leader) or forwarded from here, not yet applied or failed. */
  get pendingProposals(): number {
    return this.pending.size + this.forwards.size;
  }

  isLeader(): boolean {
    return this.node.currentRole === 'leader';
  }

  leader(): NodeId {
    return this.node.leader;
  }

  status(): RaftStatus {
    return this.node.status();
  }

  addressOf(id: NodeId): string | undefined {
    if (id === this.options.id) return this.options.address;
    return this.options.addressOf(id) ?? this.learned.get(id);
  }

  /** Called with (leader, isLeader) whenever this member's view of the leader changes. */
  onLeaderChange(listener: (leader: NodeId, isLeader: boolean) => void): void {
    this.leaderListeners.push(listener);
  }

  start(): void {
    // A single-member group elects itself at once instead of waiting out an election timeout.
    const cs = this.node.confState();
    if (cs.voters.length === 1 && cs.voters[0] === this.options.id) this.node.campaignNow();
    this.ticker = setInterval(() => {
      this.node.tick();
      this.schedule();
    }, this.tickMs);
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    const err = new Error('raft member is stopping');
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const r of this.reads.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.reads.clear();
    for (const f of this.forwards.values()) {
      clearTimeout(f.timer);
      f.reject(err);
    }
    this.forwards.clear();
    for (const s of this.senders.values()) s.close();
    this.senders.clear();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    while (this.running) await new Promise((r) => setTimeout(r, 5));
    await this.options.storage.close();
  }

  /**
   * A batch from the transport (bytes: its serialized size, counted as received from its sender).
   * Throws (with the reason) if it is not for this group or member.
   */
  receive(batch: WireBatch, bytes?: number): void {
    if (this.stopped) throw new Error(`raft member ${this.options.id} is stopped`);
    if (batch.group !== this.options.group) throw new Error(`raft batch for group "${batch.group}", this member is in "${this.options.group}"`);
    if (bytes !== undefined) this.traffic.received(batch.from, bytes);
    if (batch.fromAddress) this.learned.set(batch.from, batch.fromAddress);
    const errors: string[] = [];
    for (const w of batch.messages) {
      let m: Message;
      try {
        m = fromWire(w);
      } catch (err) {
        errors.push((err as Error).message);
        continue;
      }
      if (m.to !== this.options.id) {
        errors.push(`message ${m.type} from ${m.from} is for ${m.to}, this member is ${this.options.id}`);
        continue;
      }
      this.node.step(m);
    }
    if (batch.proposals && batch.proposals.length > 0) this.takeForwarded(batch, errors);
    for (const id of batch.refused ?? []) {
      const f = this.forwards.get(id);
      if (f) this.settleForward(id, f, new ForwardLostError(`${batch.from} is not the leader of term ${f.term}`));
    }
    // While a Ready is being written, what these messages committed is applied at once rather
    // than after that write (it is durable on a majority already).
    if (this.running) this.applyCommittedNow();
    this.schedule();
    if (errors.length > 0) throw new Error(errors.join('; '));
  }

  /** The leader proposes writes its followers forwarded; anything it cannot take goes back refused. */
  private takeForwarded(batch: WireBatch, errors: string[]): void {
    const refused: string[] = [];
    for (const raw of batch.proposals ?? []) {
      let p;
      try {
        p = checkProposal(raw, batch.from);
      } catch (err) {
        errors.push((err as Error).message);
        continue;
      }
      if (!this.isLeader() || this.node.currentTerm !== p.term || this.stopped) {
        refused.push(p.id);
        continue;
      }
      try {
        this.node.propose(wrapForwarded(p.id, p.data));
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err;
        refused.push(p.id);
      }
    }
    if (refused.length > 0) this.sender(batch.from)?.refuse(refused);
  }

  /**
   * Proposes on the leader, or forwards to the leader in the next batch to it and resolves once
   * this member has applied the entry (with its own result, which every member computes alike).
   * Throws NotLeaderError when no leader is known, ForwardLostError (both: the write certainly did
   * not happen) or a timeout error (outcome unknown).
   */
  proposeOrForward(data: Uint8Array, timeoutMs: number): Promise<{ result: R | undefined; index: number }> {
    this.assertRunning();
    if (this.isLeader()) return this.propose(data);
    if (isEnveloped(data)) throw new Error('raft: application data must not start with byte 0x01 (reserved for forwarded writes)');
    const leader = this.leader();
    const sender = leader && leader !== this.options.id ? this.sender(leader) : undefined;
    if (!sender) throw new NotLeaderError(leader, this.addressOf(leader));
    const id = this.forwardPrefix + (++this.forwardCounter).toString(36);
    const term = this.node.currentTerm;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.forwards.delete(id);
        this.counters.proposalsFailed++;
        reject(new Error(`write forwarded to ${leader} not applied here within ${timeoutMs} ms (its outcome is unknown)`));
      }, timeoutMs);
      this.forwards.set(id, { term, resolve, reject, timer });
      sender.forward({ id, term, data });
    });
  }

  private settleForward(id: string, f: Forward<R>, outcome: Error | { result: R | undefined; index: number }): void {
    this.forwards.delete(id);
    clearTimeout(f.timer);
    if (outcome instanceof Error) {
      this.counters.proposalsFailed++;
      f.reject(outcome);
    } else f.resolve(outcome);
  }

  /** Appends data to the log (leader only) and resolves with the state machine's result once applied. */
  propose(data: Uint8Array): Promise<{ result: R | undefined; index: number }> {
    this.assertRunning();
    if (isEnveloped(data)) throw new Error('raft: application data must not start with byte 0x01 (reserved for forwarded writes)');
    if (!this.isLeader()) throw new NotLeaderError(this.leader(), this.addressOf(this.leader()));
    let at;
    try {
      at = this.node.propose(data);
    } catch (err) {
      // The core dropped it (a leadership transfer in progress, say): a failed proposal, as etcd counts them.
      if (err instanceof ProposalDroppedError) this.counters.proposalsFailed++;
      throw err;
    }
    return this.track(at);
  }

  proposeConfChange(change: ConfChange): Promise<{ result: R | undefined; index: number }> {
    this.assertRunning();
    if (!this.isLeader()) throw new NotLeaderError(this.leader(), this.addressOf(this.leader()));
    const at = this.node.proposeConfChange(change);
    return this.track(at);
  }

  /**
   * Resolves once this member has applied everything committed before the call (ReadIndex).
   * Concurrent callers share rounds: a round already in flight may have fixed its index before a
   * caller arrived, so newcomers wait for the next round, which starts when the current one ends.
   */
  async readBarrier(timeoutMs = 5000): Promise<void> {
    this.assertRunning();
    if (!this.readInFlight) {
      this.readInFlight = this.readRound(timeoutMs).finally(() => this.startNextRound(timeoutMs));
      await this.waitApplied(await this.readInFlight);
      return;
    }
    if (!this.readNext) {
      let start!: () => void;
      const gate = new Promise<void>((r) => (start = r));
      this.readNext = gate.then(() => this.readRound(timeoutMs));
      this.pendingStart = start;
    }
    await this.waitApplied(await this.readNext);
  }

  private pendingStart: (() => void) | undefined;

  private startNextRound(timeoutMs: number): void {
    const next = this.readNext;
    const start = this.pendingStart;
    this.readNext = undefined;
    this.pendingStart = undefined;
    if (!next || !start) {
      this.readInFlight = undefined;
      return;
    }
    const inFlight = next.finally(() => this.startNextRound(timeoutMs));
    // Only a marker that a round runs: its callers await `next` itself and get its error there. Left
    // unhandled, a round that times out (no leader) would end the process.
    inFlight.catch(() => undefined);
    this.readInFlight = inFlight;
    start();
  }

  private async readRound(timeoutMs: number): Promise<number> {
    const context = `${this.options.id}/${++this.readCounter}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(context);
        reject(new NoLeaderAnswerError(timeoutMs));
      }, timeoutMs);
      this.reads.set(context, { resolve, reject, timer });
      try {
        this.node.readIndex(context);
      } catch (err) {
        clearTimeout(timer);
        this.reads.delete(context);
        if (err instanceof ProposalDroppedError) reject(new NotLeaderError(this.leader(), this.addressOf(this.leader())));
        else reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      this.schedule();
    });
  }

  waitApplied(index: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve) => this.appliedWaiters.push({ index, resolve }));
  }

  /** Waits until some member is known as leader. */
  async waitForLeader(timeoutMs: number): Promise<NodeId> {
    const deadline = Date.now() + timeoutMs;
    while (!this.node.leader) {
      if (Date.now() > deadline) throw new NotLeaderError('', undefined);
      await new Promise((r) => setTimeout(r, Math.max(10, this.tickMs / 4)));
    }
    return this.node.leader;
  }

  /** The members this one sends Raft traffic to, and whether its channel to each is connected now. */
  peerConnections(): Array<{ id: NodeId; connected: boolean }> {
    return [...this.senders].map(([id, sender]) => ({ id, connected: sender.client.connected() }));
  }

  /** A client of another member's Raft service (cached per address). */
  peerClient(address: string): RaftPeerClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new RaftPeerClient(address, this.options.security);
      this.clients.set(address, c);
    }
    return c;
  }

  private track(at: { index: number; term: number }): Promise<{ result: R | undefined; index: number }> {
    this.schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(at.index);
        this.counters.proposalsFailed++;
        reject(new Error(`proposal at index ${at.index} not applied within ${this.proposalTimeoutMs} ms (its outcome is unknown)`));
      }, this.proposalTimeoutMs);
      this.pending.set(at.index, { term: at.term, resolve, reject, timer });
    });
  }

  private assertRunning(): void {
    if (this.failure) throw new Error(`raft member failed: ${this.failure.message}`);
    if (this.stopped) throw new Error('raft member is stopped');
  }

  private schedule(): void {
    if (this.running || this.stopped || this.runScheduled) return;
    // After the current round of I/O callbacks: everything that arrived in it (peer batches,
    // client writes) goes into one Ready, one WAL write and one batch per peer.
    this.runScheduled = true;
    setImmediate(() => {
      this.runScheduled = false;
      if (!this.running && !this.stopped) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (!this.stopped && (this.snapshotToCommit || this.node.hasReady())) {
        if (this.snapshotToCommit) {
          const snapshot = this.snapshotToCommit;
          this.snapshotToCommit = undefined;
          await this.options.storage.commitSnapshot(snapshot);
          this.snapshotting = false;
          continue;
        }
        const rd = this.node.ready();
        if (rd.softState) this.countLeaderChange(rd.softState.leader);
        for (const m of rd.earlyMessages) this.sendMessage(m);
        const written = this.persist(rd);
        // Committed entries are durable on a majority (the core counts the leader only for what it
        // persisted), so they need not wait for this write; a snapshot must be installed first.
        if (!rd.snapshot) this.applyReady(rd);
        if (written) await written;
        const early = rd.earlyMessages.length > 0 ? new Set(rd.earlyMessages) : undefined;
        for (const m of rd.messages) if (!early?.has(m)) this.sendMessage(m);
        if (rd.snapshot) {
          this.restoreSnapshot(rd.snapshot.metadata.index, rd.snapshot.data);
          this.applyReady(rd);
        }
        this.node.advance(rd);
        if (rd.softState) for (const l of this.leaderListeners) l(rd.softState.leader, rd.softState.role === 'leader');
        this.maybeSnapshot();
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.running = false;
    }
  }

  /** As etcd counts them: a new leader seen, after none or after another. */
  private countLeaderChange(leader: NodeId): void {
    if (leader && leader !== this.seenLeader) this.counters.leaderChanges++;
    this.seenLeader = leader;
  }

  /** Starts writing what the Ready asks to persist; undefined when there is nothing to wait for. */
  private persist(rd: Ready): Promise<void> | undefined {
    const hs = rd.hardState;
    if (!rd.snapshot && rd.entries.length === 0 && hs && hs.term === this.durableTerm && hs.vote === this.durableVote) {
      // Only the commit index moved. Committed entries are durable on a majority already and a
      // lost commit index is learnt again from the leader, so it rides along with the next synced
      // write instead of costing an fsync of its own.
      this.options.storage.save({ entries: [], hardState: hs }, { sync: false }).catch((err: Error) => this.fail(err));
      return undefined;
    }
    if (!rd.snapshot && rd.entries.length === 0 && !hs) return undefined;
    return this.options.storage
      .save({
        ...(rd.snapshot ? { snapshot: rd.snapshot } : {}),
        entries: rd.entries,
        ...(hs ? { hardState: hs } : {}),
      })
      .then(() => {
        if (hs) {
          this.durableTerm = hs.term;
          this.durableVote = hs.vote;
        }
      });
  }

  private applyCommittedNow(): void {
    try {
      for (;;) {
        const entries = this.node.committedEntriesAfter(this.applied, 1 << 20);
        if (entries.length === 0) break;
        for (const e of entries) this.applyEntry(e);
      }
      this.releaseAppliedWaiters();
    } catch (err) {
      this.fail(err);
    }
  }

  private applyReady(rd: Ready): void {
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) this.onReadState(rs);
    this.releaseAppliedWaiters();
  }

  /** Persisting failed (the WAL is poisoned) or the state machine broke: this member must not go on acknowledging anything. */
  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.log(`raft member ${this.options.id} failed: ${this.failure.message}`);
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
  }

  private sendMessage(m: Message): void {
    // An unknown peer is skipped: Raft retries once its address is replicated or learned.
    this.sender(m.to)?.send(m);
  }

  /** The sender to a peer (one stream each), or undefined while its address is unknown. */
  private sender(to: NodeId): PeerSender | undefined {
    let sender = this.senders.get(to);
    const address = this.addressOf(to);
    if (!address) return undefined;
    if (sender && sender.client.address !== address) {
      sender.close();
      sender = undefined;
    }
    if (!sender) {
      const client = new RaftPeerClient(address, this.options.security, { onSentBytes: (bytes) => this.traffic.sent(to, bytes) });
      sender = new PeerSender(client, {
        group: this.options.group,
        from: this.options.id,
        fromAddress: this.options.address,
        onError: (err) => this.log(`raft: cannot reach ${to} at ${address}: ${err.message}`),
        onUnreachable: () => {
          if (this.stopped) return;
          this.node.reportPeerDown(to);
          this.schedule();
        },
        onSendFailure: (count) => this.traffic.sendFailed(to, count),
      });
      this.senders.set(to, sender);
    }
    return sender;
  }

  private restoreSnapshot(index: number, data: Uint8Array): void {
    this.log(`raft member ${this.options.id}: installed a snapshot at index ${index} (${data.length} bytes) from the leader`);
    this.options.stateMachine.restore(data);
    this.applied = index;
    const lost = new Error('a snapshot replaced the log before this proposal was applied here (its outcome is unknown)');
    for (const [i, p] of this.pending) {
      if (i > index) continue;
      clearTimeout(p.timer);
      this.counters.proposalsFailed++;
      p.reject(lost);
      this.pending.delete(i);
    }
    // A forwarded write may be inside the snapshot: its outcome is unknown here.
    for (const [id, f] of this.forwards) this.settleForward(id, f, lost);
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.applied) return;
    let result: R | undefined;
    let forwardId: string | undefined;
    if (e.type === 'conf-change') this.node.applyConfChange(e);
    else if (e.data.length > 0) {
      const { id, payload } = unwrapEntry(e.data);
      forwardId = id;
      result = this.options.stateMachine.apply(id === undefined ? e : { ...e, data: payload });
    }
    this.applied = e.index;
    if (e.term > this.appliedTerm) {
      this.appliedTerm = e.term;
      this.dropLostForwards(e.term);
    }
    const f = forwardId === undefined ? undefined : this.forwards.get(forwardId);
    if (f && forwardId !== undefined) this.settleForward(forwardId, f, { result, index: e.index });
    const p = this.pending.get(e.index);
    if (!p) return;
    this.pending.delete(e.index);
    clearTimeout(p.timer);
    if (p.term === e.term) p.resolve({ result, index: e.index });
    else {
      this.counters.proposalsFailed++;
      p.reject(new Error(`proposal at index ${e.index} was replaced by a new leader's entry (not applied)`));
    }
  }

  /** Once an entry of a later term is applied, no entry of an earlier term can follow it. */
  private dropLostForwards(appliedTerm: number): void {
    for (const [id, f] of this.forwards) {
      if (f.term < appliedTerm) this.settleForward(id, f, new ForwardLostError(`the log moved on to term ${appliedTerm} without it`));
    }
  }

  private onReadState(rs: ReadState): void {
    const r = this.reads.get(rs.context);
    if (!r) return;
    this.reads.delete(rs.context);
    clearTimeout(r.timer);
    r.resolve(rs.index);
  }

  private releaseAppliedWaiters(): void {
    if (this.appliedWaiters.length === 0) return;
    const ready = this.appliedWaiters.filter((w) => w.index <= this.applied);
    if (ready.length === 0) return;
    this.appliedWaiters = this.appliedWaiters.filter((w) => w.index > this.applied);
    for (const w of ready) w.resolve();
  }

  /**
   * Every `snapshotEvery` applied entries: the state machine's snapshot is made and its file
   * written in the background (a large state takes a second or more, which would otherwise stall
   * heartbeats and start elections); only recording it in the WAL waits for a gap between Readys.
   */
  private maybeSnapshot(): void {
    const storage = this.options.storage;
    if (this.snapshotting || this.applied - storage.snapshot().metadata.index < this.snapshotEvery) return;
    this.snapshotting = true;
    const index = this.applied;
    const confState: ConfState = this.node.confStateAt(index);
    const sm = this.options.stateMachine;
    const started = performance.now();
    const data = sm.snapshotInBackground ? sm.snapshotInBackground() : Promise.resolve(sm.snapshot());
    data
      .then((bytes) => {
        this.observer?.stateSnapshotMade((performance.now() - started) / 1000, bytes.length);
        return this.stopped ? undefined : storage.prepareSnapshot(index, confState, bytes);
      })
      .then(
        (prepared) => {
          if (!prepared || this.stopped) {
            this.snapshotting = false;
            return;
          }
          this.snapshotToCommit = prepared;
          this.schedule();
        },
        (err: unknown) => {
          // A member that stopped meanwhile may have had its storage closed under the write.
          if (this.stopped) return;
          this.fail(err);
        },
      );
  }
}
