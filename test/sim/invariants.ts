// Raft's safety properties (Raft paper, Figure 3), checked as the simulation runs.
import type { MemoryStorage } from '../../control-plane/raft/core/memory-storage.js';
import type { RaftLog } from '../../control-plane/raft/core/raft-log.js';
import type { Entry, NodeId } from '../../control-plane/raft/core/types.js';

export class SimViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimViolation';
  }
}

const dec = new TextDecoder();

function describe(e: Entry): string {
  return `${e.type}:${dec.decode(e.data)}`;
}

export class Invariants {
  /** Election safety: at most one leader per term. */
  private readonly leaderOf = new Map<number, NodeId>();
  /** Log matching: (index, term) fixes the entry's content and the term before it. */
  private readonly entryAt = new Map<string, { content: string; prevTerm: number }>();
  /** State machine safety: what was applied at each index, anywhere. */
  private readonly applied = new Map<number, { term: number; content: string; by: NodeId; committedBy: number }>();
  private maxLeaderTerm = 0;
  private maxAppliedIndex = 0;
  private lastCheckedLeader = new Map<NodeId, string>();

  elections(): number {
    return this.leaderOf.size;
  }

  maxApplied(): number {
    return this.maxAppliedIndex;
  }

  onLeader(id: NodeId, term: number, log: RaftLog): void {
    const other = this.leaderOf.get(term);
    if (other !== undefined && other !== id) {
      throw new SimViolation(`election safety: ${other} and ${id} are both leader in term ${term}`);
    }
    this.leaderOf.set(term, id);
    if (term > this.maxLeaderTerm) this.maxLeaderTerm = term;
    // Leader completeness: the newest entry applied anywhere is in every later leader's log (log
    // matching then covers everything before it). Checked once per (leader, applied index).
    const key = `${term}:${this.maxAppliedIndex}`;
    if (this.lastCheckedLeader.get(id) === key) return;
    this.lastCheckedLeader.set(id, key);
    // Only leaders of terms after the commit must hold an entry; a deposed leader that has not
    // heard of the new term yet may still think it leads. committedBy grows with the index, so
    // find the newest entry committed before this term.
    let lo = 0;
    let hi = this.maxAppliedIndex;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.applied.get(mid)?.committedBy ?? 0) < term) lo = mid;
      else hi = mid - 1;
    }
    const i = lo;
    const top = this.applied.get(i);
    if (!top) return;
    if (i < log.firstIndex() - 1) return; // covered by its snapshot, which holds only committed state
    const t = log.term(i);
    if (t !== top.term) {
      throw new SimViolation(
        `leader completeness: leader ${id} of term ${term} has term ${t ?? 'none'} at ${i}, where ${top.by} applied an entry of term ${top.term}`,
      );
    }
  }

  /** Called after a node made entries durable; storage holds them now. */
  onPersist(id: NodeId, storage: MemoryStorage, entries: Entry[]): void {
    for (const e of entries) {
      if (e.index < storage.firstIndex()) continue;
      const prevTerm = e.index - 1 >= storage.firstIndex() - 1 ? storage.term(e.index - 1) : -1;
      const k = `${e.index}:${e.term}`;
      const content = describe(e);
      const seen = this.entryAt.get(k);
      if (!seen) {
        this.entryAt.set(k, { content, prevTerm });
        continue;
      }
      if (seen.content !== content) throw new SimViolation(`log matching: ${id} holds a different entry at index ${e.index} term ${e.term}`);
      if (prevTerm !== -1 && seen.prevTerm !== -1 && seen.prevTerm !== prevTerm) {
        throw new SimViolation(`log matching: ${id} has term ${prevTerm} before (${e.index}, ${e.term}); another log has ${seen.prevTerm}`);
      }
    }
  }

  onApply(id: NodeId, e: Entry): void {
    const content = describe(e);
    const seen = this.applied.get(e.index);
    if (!seen) {
      // Whoever committed it led a term no later than the newest leader seen so far.
      this.applied.set(e.index, { term: e.term, content, by: id, committedBy: this.maxLeaderTerm });
      if (e.index > this.maxAppliedIndex) this.maxAppliedIndex = e.index;
      return;
    }
    if (seen.term !== e.term || seen.content !== content) {
      throw new SimViolation(`state machine safety: ${id} applied (${e.index}, term ${e.term}) but ${seen.by} applied term ${seen.term} there`);
    }
  }

  onSnapshotInstalled(id: NodeId, index: number, term: number): void {
    const seen = this.applied.get(index);
    if (seen && seen.term !== term) {
      throw new SimViolation(`state machine safety: ${id} installed a snapshot at ${index} term ${term}; ${seen.by} applied term ${seen.term} there`);
    }
  }
}
