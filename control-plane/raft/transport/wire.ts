// Raft messages <-> the proto/raft.proto shapes (as @grpc/proto-loader presents them: camelCase,
// numbers for uint64, Buffers for bytes, defaults filled in). Decoding rebuilds exactly the fields
// of each message type and then runs the core's validateMessage, so nothing malformed reaches it.
import { validateMessage, type ConfState, type Entry, type Message, type SnapshotMetadata } from '../core/index.js';

export interface WireEntry {
  term: number;
  index: number;
  type: string;
  data: Uint8Array;
}

export interface WireConfState {
  voters: string[];
  learners: string[];
}

export interface WireSnapshotMetadata {
  index: number;
  term: number;
  confState: WireConfState | null;
}

export interface WireMessage {
  type: string;
  from: string;
  to: string;
  term: number;
  lastLogIndex: number;
  lastLogTerm: number;
  transfer: boolean;
  reject: boolean;
  prevIndex: number;
  prevTerm: number;
  entries: WireEntry[];
  commit: number;
  index: number;
  rejectHintIndex: number;
  rejectHintTerm: number;
  context: string;
  metadata: WireSnapshotMetadata | null;
  offset: number;
  totalBytes: number;
  data: Uint8Array;
  done: boolean;
  nextOffset: number;
}

/** A client write a follower passes to the leader (proto ForwardedProposal). */
export interface WireProposal {
  id: string;
  term: number;
  data: Uint8Array;
}

export interface WireBatch {
  group: string;
  from: string;
  fromAddress: string;
  messages: WireMessage[];
  /** Absent from batches of members that never forward (and from older members). */
  proposals?: WireProposal[];
  refused?: string[];
}

/** Validates a forwarded proposal from the network; throws naming what is wrong. */
export function checkProposal(p: WireProposal, from: string): WireProposal {
  // The proto decoder hands us an object with every field set (defaults: true); the values are checked here.
  if (typeof p.id !== 'string' || p.id === '' || p.id.length > 200)
    throw new Error(`raft batch from ${from}: forwarded proposal id ${JSON.stringify(p.id)} is not a non-empty string of at most 200 characters`);
  const term = Number(p.term);
  if (!Number.isSafeInteger(term) || term < 1) throw new Error(`raft batch from ${from}: forwarded proposal ${p.id} has term ${String(p.term)}`);
  if (!(p.data instanceof Uint8Array) || p.data.length === 0) throw new Error(`raft batch from ${from}: forwarded proposal ${p.id} has no data`);
  return { id: p.id, term, data: p.data };
}

const EMPTY = new Uint8Array(0);

function blank(m: Message): WireMessage {
  return {
    type: m.type,
    from: m.from,
    to: m.to,
    term: m.term,
    lastLogIndex: 0,
    lastLogTerm: 0,
    transfer: false,
    reject: false,
    prevIndex: 0,
    prevTerm: 0,
    entries: [],
    commit: 0,
    index: 0,
    rejectHintIndex: 0,
    rejectHintTerm: 0,
    context: '',
    metadata: null,
    offset: 0,
    totalBytes: 0,
    data: EMPTY,
    done: false,
    nextOffset: 0,
  };
}

export function toWire(m: Message): WireMessage {
  const w = blank(m);
  switch (m.type) {
    case 'pre-vote':
    case 'vote':
      return { ...w, lastLogIndex: m.lastLogIndex, lastLogTerm: m.lastLogTerm, transfer: m.transfer };
    case 'pre-vote-resp':
    case 'vote-resp':
      return { ...w, reject: m.reject };
    case 'append':
      return { ...w, prevIndex: m.prevIndex, prevTerm: m.prevTerm, commit: m.commit, entries: m.entries.map((e) => ({ ...e })) };
    case 'append-resp':
      return { ...w, reject: m.reject, index: m.index, rejectHintIndex: m.rejectHintIndex, rejectHintTerm: m.rejectHintTerm };
    case 'heartbeat':
      return { ...w, commit: m.commit, context: m.context };
    case 'heartbeat-resp':
    case 'read-index':
      return { ...w, context: m.context };
    case 'read-index-resp':
      return { ...w, context: m.context, index: m.index, reject: m.reject };
    case 'snapshot':
      return {
        ...w,
        metadata: {
          index: m.metadata.index,
          term: m.metadata.term,
          confState: { voters: m.metadata.confState.voters, learners: m.metadata.confState.learners },
        },
        offset: m.offset,
        totalBytes: m.totalBytes,
        data: m.data,
        done: m.done,
      };
    case 'snapshot-resp':
      return { ...w, index: m.index, nextOffset: m.nextOffset, reject: m.reject };
    case 'timeout-now':
      return w;
  }
}

function confState(c: WireConfState | null): ConfState {
  return { voters: [...(c?.voters ?? [])], learners: [...(c?.learners ?? [])] };
}

/** Rebuilds and validates one message; throws an Error naming what is wrong. */
export function fromWire(w: WireMessage): Message {
  // The proto decoder hands us an object with every field set (defaults: true, so `entries` is at
  // least []); validateMessage checks the values.
  const base = { from: w.from, to: w.to, term: Number(w.term) };
  let m: Message;
  switch (w.type) {
    case 'pre-vote':
    case 'vote':
      m = { ...base, type: w.type, lastLogIndex: w.lastLogIndex, lastLogTerm: w.lastLogTerm, transfer: w.transfer };
      break;
    case 'pre-vote-resp':
    case 'vote-resp':
      m = { ...base, type: w.type, reject: w.reject };
      break;
    case 'append':
      m = {
        ...base,
        type: 'append',
        prevIndex: w.prevIndex,
        prevTerm: w.prevTerm,
        commit: w.commit,
        entries: w.entries.map((e): Entry => ({ term: e.term, index: e.index, type: e.type as Entry['type'], data: e.data })),
      };
      break;
    case 'append-resp':
      m = { ...base, type: 'append-resp', reject: w.reject, index: w.index, rejectHintIndex: w.rejectHintIndex, rejectHintTerm: w.rejectHintTerm };
      break;
    case 'heartbeat':
      m = { ...base, type: 'heartbeat', commit: w.commit, context: w.context };
      break;
    case 'heartbeat-resp':
    case 'read-index':
      m = { ...base, type: w.type, context: w.context };
      break;
    case 'read-index-resp':
      m = { ...base, type: 'read-index-resp', context: w.context, index: w.index, reject: w.reject };
      break;
    case 'snapshot': {
      if (!w.metadata) throw new Error(`raft message snapshot from ${w.from}: metadata missing`);
      const metadata: SnapshotMetadata = { index: w.metadata.index, term: w.metadata.term, confState: confState(w.metadata.confState) };
      m = { ...base, type: 'snapshot', metadata, offset: w.offset, totalBytes: w.totalBytes, data: w.data, done: w.done };
      break;
    }
    case 'snapshot-resp':
      m = { ...base, type: 'snapshot-resp', index: w.index, nextOffset: w.nextOffset, reject: w.reject };
      break;
    case 'timeout-now':
      m = { ...base, type: 'timeout-now' };
      break;
    default:
      throw new Error(`raft message from ${String(w.from)}: unknown type ${JSON.stringify(w.type)}`);
  }
  validateMessage(m);
  return m;
}
