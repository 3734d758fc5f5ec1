// Deliberate bugs patched into the real core, to measure whether the simulation notices them
// (mutation testing). Each returns a function that undoes the patch.
import { RaftLog } from '../../control-plane/raft/core/raft-log.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';

export const MUTATIONS = ['vote-ignores-log', 'read-without-heartbeat', 'commit-old-term'] as const;
export type Mutation = (typeof MUTATIONS)[number];

type ReadInternals = { handleReadIndex: (ctx: string, from: string) => void; releaseRead: (r: unknown) => void; log: RaftLog };

export function applyMutation(m: Mutation): () => void {
  switch (m) {
    case 'vote-ignores-log': {
      const orig = RaftLog.prototype.isUpToDate;
      RaftLog.prototype.isUpToDate = () => true;
      return () => {
        RaftLog.prototype.isUpToDate = orig;
      };
    }
    case 'read-without-heartbeat': {
      const proto = RaftNode.prototype as unknown as ReadInternals;
      const orig = proto.handleReadIndex;
      proto.handleReadIndex = function (this: ReadInternals, context: string, from: string) {
        this.releaseRead({ context, index: this.log.committed, from });
      };
      return () => {
        proto.handleReadIndex = orig;
      };
    }
    case 'commit-old-term': {
      // Raft paper Figure 8: commit by counting replicas regardless of the entry's term.
      const orig = RaftLog.prototype.maybeCommit;
      RaftLog.prototype.maybeCommit = function (this: RaftLog, maxIndex: number): boolean {
        if (maxIndex <= this.committed) return false;
        this.commitTo(maxIndex);
        return true;
      };
      return () => {
        RaftLog.prototype.maybeCommit = orig;
      };
    }
  }
}
