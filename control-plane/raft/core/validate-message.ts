// Messages arrive from the network (decoded by the transport): check their shape before the state
// machine trusts them, and say what is wrong.
import type { Entry, Message } from './types.js';

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

/** Throws an Error naming the message and the offending field. */
export function validateMessage(m: Message): void {
  const where = `raft message ${String(m?.type)} from ${String(m?.from)}`;
  const fail = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (typeof m !== 'object' || m === null) throw new Error('raft message: not an object');
  if (!TYPES.has(m.type)) fail(`unknown type ${JSON.stringify(m.type)}`);
  if (typeof m.from !== 'string' || m.from === '') fail('from must be a non-empty string');
  if (typeof m.to !== 'string' || m.to === '') fail('to must be a non-empty string');
  if (!isIndex(m.term)) fail(`term must be a non-negative integer, got ${String(m.term)}`);
  switch (m.type) {
    case 'pre-vote':
    case 'vote':
      if (!isIndex(m.lastLogIndex) || !isIndex(m.lastLogTerm)) fail('lastLogIndex/lastLogTerm must be non-negative integers');
      if (typeof m.transfer !== 'boolean') fail('transfer must be a boolean');
      break;
    case 'append': {
      if (!isIndex(m.prevIndex) || !isIndex(m.prevTerm) || !isIndex(m.commit)) fail('prevIndex/prevTerm/commit must be non-negative integers');
      if (!Array.isArray(m.entries)) fail('entries must be an array');
      let expect = m.prevIndex + 1;
      for (const e of m.entries as Entry[]) {
        if (e.index !== expect) fail(`entry index ${String(e.index)} where ${expect} was expected`);
        if (!isIndex(e.term) || e.term > m.term || e.term < m.prevTerm)
          fail(`entry ${e.index} has term ${String(e.term)} outside [prevTerm ${m.prevTerm}, ${m.term}]`);
        if (e.type !== 'normal' && e.type !== 'conf-change') fail(`entry ${e.index} has unknown type ${JSON.stringify(e.type)}`);
        if (!(e.data instanceof Uint8Array)) fail(`entry ${e.index} data must be bytes`);
        expect++;
      }
      break;
    }
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
    case 'snapshot': {
      const md = m.metadata;
      if (typeof md !== 'object' || md === null || !isIndex(md.index) || !isIndex(md.term)) fail('metadata index/term malformed');
      if (!Array.isArray(md.confState?.voters) || !Array.isArray(md.confState?.learners)) fail('metadata.confState must list voters and learners');
      if (!isIndex(m.offset) || !isIndex(m.totalBytes) || m.offset > m.totalBytes) fail('offset/totalBytes malformed');
      if (!(m.data instanceof Uint8Array) || m.offset + m.data.length > m.totalBytes) fail('chunk data must be bytes within totalBytes');
      if (typeof m.done !== 'boolean') fail('done must be a boolean');
      break;
    }
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
