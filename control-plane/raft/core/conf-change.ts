// Membership changes, one server at a time (Raft thesis §4.1, with the fix from Ongaro's 2015
// raft-dev post): a member uses the LATEST configuration in its log, committed or not; a leader
// proposes a change only after an entry of its own term is committed and when no earlier change is
// still uncommitted. Any two consecutive configurations then have overlapping majorities.
import type { ConfChange, ConfState, NodeId } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(change: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ type: change.type, nodeId: change.nodeId }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw new Error(`conf-change entry: data is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error('conf-change entry: data is not an object');
  const rec = parsed as Record<string, unknown>;
  const type = rec['type'];
  const nodeId = rec['nodeId'];
  if (type !== 'add-voter' && type !== 'add-learner' && type !== 'remove-node') {
    throw new Error(`conf-change entry: type must be add-voter, add-learner or remove-node, got ${JSON.stringify(type)}`);
  }
  if (typeof nodeId !== 'string' || nodeId === '') throw new Error('conf-change entry: nodeId must be a non-empty string');
  return { type, nodeId };
}

export function cloneConfState(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}

/** The configuration after applying `change` to `cs` (a pure function; sorted member lists). */
export function applyChange(cs: ConfState, change: ConfChange): ConfState {
  const voters = new Set<NodeId>(cs.voters);
  const learners = new Set<NodeId>(cs.learners);
  switch (change.type) {
    case 'add-voter':
      learners.delete(change.nodeId);
      voters.add(change.nodeId);
      break;
    case 'add-learner':
      // Demoting a voter to learner is a valid single-server change too.
      voters.delete(change.nodeId);
      learners.add(change.nodeId);
      break;
    case 'remove-node':
      voters.delete(change.nodeId);
      learners.delete(change.nodeId);
      break;
  }
  return { voters: [...voters].sort(), learners: [...learners].sort() };
}

export function confStatesEqual(a: ConfState, b: ConfState): boolean {
  const sa = [...a.voters].sort().join(',') + '|' + [...a.learners].sort().join(',');
  const sb = [...b.voters].sort().join(',') + '|' + [...b.learners].sort().join(',');
  return sa === sb;
}
