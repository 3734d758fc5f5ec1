import { RaftLog } from '../../control-plane/raft/core/raft-log.js';
import { runSeed } from './simulation.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';
const which = process.argv[2];
if (which === 'fig8') {
  RaftLog.prototype.maybeCommit = function (this: RaftLog, maxIndex: number, _term: number): boolean {
    if (maxIndex > this.committed) { this.commitTo(maxIndex); return true; }
    return false;
  };
}
if (which === 'vote') {
  RaftLog.prototype.isUpToDate = function (): boolean { return true; };
}
if (which === 'read') {
  const proto = RaftNode.prototype as unknown as { handleReadIndex: (ctx: string, from: string) => void; releaseRead: (r: unknown) => void; log: RaftLog };
  proto.handleReadIndex = function (this: typeof proto, context: string, from: string) {
    this.releaseRead({ context, index: this.log.committed, from });
  };
}
const from = Number(process.argv[3] ?? 1), n = Number(process.argv[4] ?? 500);
let fails = 0; const first: string[] = [];
for (let s = from; s < from + n; s++) { const r = runSeed({ seed: s }); if (!r.ok) { fails++; if (first.length < 3) first.push(`${s}: ${r.failure?.slice(0, 120)}`); } }
console.log(which, fails, first);
