// The Raft state machine (Ongaro's thesis, shaped like etcd's raft library): the caller feeds it
// ticks and messages and drains Ready batches. No I/O, timers or randomness happen in here.
import { applyChange, cloneConfState, decodeConfChange, encodeConfChange } from './conf-change.js';
import { Progress } from './progress.js';
import { RaftLog } from './raft-log.js';
import { ReadOnlyQueue } from './read-only.js';
import { validateMessage } from './validate-message.js';
import {
  LogCompactedError,
  LogUnavailableError,
  ProposalDroppedError,
  SnapshotUnavailableError,
  type AppendRequest,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Heartbeat,
  type Message,
  type NodeId,
  type RaftConfig,
  type RaftStatus,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SnapshotChunk,
  type SoftState,
} from './types.js';

type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'from' | 'term'> & { term?: number } : never) : never;

interface ConfigAt {
  index: number;
  conf: ConfState;
}

/** A snapshot being received in chunks. */
interface IncomingSnapshot {
  index: number;
  term: number;
  totalBytes: number;
  nextOffset: number;
  chunks: Uint8Array[];
}

export function validateConfig(cfg: RaftConfig): void {
  const bad = (what: string): never => {
    throw new Error(`raft config: ${what}`);
  };
  if (typeof cfg.id !== 'string' || cfg.id === '') bad('id must be a non-empty string');
  if (!Number.isInteger(cfg.heartbeatTick) || cfg.heartbeatTick < 1) bad(`heartbeatTick must be an integer >= 1, got ${cfg.heartbeatTick}`);
  if (!Number.isInteger(cfg.electionTick) || cfg.electionTick <= cfg.heartbeatTick) {
    bad(`electionTick must be an integer > heartbeatTick (${cfg.heartbeatTick}), got ${cfg.electionTick}`);
  }
  if (!Number.isInteger(cfg.maxInflightMsgs) || cfg.maxInflightMsgs < 1) bad(`maxInflightMsgs must be an integer >= 1, got ${cfg.maxInflightMsgs}`);
  if (!(cfg.maxSizePerMsg >= 1)) bad(`maxSizePerMsg must be >= 1, got ${cfg.maxSizePerMsg}`);
  if (!Number.isInteger(cfg.snapshotChunkSize) || cfg.snapshotChunkSize < 1) bad(`snapshotChunkSize must be an integer >= 1, got ${cfg.snapshotChunkSize}`);
  if (!Number.isInteger(cfg.applied) || cfg.applied < 0) bad(`applied must be an integer >= 0, got ${cfg.applied}`);
  if (typeof cfg.random !== 'function') bad('random must be a function');
}

export class RaftNode {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  readonly log: RaftLog;

  private term = 0;
  private vote: NodeId = '';
  private lead: NodeId = '';
  private role: Role = 'follower';

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks until this follower campaigns because its leader was reported down (0: none pending). */
  private leaderDownCountdown = 0;

  /** Configurations found in the log, oldest first; configs[0] is the snapshot's. The latest one
   *  is in effect, committed or not (thesis §4.1). */
  private configs: ConfigAt[];
  private prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private leadTransferee: NodeId = '';
  private readOnly = new ReadOnlyQueue();
  private incoming: IncomingSnapshot | undefined;
  /** Proposals since the last broadcast; sent together at the next ready() (batching). */
  private appendPending = false;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** The hard state last made durable (from storage at start, then from each advanced Ready). */
  private stableHard: HardState;

  constructor(cfg: RaftConfig) {
    validateConfig(cfg);
    this.cfg = cfg;
    this.id = cfg.id;
    this.log = new RaftLog(cfg.storage, cfg.applied);
    const { hardState, confState } = cfg.storage.initialState();
    this.configs = [{ index: this.log.firstIndex() - 1, conf: cloneConfState(confState) }];
    this.scanConfigs(this.log.firstIndex(), this.log.lastIndex());
    this.becomeFollower(hardState.term, '');
    this.vote = hardState.vote;
    this.prevSoft = { leader: this.lead, role: this.role };
    this.prevHard = this.hardState();
    this.stableHard = { ...hardState };
  }

  // ---------------------------------------------------------------- configuration

  private scanConfigs(lo: number, hi: number): void {
    let i = lo;
    while (i <= hi) {
      const batch = this.log.slice(i, hi + 1, 64 * 1024 * 1024);
      for (const e of batch) this.noteEntry(e);
      i += batch.length;
    }
  }

  private noteEntry(e: Entry): void {
    if (e.type !== 'conf-change') return;
    const change = decodeConfChange(e.data);
    this.configs.push({ index: e.index, conf: applyChange(this.conf(), change) });
  }

  private onTruncate(from: number): void {
    while (this.configs.length > 1 && (this.configs[this.configs.length - 1] as ConfigAt).index >= from) this.configs.pop();
  }

  /** The configuration in effect (the latest in the log), a copy. */
  confState(): ConfState {
    return cloneConfState(this.conf());
  }

  private conf(): ConfState {
    return (this.configs[this.configs.length - 1] as ConfigAt).conf;
  }

  private lastConfigIndex(): number {
    return (this.configs[this.configs.length - 1] as ConfigAt).index;
  }

  private isVoter(id: NodeId): boolean {
    return this.conf().voters.includes(id);
  }

  private promotable(): boolean {
    return this.isVoter(this.id);
  }

  private quorum(): number {
    return Math.floor(this.conf().voters.length / 2) + 1;
  }

  /** Bring leader bookkeeping in line with the configuration in effect. */
  private syncProgress(): void {
    const cs = this.conf();
    const members = new Set([...cs.voters, ...cs.learners]);
    if (this.role === 'leader') {
      for (const id of members) {
        const learner = cs.learners.includes(id);
        const pr = this.prs.get(id);
        if (pr) pr.learner = learner;
        else {
          const p = new Progress(this.log.lastIndex() + 1, this.cfg.maxInflightMsgs, learner);
          p.recentActive = true;
          this.prs.set(id, p);
        }
      }
      // Deleting the current key while iterating a Map is well defined.
      for (const id of this.prs.keys()) if (!members.has(id) && id !== this.id) this.prs.delete(id);
      if (this.leadTransferee !== '' && !cs.voters.includes(this.leadTransferee)) this.leadTransferee = '';
    }
  }

  /**
   * The configuration in effect at a committed entry, for the application to record in snapshots
   * it makes at that index. Call it when applying a conf-change entry (or any index).
   */
  applyConfChange(entry: Pick<Entry, 'index'>): ConfState {
    return this.confStateAt(entry.index);
  }

  /** The configuration in effect at `index` (a copy). */
  confStateAt(index: number): ConfState {
    let found = this.configs[0] as ConfigAt;
    for (const c of this.configs) if (c.index <= index) found = c;
    return cloneConfState(found.conf);
  }

  // ---------------------------------------------------------------- role changes

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.leaderDownCountdown = 0;
    this.randomizedElectionTimeout = this.cfg.electionTick + Math.floor(this.cfg.random() * this.cfg.electionTick);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = '';
    }
    this.lead = '';
    this.resetTimers();
    this.votes.clear();
    this.leadTransferee = '';
    this.readOnly.clear();
    this.appendPending = false;
    this.prs.clear();
  }

  private becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    // A pre-candidate changes neither term nor vote: a failed pre-vote disturbs no one.
    this.votes.clear();
    this.resetTimers();
    this.leadTransferee = '';
    this.readOnly.clear();
    this.prs.clear();
    this.lead = '';
    this.role = 'pre-candidate';
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    this.syncProgress();
    const self = this.prs.get(this.id);
    // A leader that is a learner/removed still manages replication (thesis §4.2.2). Its own match
    // is what it holds durably; entries it appends count once persisted (see advance()).
    if (self) {
      self.maybeUpdate(this.log.lastStableIndex());
      self.becomeReplicate();
    }
    // The no-op of the new term: committing it commits everything before it (§5.4.2) and is the
    // precondition for ReadIndex and for configuration changes.
    this.appendEntries([{ term: this.term, index: 0, type: 'normal', data: new Uint8Array(0) }]);
    this.bcastAppend();
  }

  // ---------------------------------------------------------------- ticks

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.leaderDownCountdown > 0) {
      // A leader heard from again (the report was wrong, or another member won) cancels it.
      if (this.lead !== '') this.leaderDownCountdown = 0;
      else if (--this.leaderDownCountdown === 0 && this.promotable()) {
        this.electionElapsed = 0;
        this.hup(false);
        return;
      }
    }
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, '');
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      this.leadTransferee = '';
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastContext());
    }
  }

  /** Check-quorum: did a majority of voters answer during the last election timeout? */
  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.conf().voters) {
      if (v === this.id) {
        active++;
        continue;
      }
      const pr = this.prs.get(v);
      if (pr && pr.recentActive) active++;
    }
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
    return active >= this.quorum();
  }

  // ---------------------------------------------------------------- elections

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.cfg.preVote && !transfer) this.campaign('pre-vote', false);
    else this.campaign('vote', transfer);
  }

  private campaign(kind: 'pre-vote' | 'vote', transfer: boolean): void {
    let term: number;
    if (kind === 'pre-vote') {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (this.recordVote(this.id, true) === 'won') {
      if (kind === 'pre-vote') this.campaign('vote', false);
      else this.becomeLeader();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const v of this.conf().voters) {
      if (v === this.id) continue;
      this.send({ type: kind, to: v, term, lastLogIndex, lastLogTerm, transfer });
    }
  }

  private recordVote(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.conf().voters) {
      const g = this.votes.get(v);
      if (g === true) yes++;
      else if (g === false) no++;
    }
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (no > this.conf().voters.length - q) return 'lost';
    return 'pending';
  }

  // ---------------------------------------------------------------- step

  /** Feeds a message from a peer. Malformed messages throw (nothing is changed). */
  step(m: Message): void {
    validateMessage(m);
    if (m.to !== this.id) throw new Error(`raft: message for ${m.to} delivered to ${this.id}`);
    // Raft §5.2: only hearing from a leader or granting a vote restarts the election timer. A
    // vote request we reject must not, or a member with a stale log that keeps campaigning
    // would forever hold back the members that could win (found by the simulation, seed 276).
    const timer = { elapsed: this.electionElapsed, timeout: this.randomizedElectionTimeout };
    if (m.term > this.term) {
      if (m.type === 'pre-vote' || m.type === 'vote') {
        // Lease (check-quorum): while a leader was heard from within the minimum election timeout,
        // vote requests are ignored, so a partitioned or removed member cannot depose it.
        const inLease = this.cfg.checkQuorum && this.lead !== '' && this.electionElapsed < this.cfg.electionTick;
        if (!m.transfer && inLease) return;
      }
      if (m.type === 'pre-vote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'pre-vote-resp' && !m.reject) {
        // Granted pre-votes carry the future term; the candidate bumps its term when it wins.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, '');
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // A stale leader (e.g. partitioned away) learns the new term from this and steps down;
        // without it, with pre-vote, a stuck candidate and a stale leader could deadlock.
        this.send({ type: 'append-resp', to: m.from, reject: false, index: 0, rejectHintIndex: 0, rejectHintTerm: 0 });
      } else if (m.type === 'pre-vote') {
        this.send({ type: 'pre-vote-resp', to: m.from, reject: true });
      }
      return;
    }

    if (m.type === 'pre-vote' || m.type === 'vote') {
      const canVote = this.vote === m.from || (this.vote === '' && this.lead === '') || (m.type === 'pre-vote' && m.term > this.term);
      if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
        this.send({ type: m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp', to: m.from, term: m.term, reject: false });
        if (m.type === 'vote') {
          this.electionElapsed = 0;
          this.vote = m.from;
        }
      } else {
        this.send({ type: m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp', to: m.from, reject: true });
        if (this.role === 'follower') {
          this.electionElapsed = timer.elapsed;
          this.randomizedElectionTimeout = timer.timeout;
        }
      }
      return;
    }

    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'pre-vote-resp':
      case 'vote-resp': {
        const mine = this.role === 'pre-candidate' ? 'pre-vote-resp' : 'vote-resp';
        if (m.type !== mine) return;
        const r = this.recordVote(m.from, !m.reject);
        if (r === 'won') {
          if (this.role === 'pre-candidate') this.campaign('vote', false);
          else this.becomeLeader();
        } else if (r === 'lost') {
          this.becomeFollower(this.term, '');
        }
        return;
      }
      // Votes were answered in step(); the rest are replies to a leadership we do not hold, or
      // requests only a leader or follower serves.
      case 'vote':
      case 'pre-vote':
      case 'append-resp':
      case 'heartbeat-resp':
      case 'snapshot-resp':
      case 'read-index':
      case 'read-index-resp':
      case 'timeout-now':
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeout-now':
        if (this.promotable()) this.hup(true);
        return;
      case 'read-index':
        // A peer took us for the leader. Forwarding would route the answer to us, not to it;
        // dropping lets it time out and ask the real leader.
        return;
      case 'read-index-resp':
        if (!m.reject) this.readStates.push({ index: m.index, context: m.context });
        return;
      // Votes were answered in step(); responses are for a leader or candidate we are not (stale).
      case 'vote':
      case 'pre-vote':
      case 'vote-resp':
      case 'pre-vote-resp':
      case 'append-resp':
      case 'heartbeat-resp':
      case 'snapshot-resp':
        return;
    }
  }

  private handleAppend(m: AppendRequest): void {
    if (m.prevIndex < this.log.committed) {
      this.send({ type: 'append-resp', to: m.from, reject: false, index: this.log.committed, rejectHintIndex: 0, rejectHintTerm: 0 });
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries, (from) => this.onTruncate(from));
    if (lastNew !== undefined) {
      // Configurations take effect as soon as they are in the log.
      for (const e of m.entries) if (e.index > this.lastConfigIndex() && e.type === 'conf-change') this.noteEntry(e);
      this.send({ type: 'append-resp', to: m.from, reject: false, index: lastNew, rejectHintIndex: 0, rejectHintTerm: 0 });
      return;
    }
    // Hint: the leader may skip to the last index whose term is <= the term it tried.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.send({ type: 'append-resp', to: m.from, reject: true, index: m.prevIndex, rejectHintIndex: hintIndex, rejectHintTerm: hintTerm });
  }

  private handleHeartbeat(m: Heartbeat): void {
    // The leader sends min(match, commit), so this never exceeds what we hold in its term.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeat-resp', to: m.from, context: m.context });
  }

  private handleSnapshot(m: SnapshotChunk): void {
    const index = m.metadata.index;
    if (index <= this.log.committed) {
      this.incoming = undefined;
      this.send({ type: 'append-resp', to: m.from, reject: false, index: this.log.committed, rejectHintIndex: 0, rejectHintTerm: 0 });
      return;
    }
    let inc = this.incoming;
    if (!inc || inc.index !== index || inc.term !== m.metadata.term || m.offset === 0) {
      if (m.offset !== 0) {
        this.incoming = undefined;
        this.send({ type: 'snapshot-resp', to: m.from, index, nextOffset: 0, reject: false });
        return;
      }
      inc = { index, term: m.metadata.term, totalBytes: m.totalBytes, nextOffset: 0, chunks: [] };
      this.incoming = inc;
    }
    if (m.offset !== inc.nextOffset || m.totalBytes !== inc.totalBytes) {
      this.send({ type: 'snapshot-resp', to: m.from, index, nextOffset: inc.nextOffset, reject: false });
      return;
    }
    inc.chunks.push(m.data);
    inc.nextOffset += m.data.length;
    if (inc.nextOffset < inc.totalBytes) {
      this.send({ type: 'snapshot-resp', to: m.from, index, nextOffset: inc.nextOffset, reject: false });
      return;
    }
    if (inc.nextOffset > inc.totalBytes || !m.done) {
      this.incoming = undefined;
      this.send({ type: 'snapshot-resp', to: m.from, index, nextOffset: 0, reject: true });
      return;
    }
    const data = new Uint8Array(inc.totalBytes);
    let off = 0;
    for (const c of inc.chunks) {
      data.set(c, off);
      off += c.length;
    }
    this.incoming = undefined;
    const snap: Snapshot = { metadata: { index, term: m.metadata.term, confState: cloneConfState(m.metadata.confState) }, data };
    this.restore(snap);
    // Answer with the commit index, not the last index: when we already held the snapshot's
    // entry, entries after it may still differ from the leader's.
    this.send({ type: 'append-resp', to: m.from, reject: false, index: this.log.committed, rejectHintIndex: 0, rejectHintTerm: 0 });
  }

  private restore(snap: Snapshot): void {
    const { index, term } = snap.metadata;
    if (index <= this.log.committed) return;
    if (this.log.matchTerm(index, term)) {
      // We already hold this prefix: just learn that it is committed.
      this.log.commitTo(index);
      return;
    }
    this.log.restore(snap);
    this.configs = [{ index, conf: cloneConfState(snap.metadata.confState) }];
  }

  // ---------------------------------------------------------------- leader

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'read-index':
        this.handleReadIndex(m.context, m.from);
        return;
      case 'append-resp':
      case 'heartbeat-resp':
      case 'snapshot-resp':
        break;
      // Votes were answered in step(), and a message of a higher term made us a follower there:
      // what is left is stale (an old term's leader, our own campaign's late replies).
      case 'vote':
      case 'pre-vote':
      case 'vote-resp':
      case 'pre-vote-resp':
      case 'append':
      case 'heartbeat':
      case 'snapshot':
      case 'timeout-now':
      case 'read-index-resp':
        return;
    }
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.type === 'append-resp') {
      if (m.reject) {
        let hint = m.rejectHintIndex;
        if (m.rejectHintTerm > 0) hint = this.log.findConflictByTerm(m.rejectHintIndex, m.rejectHintTerm);
        if (pr.maybeDecrTo(m.index, hint)) {
          if (pr.state === 'replicate') pr.becomeProbe();
          this.sendAppend(m.from, true);
        }
        return;
      }
      const wasPaused = pr.isPaused();
      if (!pr.maybeUpdate(m.index)) {
        return;
      }
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);
      if (this.maybeCommit()) {
        this.bcastAppend();
      } else if (wasPaused) {
        this.sendAppend(m.from, true);
      }
      while (this.role === 'leader' && pr.state === 'replicate' && this.sendAppend(m.from, false)) {
        // pipeline: keep the window full
      }
      if (this.role === 'leader' && m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.send({ type: 'timeout-now', to: m.from });
      }
      return;
    }
    if (m.type === 'heartbeat-resp') {
      pr.probeSent = false;
      if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
      if (pr.state === 'snapshot') this.sendSnapshotChunk(m.from, pr, pr.snapshotOffset);
      else if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
      if (m.context !== '' && !pr.learner) this.onReadAck(m.from, m.context);
      return;
    }
    // snapshot-resp
    if (pr.state !== 'snapshot' || m.index !== pr.pendingSnapshot) return;
    if (m.reject) {
      pr.becomeProbe();
      pr.next = pr.match + 1;
      this.sendAppend(m.from, true);
      return;
    }
    pr.snapshotOffset = m.nextOffset;
    this.sendSnapshotChunk(m.from, pr, m.nextOffset);
  }

  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const v of this.conf().voters) {
      const pr = this.prs.get(v);
      matches.push(pr ? pr.match : 0);
    }
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    const idx = matches[this.quorum() - 1] as number;
    if (!this.log.maybeCommit(idx, this.term)) return false;
    this.afterCommit();
    return true;
  }

  private afterCommit(): void {
    // A leader removed (or demoted) by a now committed configuration steps down (thesis §4.2.2).
    if (!this.promotable() && this.lastConfigIndex() <= this.log.committed) {
      this.bcastAppend();
      this.becomeFollower(this.term, '');
    }
  }

  private appendEntries(ents: Entry[]): void {
    let li = this.log.lastIndex();
    for (const e of ents) {
      li++;
      e.term = this.term;
      e.index = li;
    }
    this.log.append(ents);
    for (const e of ents) this.noteEntry(e);
    if (ents.some((e) => e.type === 'conf-change')) this.syncProgress();
    // The leader's own progress does NOT move here: these entries are not durable yet, and the
    // followers may receive them before they are (thesis §10.2.1). advance() counts them once the
    // application has persisted them (a single voter commits then).
  }

  /** The role read afresh, not narrowed by an earlier check: steps in between may change it. */
  private isLeader(): boolean {
    return this.role === 'leader';
  }

  /** After a Ready was persisted: the leader's durable log now counts toward commitment. */
  private selfPersisted(): void {
    if (this.role !== 'leader') return;
    const self = this.prs.get(this.id);
    if (!self || !self.maybeUpdate(this.log.lastStableIndex())) return;
    // Committing our own removal steps us down (afterCommit), so ask for the role afresh.
    if (this.maybeCommit() && this.isLeader()) this.bcastAppend();
  }

  /** Sends entries (or a probe) to `to`; false when nothing was sent. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    if (prevIndex === 0) this.refuseBaselessCatchUp(to);
    const prevTerm = this.log.term(prevIndex);
    let entries: Entry[];
    try {
      if (prevTerm === undefined) throw new LogCompactedError(prevIndex, this.log.firstIndex());
      entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.maxSizePerMsg);
    } catch (err) {
      if (err instanceof LogCompactedError) return this.sendSnapshot(to, pr);
      if (err instanceof LogUnavailableError) return false;
      throw err;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'append', to, prevIndex, prevTerm, entries, commit: this.log.committed });
    if (entries.length > 0) {
      if (pr.state === 'replicate') {
        const last = (entries[entries.length - 1] as Entry).index;
        pr.next = last + 1;
        pr.inflights.add(last);
      } else if (pr.state === 'probe') {
        pr.probeSent = true;
      }
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  /**
   * A member that was not in the bootstrap configuration can only learn that configuration from a
   * snapshot: the log holds the changes, not the base. If the group was bootstrapped at index 0
   * (no snapshot), replicating the log from index 1 would leave the newcomer computing its
   * configuration from nothing (it could even believe it is the only voter). Refuse loudly.
   */
  private refuseBaselessCatchUp(to: NodeId): void {
    const base = this.configs[0] as ConfigAt;
    if (base.index !== 0 || base.conf.voters.length === 0) return;
    if (base.conf.voters.includes(to) || base.conf.learners.includes(to)) return;
    throw new Error(
      `raft: cannot catch up ${to} from index 1: the group was bootstrapped without a snapshot, so ${to} would never learn ` +
        'the bootstrap configuration; storage must start a fresh group from a snapshot at index 1, term 1 holding it (see RaftLogStorage.initialState)',
    );
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    let snap: Snapshot;
    try {
      snap = this.cfg.storage.snapshot();
    } catch (err) {
      if (err instanceof SnapshotUnavailableError) return false;
      throw err;
    }
    if (snap.metadata.index === 0) throw new Error('raft: need a snapshot to catch up a member but storage has none');
    pr.becomeSnapshot(snap);
    this.sendSnapshotChunk(to, pr, 0);
    return true;
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress, offset: number): void {
    const snap = pr.snapshot;
    if (!snap) return;
    const total = snap.data.length;
    const size = this.cfg.snapshotChunkSize;
    let off = Math.max(0, offset);
    if (off >= total) off = total === 0 ? 0 : Math.floor((total - 1) / size) * size;
    const end = Math.min(total, off + size);
    this.send({
      type: 'snapshot',
      to,
      metadata: { index: snap.metadata.index, term: snap.metadata.term, confState: cloneConfState(snap.metadata.confState) },
      offset: off,
      totalBytes: total,
      data: snap.data.subarray(off, end),
      done: end === total,
    });
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) {
      if (id === this.id) continue;
      this.sendAppend(id, true);
      const pr = this.prs.get(id);
      while (this.role === 'leader' && pr && pr.state === 'replicate' && this.sendAppend(id, false)) {
        // fill the window
      }
    }
  }

  private bcastHeartbeat(context: string): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      this.send({ type: 'heartbeat', to: id, commit: Math.min(pr.match, this.log.committed), context });
    }
  }

  // ---------------------------------------------------------------- ReadIndex

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private handleReadIndex(context: string, from: NodeId): void {
    if (!this.committedInTerm()) {
      // Until its no-op commits, a new leader does not know the latest commit index (§6.4).
      if (from !== this.id) this.send({ type: 'read-index-resp', to: from, context, index: 0, reject: true });
      else throw new ProposalDroppedError('leader has not committed an entry in its term yet');
      return;
    }
    if (this.quorum() === 1 && this.isVoter(this.id)) {
      this.releaseRead({ context, index: this.log.committed, from });
      return;
    }
    if (this.readOnly.add(context, this.log.committed, from, this.id)) this.bcastHeartbeat(context);
  }

  private onReadAck(from: NodeId, context: string): void {
    const voters = this.conf().voters;
    const released = this.readOnly.ack(from, context, (acks) => voters.filter((v) => acks.has(v)).length >= this.quorum());
    for (const r of released) this.releaseRead(r);
  }

  private releaseRead(r: { context: string; index: number; from: NodeId }): void {
    if (r.from === this.id) this.readStates.push({ index: r.index, context: r.context });
    else this.send({ type: 'read-index-resp', to: r.from, context: r.context, index: r.index, reject: false });
  }

  // ---------------------------------------------------------------- public API

  /** Appends application data; returns where it went. It is committed only if `term` still holds
   *  at `index` once committed. */
  propose(data: Uint8Array): { index: number; term: number } {
    if (this.role !== 'leader') throw new ProposalDroppedError(`${this.id} is not the leader (leader: ${this.lead || 'unknown'})`);
    if (this.leadTransferee !== '') throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
    const e: Entry = { term: 0, index: 0, type: 'normal', data };
    this.appendEntries([e]);
    this.appendPending = true;
    return { index: e.index, term: e.term };
  }

  proposeConfChange(change: ConfChange): { index: number; term: number } {
    if (this.role !== 'leader') throw new ProposalDroppedError(`${this.id} is not the leader (leader: ${this.lead || 'unknown'})`);
    if (this.leadTransferee !== '') throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
    if (!this.committedInTerm()) throw new ProposalDroppedError('configuration change before an entry of this term is committed');
    if (this.lastConfigIndex() > this.log.committed) throw new ProposalDroppedError('another configuration change is still uncommitted');
    const cs = this.conf();
    const isVoter = cs.voters.includes(change.nodeId);
    const isLearner = cs.learners.includes(change.nodeId);
    switch (change.type) {
      case 'add-voter': {
        if (isVoter) throw new ProposalDroppedError(`${change.nodeId} is already a voter`);
        if (isLearner) {
          const pr = this.prs.get(change.nodeId);
          if (!pr || pr.match < this.log.committed) {
            throw new ProposalDroppedError(`learner ${change.nodeId} has not caught up (match ${pr?.match ?? 0}, commit ${this.log.committed})`);
          }
        }
        break;
      }
      case 'add-learner':
        if (isLearner) throw new ProposalDroppedError(`${change.nodeId} is already a learner`);
        if (isVoter && cs.voters.length === 1) throw new ProposalDroppedError('cannot demote the only voter');
        break;
      case 'remove-node':
        if (!isVoter && !isLearner) throw new ProposalDroppedError(`${change.nodeId} is not a member`);
        if (isVoter && cs.voters.length === 1) throw new ProposalDroppedError('cannot remove the only voter');
        break;
    }
    const e: Entry = { term: 0, index: 0, type: 'conf-change', data: encodeConfChange(change) };
    this.appendEntries([e]);
    this.appendPending = true;
    return { index: e.index, term: e.term };
  }

  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') throw new ProposalDroppedError(`${this.id} is not the leader`);
    if (to === this.id) return;
    if (!this.isVoter(to)) throw new ProposalDroppedError(`${to} is not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.electionElapsed = 0;
    const pr = this.prs.get(to);
    if (pr && pr.match === this.log.lastIndex()) this.send({ type: 'timeout-now', to });
    else this.sendAppend(to, true);
  }

  /** Asks for a linearizable read point; the answer arrives as a ReadState with this context.
   *  Contexts must be unique among reads in flight. */
  readIndex(context: string): void {
    if (context === '') throw new ProposalDroppedError('read context must be non-empty');
    if (this.role === 'leader') this.handleReadIndex(context, this.id);
    else if (this.lead !== '') this.send({ type: 'read-index', to: this.lead, context });
    else throw new ProposalDroppedError('no known leader');
  }

  /**
   * The transport saw its connection to `peer` refused or reset. When `peer` is this follower's
   * leader, the follower forgets it (so it is out of the lease and grants other survivors their
   * pre-votes) and campaigns within a few ticks instead of a whole election timeout: a leader
   * whose process died closed its connections at once. Survivors campaign one after another, in
   * the order of their ids (1, 3, 5 … ticks), so two of them do not split the vote. Safety does not
   * rest on the report: a wrong one costs at most a pre-vote that members still hearing from the
   * leader ignore, and the leader's next heartbeat cancels it.
   */
  reportPeerDown(peer: NodeId): void {
    if (this.role !== 'follower' || this.lead === '' || this.lead !== peer) return;
    const survivors = this.conf()
      .voters.filter((v) => v !== peer)
      .sort();
    const rank = survivors.indexOf(this.id);
    if (rank < 0) return;
    this.lead = '';
    this.leaderDownCountdown = 1 + 2 * rank;
  }

  /** Starts an election now (tests, or an operator's "campaign"). */
  campaignNow(): void {
    this.hup(false);
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private flush(): void {
    if (this.appendPending && this.role === 'leader') this.bcastAppend();
    this.appendPending = false;
  }

  hasReady(): boolean {
    this.flush();
    const hs = this.hardState();
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasPendingEntries() ||
      this.log.pendingSnapshot() !== undefined ||
      this.log.hasNextCommittedEntries() ||
      this.prevSoft.leader !== this.lead ||
      this.prevSoft.role !== this.role ||
      !hardStatesEqual(hs, this.prevHard)
    );
  }

  ready(): Ready {
    this.flush();
    const rd: Ready = {
      entries: this.log.pendingEntries(),
      messages: this.msgs,
      earlyMessages: this.msgs.filter((m) => this.maySendBeforePersist(m)),
      committedEntries: this.log.nextCommittedEntries(),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    const snap = this.log.pendingSnapshot();
    if (snap) rd.snapshot = snap;
    const soft = { leader: this.lead, role: this.role };
    if (soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role) {
      rd.softState = soft;
      this.prevSoft = soft;
    }
    const hs = this.hardState();
    if (!hardStatesEqual(hs, this.prevHard)) {
      rd.hardState = hs;
      this.prevHard = hs;
    }
    return rd;
  }

  /**
   * A leader's replication messages depend on nothing of this Ready being durable, only on its
   * leadership of their term, which must be durable (a leader that forgot its vote could restart,
   * vote for another member in the same term and let two leaders write different entries at one
   * index). Everything else (votes, acknowledgements) waits for the fsync.
   */
  private maySendBeforePersist(m: Message): boolean {
    if (m.type !== 'append' && m.type !== 'heartbeat' && m.type !== 'snapshot') return false;
    return m.term === this.stableHard.term && this.stableHard.vote === this.id;
  }

  /** The Ready was persisted, its messages sent and its committed entries applied. */
  advance(rd: Ready): void {
    if (rd.snapshot) {
      this.log.stableSnapTo(rd.snapshot.metadata.index);
      this.log.appliedTo(Math.min(rd.snapshot.metadata.index, this.log.committed));
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last) this.log.stableTo(last.index, last.term);
    if (rd.hardState) this.stableHard = { ...rd.hardState };
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) this.log.appliedTo(lastApplied.index);
    this.selfPersisted();
  }

  /**
   * Committed entries after `index` (about maxBytes of data, at least one), for an application that
   * applies them as soon as they are committed (they are durable on a majority) instead of at the
   * next Ready; they still come again in a later Ready's committedEntries. Empty when there are
   * none, when `index` is compacted, or while a received snapshot is pending.
   */
  committedEntriesAfter(index: number, maxBytes: number): Entry[] {
    if (this.log.pendingSnapshot()) return [];
    const lo = index + 1;
    if (lo < this.log.firstIndex() || lo > this.log.committed) return [];
    return this.log.slice(lo, this.log.committed + 1, maxBytes);
  }

  /** Cheap accessors for hot paths (status() copies). */
  get currentTerm(): number {
    return this.term;
  }

  get currentRole(): Role {
    return this.role;
  }

  get leader(): NodeId {
    return this.lead;
  }

  get committedIndex(): number {
    return this.log.committed;
  }

  status(): RaftStatus {
    const progress: RaftStatus['progress'] = {};
    if (this.role === 'leader') for (const [id, pr] of this.prs) progress[id] = pr.status();
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      confState: this.confState(),
      progress,
      leadTransferee: this.leadTransferee,
    };
  }

  private send(m: Outgoing): void {
    const full = { ...m, from: this.id, term: m.term ?? this.term } as Message;
    this.msgs.push(full);
  }
}

function hardStatesEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
