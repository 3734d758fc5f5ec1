// A synchronous, in-process cluster for focused Raft unit tests: messages are delivered in order
// until the cluster is quiet, unless a test drops or intercepts them.
import { MemoryStorage } from '../../control-plane/raft/core/memory-storage.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';
import type { ConfState, Entry, Message, NodeId, RaftConfig, ReadState } from '../../control-plane/raft/core/types.js';
import { Prng } from './prng.js';

export interface TestNode {
  id: NodeId;
  raft: RaftNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
  up: boolean;
}

export type Knobs = Partial<Omit<RaftConfig, 'id' | 'storage' | 'random' | 'applied'>>;

export class SyncNetwork {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Every message that was sent (delivered or not), for assertions. */
  readonly sent: Message[] = [];
  private readonly queue: Message[] = [];
  private readonly blocked = new Set<string>();
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true;
  private readonly rng: Prng;

  constructor(
    voters: NodeId[],
    readonly knobs: Knobs = {},
    seed = 1,
  ) {
    this.rng = new Prng(seed);
    for (const id of voters) this.add(id, new MemoryStorage({ voters, learners: [] }));
  }

  config(id: NodeId, storage: MemoryStorage): RaftConfig {
    return {
      id,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsg: 1 << 20,
      maxInflightMsgs: 256,
      snapshotChunkSize: 1 << 20,
      applied: storage.snapshot().metadata.index,
      random: () => this.rng.next(),
      ...this.knobs,
    };
  }

  add(id: NodeId, storage: MemoryStorage): TestNode {
    const n: TestNode = { id, raft: new RaftNode(this.config(id, storage)), storage, applied: [], readStates: [], up: true };
    this.nodes.set(id, n);
    return n;
  }

  /** A member that will be added by a configuration change: empty storage. */
  addJoiner(id: NodeId): TestNode {
    return this.add(id, new MemoryStorage({ voters: [], learners: [] }));
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId): RaftNode {
    return this.node(id).raft;
  }

  cut(a: NodeId, b: NodeId): void {
    this.blocked.add(`${a}>${b}`);
    this.blocked.add(`${b}>${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    this.blocked.clear();
  }

  crash(id: NodeId): void {
    this.node(id).up = false;
  }

  /** Restart from durable storage (everything the node persisted). */
  restart(id: NodeId): void {
    const n = this.node(id);
    n.raft = new RaftNode(this.config(id, n.storage));
    n.up = true;
  }

  /** Processes Readies and delivers messages until nothing moves. */
  drain(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const n of this.nodes.values()) {
        if (!n.up || !n.raft.hasReady()) continue;
        moved = true;
        const rd = n.raft.ready();
        if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        for (const m of rd.messages) {
          this.sent.push(m);
          if (this.blocked.has(`${m.from}>${m.to}`) || !this.filter(m)) continue;
          this.queue.push(m);
        }
        n.applied.push(...rd.committedEntries);
        n.readStates.push(...rd.readStates);
        n.raft.advance(rd);
      }
      const batch = this.queue.splice(0);
      for (const m of batch) {
        const to = this.nodes.get(m.to);
        if (!to || !to.up) continue;
        moved = true;
        to.raft.step(m);
      }
      if (!moved) return;
    }
    throw new Error('sync network: cluster did not quiesce');
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).raft.tick();
      this.drain();
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) if (n.up) n.raft.tick();
      this.drain();
    }
  }

  elect(id: NodeId): void {
    this.raft(id).campaignNow();
    this.drain();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.up && n.raft.currentRole === 'leader').map((n) => n.id);
  }

  /** Application data applied by a node (no-ops and conf changes left out). */
  data(id: NodeId): string[] {
    const dec = new TextDecoder();
    return this.node(id)
      .applied.filter((e) => e.type === 'normal' && e.data.length > 0)
      .map((e) => dec.decode(e.data));
  }

  /** Compacts a node's log: snapshot at its last applied index with `data`. */
  compact(id: NodeId, data: Uint8Array, keep = 0): void {
    const n = this.node(id);
    const applied = n.raft.log.applied;
    n.storage.createSnapshot(applied, n.raft.confStateAt(applied), data);
    n.storage.compact(applied - keep);
  }
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

export function confOf(n: TestNode): ConfState {
  return n.raft.confState();
}
