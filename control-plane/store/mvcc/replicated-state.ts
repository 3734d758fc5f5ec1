// The state machine the Raft log drives: the MVCC store plus the address of every member (so any
// member can dial any other after a restart). Its snapshot is both, in one byte string:
// 4-byte big-endian length of the members JSON, the members JSON, then the MVCC state.
import type { Entry } from '../../raft/core/index.js';
import { decodeCommand, errorResult, type CommandResult } from './commands.js';
import { MvccState, type LogEntry } from './mvcc-state.js';

export class ReplicatedState {
  mvcc = new MvccState();
  members = new Map<string, string>();
  /** Told how long each compaction took to apply (metrics); must be cheap and must not throw. */
  onCompaction: ((seconds: number) => void) | undefined;

  constructor(
    /** Called with the events of every applied write (watch delivery). */
    private readonly onWrite: (entry: LogEntry) => void,
    /** Called after a snapshot replaced the whole state. */
    private readonly onRestore: () => void,
  ) {}

  apply(entry: Entry): CommandResult {
    let command;
    try {
      command = decodeCommand(entry.data);
    } catch (err) {
      // Every member refuses the same malformed entry the same way, so they stay identical.
      return errorResult(err);
    }
    try {
      switch (command.op) {
        case 'txn': {
          const { response, entry: written } = this.mvcc.txn(command.txn);
          if (written) this.onWrite(written);
          return { ok: 'txn', response };
        }
        case 'compact': {
          const started = performance.now();
          this.mvcc.compact(command.revision);
          this.onCompaction?.((performance.now() - started) / 1000);
          return { ok: 'done' };
        }
        case 'member':
          this.members.set(command.id, command.address);
          return { ok: 'done' };
      }
    } catch (err) {
      return errorResult(err);
    }
  }

  snapshot(): Uint8Array {
    return this.frame(this.mvcc.serialize());
  }

  /** snapshot() written in slices between other work (see MvccState.serializeInSlices). */
  async snapshotInBackground(): Promise<Uint8Array> {
    const members = this.membersJson();
    const mvcc = await this.mvcc.serializeInSlices(() => new Promise((resolve) => setImmediate(resolve)));
    return this.frame(mvcc, members);
  }

  private membersJson(): Buffer {
    return Buffer.from(JSON.stringify(Object.fromEntries(this.members)));
  }

  private frame(mvcc: Uint8Array, members = this.membersJson()): Uint8Array {
    const out = Buffer.alloc(4 + members.length + mvcc.length);
    out.writeUInt32BE(members.length, 0);
    members.copy(out, 4);
    out.set(mvcc, 4 + members.length);
    return out;
  }

  restore(data: Uint8Array): void {
    if (data.length === 0) {
      this.mvcc = new MvccState();
      this.members = new Map();
    } else {
      const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (buf.length < 4) throw new Error('raft store snapshot: shorter than its header');
      const len = buf.readUInt32BE(0);
      if (4 + len > buf.length) throw new Error(`raft store snapshot: members section of ${len} bytes overruns the snapshot`);
      const parsed = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as Record<string, string>;
      this.members = new Map(Object.entries(parsed));
      this.mvcc = MvccState.deserialize(buf.subarray(4 + len));
    }
    this.onRestore();
  }
}

/** The snapshot a founding member starts from: the group's members and an empty store. */
export function bootstrapSnapshotData(members: Array<{ id: string; address: string }>): Uint8Array {
  const s = new ReplicatedState(
    () => {},
    () => {},
  );
  for (const m of members) s.members.set(m.id, m.address);
  return s.snapshot();
}
