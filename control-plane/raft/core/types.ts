// The contract between the pure Raft core and everything around it (storage, transport, the
// replicated store, the simulator). Nothing here does I/O.
//
// Membership: one server at a time; a member uses the latest configuration in its log (committed
// or not), see conf-change.ts. RaftNode.applyConfChange(entry) tells the application the
// configuration in effect at that entry, to put into the snapshots it makes.

/** A member's identity; the transport maps it to an address. */
export type NodeId = string;

export type EntryType = 'normal' | 'conf-change';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** For 'normal': opaque application data (empty for the no-op a new leader appends).
   *  For 'conf-change': encodeConfChange(...) bytes. */
  data: Uint8Array;
}

/** What must be durable before any message of the same Ready is sent. */
export interface HardState {
  term: number;
  /** '' when no vote was cast in `term`. */
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  /** Reserved for joint consensus. This core changes one server at a time and never sets it. */
  votersOutgoing?: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  /** The configuration in effect at `index`. */
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** One-server-at-a-time membership change. Promoting a learner is 'add-voter' of that learner. */
export interface ConfChange {
  type: 'add-voter' | 'add-learner' | 'remove-node';
  nodeId: NodeId;
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

interface MessageBase {
  from: NodeId;
  to: NodeId;
  /** 0 only for messages that carry no term (never used by this core). */
  term: number;
}

export interface VoteRequest extends MessageBase {
  type: 'pre-vote' | 'vote';
  lastLogIndex: number;
  lastLogTerm: number;
  /** Set when the election was started by a leader transfer: voters then ignore their lease. */
  transfer: boolean;
}

export interface VoteResponse extends MessageBase {
  type: 'pre-vote-resp' | 'vote-resp';
  reject: boolean;
}

export interface AppendRequest extends MessageBase {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commit: number;
}

export interface AppendResponse extends MessageBase {
  type: 'append-resp';
  reject: boolean;
  /** Accepted: the follower's log now matches the leader's up to `index`.
   *  Rejected: the prevIndex that did not match. */
  index: number;
  /** On reject: the largest index <= hintIndex whose term is <= hintTerm may match; the leader
   *  skips back to it instead of probing one entry at a time. */
  rejectHintIndex: number;
  rejectHintTerm: number;
}

export interface Heartbeat extends MessageBase {
  type: 'heartbeat';
  commit: number;
  /** ReadIndex round this heartbeat confirms leadership for ('' when none). */
  context: string;
}

export interface HeartbeatResponse extends MessageBase {
  type: 'heartbeat-resp';
  context: string;
}

export interface SnapshotChunk extends MessageBase {
  type: 'snapshot';
  metadata: SnapshotMetadata;
  /** Byte offset of `data` inside the whole snapshot. */
  offset: number;
  totalBytes: number;
  data: Uint8Array;
  done: boolean;
}

export interface SnapshotResponse extends MessageBase {
  type: 'snapshot-resp';
  /** The snapshot index this answers for. */
  index: number;
  /** The offset the follower expects next; equal to totalBytes once installed. */
  nextOffset: number;
  /** The follower cannot use this snapshot (stale or refused); the leader probes again. */
  reject: boolean;
}

export interface TimeoutNow extends MessageBase {
  type: 'timeout-now';
}

/** Follower -> leader: please run a ReadIndex round for `context`. */
export interface ReadIndexRequest extends MessageBase {
  type: 'read-index';
  context: string;
}

/** Leader -> follower: reads for `context` are linearizable once applied >= index. */
export interface ReadIndexResponse extends MessageBase {
  type: 'read-index-resp';
  context: string;
  index: number;
  /** The leader could not serve it (not leader anymore, or no entry of its term committed yet). */
  reject: boolean;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | SnapshotChunk
  | SnapshotResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message['type'];

export interface ReadState {
  /** Reads for `context` may be served once the local applied index reaches `index`. */
  index: number;
  context: string;
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/**
 * One batch of work for the application. Contract:
 *  1. persist `snapshot` (if any), then `entries`, then `hardState` (if any), durably (fsync);
 *  2. only then send `messages` — except those also listed in `earlyMessages`, which may be sent
 *     before or during step 1 (never required: sending everything after step 1 is correct too);
 *  3. apply `committedEntries` in order (and restore from `snapshot` first when set);
 *  4. call `advance(ready)`.
 * tick()/step() may be called between ready() and advance(); ready() may not.
 *
 * Committed entries are durable on a majority of voters before they appear here (the leader counts
 * itself only for entries it has persisted, i.e. after advance()), so when `snapshot` is unset they
 * may also be applied before or during step 1.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  messages: Message[];
  /**
   * The subset of `messages` (same objects) that may go out before this Ready is durable: a
   * leader's appends, heartbeats and snapshot chunks of a term whose vote is already durable. The
   * leader writes its log in parallel with replicating it (Raft thesis §10.2.1); this is safe
   * because it counts itself toward commitment only once its own entries are durable.
   */
  earlyMessages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
}

/**
 * A read-only view of what is durable. The application writes to it (on disk or in memory) while
 * handling a Ready; the core only reads. All methods are synchronous: a disk implementation keeps
 * an index (and ideally a cache) in memory.
 */
export interface RaftLogStorage {
  /** Durable hard state and the configuration as of the snapshot. A fresh group starts from a
   *  snapshot at index 1, term 1 with the bootstrap configuration and empty data (hard state
   *  { term: 1, vote: '', commit: 1 }), the same on every founding member; a member joining an
   *  existing group starts empty (index 0, no voters) and receives a snapshot from the leader. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at least one if any exist, truncated to about maxBytes of data.
   *  Throws LogCompactedError when lo < firstIndex(), LogUnavailableError when hi > lastIndex()+1. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; i may be firstIndex()-1 (the snapshot's index). Throws like entries(). */
  term(index: number): number;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): number;
  /** Index of the last entry (snapshot index when the log is empty). */
  lastIndex(): number;
  /** The latest snapshot; may throw SnapshotUnavailableError while one is being made. */
  snapshot(): Snapshot;
}

export class LogCompactedError extends Error {
  constructor(index: number, firstIndex: number) {
    super(`raft log: index ${index} is compacted (first index ${firstIndex})`);
    this.name = 'LogCompactedError';
  }
}

export class LogUnavailableError extends Error {
  constructor(index: number, lastIndex: number) {
    super(`raft log: index ${index} is beyond the last index ${lastIndex}`);
    this.name = 'LogUnavailableError';
  }
}

export class SnapshotUnavailableError extends Error {
  constructor() {
    super('raft log: snapshot temporarily unavailable');
    this.name = 'SnapshotUnavailableError';
  }
}

/** Thrown by propose/proposeConfChange/transferLeadership when the request cannot be accepted. */
export class ProposalDroppedError extends Error {
  constructor(reason: string) {
    super(`raft: proposal dropped: ${reason}`);
    this.name = 'ProposalDroppedError';
  }
}

export interface RaftConfig {
  id: NodeId;
  storage: RaftLogStorage;
  /** Ticks without hearing from a leader before campaigning; the actual timeout is randomized
   *  in [electionTick, 2*electionTick). */
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Upper bound on entry data bytes per append message (at least one entry is always sent). */
  maxSizePerMsg: number;
  /** Append messages in flight to one follower in replicate state. */
  maxInflightMsgs: number;
  /** Snapshot bytes per InstallSnapshot chunk. */
  snapshotChunkSize: number;
  /** Last applied index after a restart (the state machine's, e.g. from its snapshot). */
  applied: number;
  /** Injected randomness in [0, 1): only used to randomize the election timeout. */
  random: () => number;
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface PeerStatus {
  match: number;
  next: number;
  state: ProgressState;
  learner: boolean;
  recentActive: boolean;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  confState: ConfState;
  /** Only on the leader: replication progress per member (including itself). */
  progress: Record<NodeId, PeerStatus>;
  leadTransferee: NodeId;
}
