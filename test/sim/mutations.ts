// Deliberate bugs patched into the real core, to measure whether the simulation notices them
// (mutation testing). Each returns a function that undoes the patch.
import { RaftLog } from '../../control-plane/raft/core/raft-log.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';

export const MUTATIONS = ['vote-ignores-log', 'read-without-heartbeat', 'commit-old-term'] as const;
export type Mutation = (typeof MUTATIONS)[number];

type ReadInternals = { handleReadIndex: (ctx: string, from: string) => void; releaseRead: (r: unknown) => void; log: RaftLog };

export function applyMutation(m: Mutation): () => void {
  switch (m) {
    case 'vote-ignores-log':
      return patchMethod(RaftLog.prototype, 'isUpToDate', () => true);
    case 'read-without-heartbeat':
      return patchMethod(RaftNode.prototype as unknown as ReadInternals, 'handleReadIndex', function (this: ReadInternals, context: string, from: string) {
        this.releaseRead({ context, index: this.log.committed, from });
      });
    case 'commit-old-term':
      // Raft paper Figure 8: commit by counting replicas regardless of the entry's term.
      return patchMethod(RaftLog.prototype, 'maybeCommit', function (this: RaftLog, maxIndex: number): boolean {
        if (maxIndex <= this.committed) return false;
        this.commitTo(maxIndex);
        return true;
      });
  }
}

/** Replaces a prototype's method; returns the function that puts the original back as it was. */
function patchMethod<T extends object, K extends keyof T>(proto: T, name: K, replacement: T[K]): () => void {
  const original = Object.getOwnPropertyDescriptor(proto, name);
  if (!original) throw new Error(`mutation: no method ${String(name)} to patch`);
  Object.defineProperty(proto, name, { ...original, value: replacement });
  return () => {
    Object.defineProperty(proto, name, original);
  };
}
