// Messages arrive from the network (decoded by the transport): check their shape before the state
// machine trusts them, and say what is wrong.
import type { Message } from './types.js';

const TYPES = new Set([
  'pre-vote',
  'vote',
  'pre-vote-resp',
  'vote-resp',
  'append',
  'append-resp',
  'heartbeat',
  'heartbeat-resp',
  'snapshot',
  'snapshot-resp',
  'timeout-now',
  'read-index',
  'read-index-resp',
]);

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

type Fields = Record<string, unknown>;

function isFields(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null;
}

/**
 * Throws an Error naming the message and the offending field. Takes `unknown`: the transport
 * decodes bytes from the network, so no field's type can be taken on trust.
 */
export function validateMessage(input: unknown): asserts input is Message {
  if (!isFields(input)) throw new Error('raft message: not an object');
  const m = input;
  const where = `raft message ${String(m.type)} from ${String(m.from)}`;
  const fail = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (typeof m.type !== 'string' || !TYPES.has(m.type)) fail(`unknown type ${JSON.stringify(m.type)}`);
  if (typeof m.from !== 'string' || m.from === '') fail('from must be a non-empty string');
  if (typeof m.to !== 'string' || m.to === '') fail('to must be a non-empty string');
  if (!isIndex(m.term)) fail(`term must be a non-negative integer, got ${String(m.term)}`);
  switch (m.type) {
    case 'pre-vote':
    case 'vote':
      if (!isIndex(m.lastLogIndex) || !isIndex(m.lastLogTerm)) fail('lastLogIndex/lastLogTerm must be non-negative integers');
      if (typeof m.transfer !== 'boolean') fail('transfer must be a boolean');
      break;
    case 'append':
      validateEntries(m, fail);
      break;
    case 'append-resp':
      if (typeof m.reject !== 'boolean' || !isIndex(m.index) || !isIndex(m.rejectHintIndex) || !isIndex(m.rejectHintTerm)) {
        fail('reject must be a boolean and index/rejectHintIndex/rejectHintTerm non-negative integers');
      }
      break;
    case 'heartbeat':
      if (!isIndex(m.commit)) fail('commit must be a non-negative integer');
      if (typeof m.context !== 'string') fail('context must be a string');
      break;
    case 'heartbeat-resp':
    case 'read-index':
      if (typeof m.context !== 'string') fail('context must be a string');
      break;
    case 'read-index-resp':
      if (typeof m.context !== 'string' || !isIndex(m.index) || typeof m.reject !== 'boolean') fail('context/index/reject malformed');
      break;
    case 'snapshot':
      validateSnapshotChunk(m, fail);
      break;
    case 'snapshot-resp':
      if (!isIndex(m.index) || !isIndex(m.nextOffset) || typeof m.reject !== 'boolean') fail('index/nextOffset/reject malformed');
      break;
    case 'pre-vote-resp':
    case 'vote-resp':
      if (typeof m.reject !== 'boolean') fail('reject must be a boolean');
      break;
    case 'timeout-now':
      break;
  }
}

function validateEntries(m: Fields, fail: (what: string) => never): void {
  const { term, prevIndex, prevTerm, commit, entries } = m;
  if (!isIndex(term) || !isIndex(prevIndex) || !isIndex(prevTerm) || !isIndex(commit)) return fail('prevIndex/prevTerm/commit must be non-negative integers');
  if (!Array.isArray(entries)) return fail('entries must be an array');
  let expect = prevIndex + 1;
  for (const e of entries as unknown[]) {
    if (!isFields(e)) return fail(`entry where ${expect} was expected is not an object`);
    if (e.index !== expect) fail(`entry index ${String(e.index)} where ${expect} was expected`);
    if (!isIndex(e.term) || e.term > term || e.term < prevTerm) fail(`entry ${expect} has term ${String(e.term)} outside [prevTerm ${prevTerm}, ${term}]`);
    if (e.type !== 'normal' && e.type !== 'conf-change') fail(`entry ${expect} has unknown type ${JSON.stringify(e.type)}`);
    if (!(e.data instanceof Uint8Array)) fail(`entry ${expect} data must be bytes`);
    expect++;
  }
}

function validateSnapshotChunk(m: Fields, fail: (what: string) => never): void {
  const md = m.metadata;
  if (!isFields(md) || !isIndex(md.index) || !isIndex(md.term)) return fail('metadata index/term malformed');
  const confState = md.confState;
  if (!isFields(confState) || !Array.isArray(confState.voters) || !Array.isArray(confState.learners)) fail('metadata.confState must list voters and learners');
  const { offset, totalBytes, data } = m;
  if (!isIndex(offset) || !isIndex(totalBytes) || offset > totalBytes) return fail('offset/totalBytes malformed');
  if (!(data instanceof Uint8Array) || offset + data.length > totalBytes) fail('chunk data must be bytes within totalBytes');
  if (typeof m.done !== 'boolean') fail('done must be a boolean');
}
