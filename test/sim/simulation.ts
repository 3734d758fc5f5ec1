// One seeded run of a Raft cluster under faults, on a virtual clock. Everything random comes from
// the seed, so a failing seed replays exactly (`npm run sim -- --seed N --verbose`).
import { MemoryStorage } from '../../control-plane/raft/core/memory-storage.js';
import { RaftNode } from '../../control-plane/raft/core/raft-node.js';
import { ProposalDroppedError, type Entry, type Message, type NodeId, type Ready } from '../../control-plane/raft/core/types.js';
import { EventQueue } from './event-queue.js';
import { Invariants, SimViolation } from './invariants.js';
import { KvStateMachine, byKey, decodeCommand, encodeCommand } from './kv.js';
import { checkKvHistory, type KvInput, type KvOperation } from './linearizability.js';
import { Prng } from './prng.js';

export interface SimOptions {
  seed: number;
  verbose?: boolean;
  /** Virtual milliseconds of faults, then of healed cluster. */
  chaosMs?: number;
  healMs?: number;
  /** Deliberate bugs, to show the checks catch them: 'send-before-fsync' sends a Ready's
   *  messages before it is durable (a crash then forgets votes/acks it gave), 'forget-vote' loses
   *  the vote on crash, 'stale-read' answers some reads with an empty value. */
  sabotage?: 'none' | 'forget-vote' | 'stale-read' | 'send-before-fsync';
  log?: (line: string) => void;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failure?: string;
  failureAtMs?: number;
  members: number;
  steps: number;
  elections: number;
  commits: number;
  /** Longest stretch without a leader after the faults healed (ms of virtual time). */
  maxElectMs: number;
  ops: number;
  indeterminate: number;
  checkerSteps: number;
  snapshotsSent: number;
  confChanges: number;
}

type Event =
  | { kind: 'tick'; node: NodeId; epoch: number }
  | { kind: 'deliver'; msg: Message }
  | { kind: 'fsync'; node: NodeId; epoch: number; rd: Ready }
  | { kind: 'client'; client: number }
  | { kind: 'op-timeout'; client: number; opId: number }
  | { kind: 'fault' }
  | { kind: 'restart'; node: NodeId }
  | { kind: 'crash'; node: NodeId; epoch: number }
  /** The transport tells `node` its connection to `peer` broke (true after a crash, or spurious). */
  | { kind: 'peer-down'; node: NodeId; epoch: number; peer: NodeId }
  | { kind: 'heal' };

interface PendingOp {
  opId: number;
  client: number;
  op: KvOperation;
  requestId: string;
  done: boolean;
}

interface SimNode {
  id: NodeId;
  up: boolean;
  epoch: number;
  storage: MemoryStorage;
  raft: RaftNode | undefined;
  kv: KvStateMachine;
  applied: number;
  fsyncing: boolean;
  /** The Ready being written, until its fsync completes. */
  writing: Ready | undefined;
  tickMs: number;
  proposals: Map<number, PendingOp>;
  reads: Map<string, PendingOp>;
  readyReads: Array<{ index: number; op: PendingOp }>;
}

interface Client {
  id: number;
  busy: PendingOp | undefined;
  guess: NodeId;
  counter: number;
}

const KEYS = ['a', 'b', 'c', 'd'];
/** After faults heal, a leader must appear within this much virtual time (14 x the 100 ms minimum
 *  election timeout: without pre-vote, a removed member that missed its removal can still disturb
 *  a few elections before a leader's lease protects it; seed 8946 took 1141 ms). */
const LIVENESS_MS = 1400;

export class Simulation {
  private readonly rng: Prng;
  private readonly net: Prng;
  private readonly q = new EventQueue<Event>();
  private now = 0;
  private steps = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly ids: NodeId[] = [];
  private readonly clients: Client[] = [];
  private readonly history: KvOperation[] = [];
  private readonly inv = new Invariants();
  private readonly blocked = new Set<string>();
  private opSeq = 0;
  private healed = false;
  private leaderlessSince: number | undefined;
  private maxElectMs = 0;
  private lastHealedCommit = -1;
  private snapshotsSent = 0;
  private confChanges = 0;

  // per-seed knobs
  private readonly members: number;
  private readonly dropRate: number;
  private readonly dupRate: number;
  private readonly maxDelay: number;
  private readonly snapshotEvery: number;
  private readonly fsyncMaxMs: number;
  private readonly faultGap: readonly [number, number];
  private readonly crashWeight: number;
  /** Leader churn: new leaders often crash within a few ms, mid-replication. */
  private readonly churn: boolean;
  /** Chance that a node crashes while writing a Ready. */
  private readonly crashInWrite: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly chaosMs: number;
  private readonly healMs: number;
  private readonly raftKnobs: { electionTick: number; heartbeatTick: number; maxSizePerMsg: number; maxInflightMsgs: number; snapshotChunkSize: number };

  constructor(private readonly opts: SimOptions) {
    const root = new Prng(opts.seed);
    this.rng = root.fork();
    this.net = root.fork();
    const k = root.fork();
    this.members = k.chance(0.5) ? 3 : 5;
    this.dropRate = k.pick([0, 0.01, 0.05, 0.1]);
    this.dupRate = k.pick([0, 0.02, 0.05]);
    this.maxDelay = k.pick([2, 5, 10, 20]);
    this.snapshotEvery = k.pick([8, 16, 40, 1000]);
    this.fsyncMaxMs = k.pick([1, 3, 10]);
    this.faultGap = k.pick([
      [30, 250],
      [10, 80],
      [100, 600],
    ] as const);
    this.crashWeight = k.pick([0.15, 0.4]);
    this.churn = k.chance(0.25);
    this.crashInWrite = k.pick([0, 0.005, 0.02]);
    this.preVote = k.chance(0.75);
    this.checkQuorum = k.chance(0.75);
    this.chaosMs = opts.chaosMs ?? 1500;
    this.healMs = opts.healMs ?? 1500;
    this.raftKnobs = {
      electionTick: 10,
      heartbeatTick: k.pick([1, 2, 3]),
      maxSizePerMsg: k.pick([1, 200, 4096]),
      maxInflightMsgs: k.pick([1, 4, 256]),
      snapshotChunkSize: k.pick([16, 100, 1 << 20]),
    };
    const voters: NodeId[] = [];
    for (let i = 1; i <= this.members; i++) voters.push(`n${i}`);
    // One or two spares that may join through membership changes.
    const spares = [`n${this.members + 1}`, `n${this.members + 2}`];
    for (const id of [...voters, ...spares]) {
      const isVoter = voters.includes(id);
      const storage = new MemoryStorage(isVoter ? { voters, learners: [] } : { voters: [], learners: [] });
      const node: SimNode = {
        id,
        up: true,
        epoch: 0,
        storage,
        raft: undefined,
        kv: new KvStateMachine(),
        applied: 0,
        fsyncing: false,
        writing: undefined,
        tickMs: k.pick([9, 10, 10, 11]),
        proposals: new Map(),
        reads: new Map(),
        readyReads: [],
      };
      this.nodes.set(id, node);
      this.ids.push(id);
      this.boot(node);
    }
    // More clients, more concurrent operations for the linearizability check.
    const clients = k.pick([3, 6]);
    for (let c = 0; c < clients; c++) this.clients.push({ id: c, busy: undefined, guess: 'n1', counter: 0 });
  }

  private log(line: string): void {
    if (this.opts.verbose) (this.opts.log ?? console.log)(`${String(this.now).padStart(6)}ms ${line}`);
  }

  private boot(node: SimNode): void {
    const snap = node.storage.snapshot();
    node.kv = KvStateMachine.restore(snap.data);
    node.applied = snap.metadata.index;
    node.raft = new RaftNode({
      id: node.id,
      storage: node.storage,
      ...this.raftKnobs,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      applied: node.applied,
      random: () => this.rng.next(),
    });
    node.up = true;
    node.fsyncing = false;
    node.proposals.clear();
    node.reads.clear();
    node.readyReads = [];
    this.q.push(this.now + this.rng.int(1, node.tickMs), { kind: 'tick', node: node.id, epoch: node.epoch });
  }

  private describeSeed(): string {
    return (
      `seed ${this.opts.seed}: ${this.members} voters + 2 spares, drop ${this.dropRate * 100}%, dup ${this.dupRate * 100}%, ` +
      `delay 1..${this.maxDelay} ms, fsync 0..${this.fsyncMaxMs} ms, faults every ${this.faultGap[0]}..${this.faultGap[1]} ms, ` +
      `crash weight ${this.crashWeight}, crash-in-write ${this.crashInWrite}, churn ${this.churn}, snapshot every ${this.snapshotEvery}, ` +
      `preVote ${this.preVote}, checkQuorum ${this.checkQuorum}, ${JSON.stringify(this.raftKnobs)}`
    );
  }

  run(): SimResult {
    this.log(this.describeSeed());
    for (const c of this.clients) this.q.push(this.rng.int(20, 60), { kind: 'client', client: c.id });
    this.q.push(this.rng.int(50, 200), { kind: 'fault' });
    this.q.push(this.chaosMs, { kind: 'heal' });
    const end = this.chaosMs + this.healMs;
    let failure: string | undefined;
    try {
      for (;;) {
        const ev = this.q.pop();
        if (!ev || ev.time > end) break;
        this.now = ev.time;
        this.steps++;
        this.handle(ev.value);
        this.checkEveryStep();
      }
      this.finish();
    } catch (err) {
      if (!(err instanceof SimViolation)) {
        failure = `crash: ${(err as Error).stack ?? String(err)}`;
      } else failure = err.message;
      this.log(`FAILURE: ${failure}`);
    }
    let checkerSteps = 0;
    if (failure === undefined) {
      const r = checkKvHistory(this.history);
      checkerSteps = r.steps;
      if (!r.ok) {
        failure = r.timedOut ? `linearizability check gave up on key ${r.badKey} (search budget exhausted)` : `history is not linearizable (key ${r.badKey})`;
        if (this.opts.verbose) {
          for (const op of this.history.filter((o) => o.input.key === r.badKey)) {
            this.log(`  op client=${op.clientId} ${JSON.stringify(op.input)} -> ${JSON.stringify(op.output)} [${op.call}, ${op.ret}]`);
          }
        }
      }
    }
    const result: SimResult = {
      seed: this.opts.seed,
      ok: failure === undefined,
      members: this.members,
      steps: this.steps,
      elections: this.inv.elections(),
      commits: this.inv.maxApplied(),
      maxElectMs: this.maxElectMs,
      ops: this.history.length,
      indeterminate: this.history.filter((o) => o.ret === Infinity && o.input.kind !== 'get').length,
      checkerSteps,
      snapshotsSent: this.snapshotsSent,
      confChanges: this.confChanges,
    };
    if (failure !== undefined) {
      result.failure = failure;
      result.failureAtMs = this.now;
    }
    return result;
  }

  // ------------------------------------------------------------------ events

  private handle(ev: Event): void {
    switch (ev.kind) {
      case 'tick': {
        const n = this.nodes.get(ev.node) as SimNode;
        if (!n.up || n.epoch !== ev.epoch) return;
        (n.raft as RaftNode).tick();
        this.pump(n);
        this.q.push(this.now + n.tickMs, ev);
        return;
      }
      case 'deliver': {
        const m = ev.msg;
        const n = this.nodes.get(m.to);
        if (!n || !n.up || this.blocked.has(`${m.from}>${m.to}`)) return;
        (n.raft as RaftNode).step(m);
        this.pump(n);
        return;
      }
      case 'fsync': {
        const n = this.nodes.get(ev.node) as SimNode;
        if (!n.up || n.epoch !== ev.epoch) return; // crashed before the write was durable
        this.persistAndApply(n, ev.rd);
        return;
      }
      case 'client':
        this.clientStep(this.clients[ev.client] as Client);
        return;
      case 'op-timeout': {
        const c = this.clients[ev.client] as Client;
        if (c.busy && c.busy.opId === ev.opId && !c.busy.done) {
          // Unknown outcome: a write stays in the history with an open end; a read is dropped.
          c.busy.done = true;
          this.log(`client ${c.id} op ${ev.opId} timed out`);
          c.busy = undefined;
          c.guess = this.rng.pick(this.ids);
          this.q.push(this.now + this.rng.int(1, 10), { kind: 'client', client: c.id });
        }
        return;
      }
      case 'fault':
        if (!this.healed) {
          this.injectFault();
          this.q.push(this.now + this.rng.int(this.faultGap[0], this.faultGap[1]), { kind: 'fault' });
        }
        return;
      case 'crash': {
        const n = this.nodes.get(ev.node) as SimNode;
        if (!n.up || n.epoch !== ev.epoch || this.healed) return;
        this.crash(n);
        this.q.push(this.now + this.rng.int(5, 100), { kind: 'restart', node: n.id });
        return;
      }
      case 'peer-down': {
        const n = this.nodes.get(ev.node) as SimNode;
        if (!n.up || n.epoch !== ev.epoch) return;
        (n.raft as RaftNode).reportPeerDown(ev.peer);
        this.pump(n);
        return;
      }
      case 'restart': {
        const n = this.nodes.get(ev.node) as SimNode;
        if (n.up) return;
        this.log(`restart ${n.id} (durable: last ${n.storage.lastIndex()}, snapshot ${n.storage.snapshot().metadata.index})`);
        this.boot(n);
        return;
      }
      case 'heal':
        this.healed = true;
        this.blocked.clear();
        this.log('heal: partitions removed, crashed nodes restart, no more loss');
        for (const n of this.nodes.values()) if (!n.up) this.q.push(this.now + this.rng.int(0, 50), { kind: 'restart', node: n.id });
        return;
    }
  }

  /** Start writing the next Ready; its messages go out only once it is durable (but for rd.earlyMessages). */
  private pump(n: SimNode): void {
    const raft = n.raft as RaftNode;
    if (n.fsyncing || !raft.hasReady()) return;
    const rd = raft.ready();
    if (rd.softState) {
      this.log(`${n.id} is ${rd.softState.role} (term ${raft.currentTerm}, leader ${rd.softState.leader || '-'})`);
      if (this.churn && !this.healed && rd.softState.role === 'leader' && this.rng.chance(0.5)) {
        this.q.push(this.now + this.rng.int(1, 60), { kind: 'crash', node: n.id, epoch: n.epoch });
      }
    }
    n.fsyncing = true;
    n.writing = rd;
    // Crash while this write is in flight, mostly when it answers a vote or acknowledges entries:
    // the moment where durability before sending matters.
    const answers = rd.messages.some((m) => (m.type === 'vote-resp' && !m.reject) || (m.type === 'append-resp' && !m.reject));
    if (!this.healed && this.rng.chance(answers ? this.crashInWrite : this.crashInWrite / 10)) {
      this.q.push(this.now + this.rng.int(0, this.fsyncMaxMs), { kind: 'crash', node: n.id, epoch: n.epoch });
    }
    if (this.opts.sabotage === 'send-before-fsync') {
      for (const m of rd.messages) this.send(m);
      rd.messages = [];
    } else if (rd.earlyMessages.length > 0) {
      // As the real host does: a leader's appends go out while its own write is in flight (thesis
      // §10.2.1); the core counts the leader's entries toward commit only after advance().
      const early = new Set(rd.earlyMessages);
      for (const m of rd.earlyMessages) this.send(m);
      rd.messages = rd.messages.filter((m) => !early.has(m));
    }
    this.q.push(this.now + this.rng.int(0, this.fsyncMaxMs), { kind: 'fsync', node: n.id, epoch: n.epoch, rd });
  }

  private persistAndApply(n: SimNode, rd: Ready): void {
    const raft = n.raft as RaftNode;
    n.writing = undefined;
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.inv.onPersist(n.id, n.storage, rd.entries);
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot) {
      n.kv = KvStateMachine.restore(rd.snapshot.data);
      n.applied = rd.snapshot.metadata.index;
      this.inv.onSnapshotInstalled(n.id, rd.snapshot.metadata.index, rd.snapshot.metadata.term);
      this.log(`${n.id} installed snapshot at ${n.applied}`);
    }
    for (const e of rd.committedEntries) this.applyEntry(n, raft, e);
    for (const rs of rd.readStates) {
      const op = n.reads.get(rs.context);
      if (op) {
        n.reads.delete(rs.context);
        n.readyReads.push({ index: rs.index, op });
      }
    }
    this.serveReads(n);
    raft.advance(rd);
    n.fsyncing = false;
    this.maybeSnapshot(n, raft);
    this.pump(n);
  }

  private applyEntry(n: SimNode, raft: RaftNode, e: Entry): void {
    if (e.index !== n.applied + 1) throw new SimViolation(`${n.id} applied ${e.index} after ${n.applied} (gap)`);
    this.inv.onApply(n.id, e);
    n.applied = e.index;
    if (this.healed && e.index > this.lastHealedCommit) this.lastHealedCommit = e.index;
    const mine = n.proposals.get(e.index);
    if (mine) n.proposals.delete(e.index);
    if (e.type === 'conf-change') {
      const cs = raft.applyConfChange(e);
      this.log(`${n.id} applied conf change at ${e.index}: voters ${cs.voters.join(',')} learners ${cs.learners.join(',') || '-'}`);
      if (mine) this.failOp(mine);
      return;
    }
    if (e.data.length === 0) {
      if (mine) this.failOp(mine);
      return;
    }
    const cmd = decodeCommand(e.data);
    const out = n.kv.apply(cmd);
    if (mine) {
      if (mine.requestId === cmd.requestId) this.completeOp(mine, out);
      else this.failOp(mine);
    }
  }

  private serveReads(n: SimNode): void {
    const still: SimNode['readyReads'] = [];
    for (const r of n.readyReads) {
      if (r.index > n.applied) {
        still.push(r);
        continue;
      }
      const key = r.op.op.input.key;
      let value = n.kv.get(key);
      if (this.opts.sabotage === 'stale-read' && this.rng.chance(0.3)) value = null;
      this.completeOp(r.op, { kind: 'get', value });
    }
    n.readyReads = still;
  }

  private maybeSnapshot(n: SimNode, raft: RaftNode): void {
    const snapIndex = n.storage.snapshot().metadata.index;
    if (n.applied - snapIndex < this.snapshotEvery) return;
    n.storage.createSnapshot(n.applied, raft.confStateAt(n.applied), n.kv.snapshot());
    // Keep a few entries so slightly lagging followers still catch up from the log.
    const keep = this.rng.int(0, 4);
    if (n.applied - keep > snapIndex) n.storage.compact(n.applied - keep);
  }

  private send(m: Message): void {
    if (this.opts.verbose && (m.type === 'vote-resp' || m.type === 'pre-vote-resp')) {
      this.log(`${m.from} -> ${m.to} ${m.type} term ${m.term} ${m.reject ? 'REJECT' : 'grant'}`);
    }
    if (m.type === 'snapshot' && m.offset === 0) this.snapshotsSent++;
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    if (!this.healed && this.net.chance(this.dropRate)) return;
    const copies = !this.healed && this.net.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) this.q.push(this.now + this.net.int(1, this.maxDelay), { kind: 'deliver', msg: m });
  }

  // ------------------------------------------------------------------ client

  private clientStep(c: Client): void {
    if (c.busy) return;
    const up = this.ids.filter((id) => (this.nodes.get(id) as SimNode).up);
    if (up.length === 0) {
      this.q.push(this.now + 20, { kind: 'client', client: c.id });
      return;
    }
    c.counter++;
    const requestId = `c${c.id}-${c.counter}`;
    const key = this.rng.pick(KEYS);
    const roll = this.rng.next();
    // Reads sometimes go to any member (followers forward; a deposed leader must not answer).
    const target = roll < 0.15 ? undefined : this.nodes.get(c.guess);
    const n = target && target.up ? target : (this.nodes.get(this.rng.pick(up)) as SimNode);
    const raft = n.raft as RaftNode;
    let input: KvInput;
    if (roll < 0.4) input = { kind: 'get', key };
    else if (roll < 0.75) input = { kind: 'put', key, value: requestId };
    else input = { kind: 'cas', key, expected: this.rng.chance(0.5) ? null : (n.kv.get(key) ?? null), value: requestId };
    const op: KvOperation = { clientId: c.id, input, output: undefined, call: this.now, ret: Infinity };
    const pending: PendingOp = { opId: ++this.opSeq, client: c.id, op, requestId, done: false };
    try {
      if (input.kind === 'get') {
        raft.readIndex(requestId);
        n.reads.set(requestId, pending);
      } else {
        const { index } = raft.propose(encodeCommand({ requestId, input }));
        const earlier = n.proposals.get(index);
        // Proposing at an index again means the earlier entry there was truncated.
        if (earlier) this.failOp(earlier);
        n.proposals.set(index, pending);
      }
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      c.guess = raft.leader !== '' && raft.leader !== n.id ? raft.leader : this.rng.pick(this.ids);
      this.q.push(this.now + this.rng.int(2, 15), { kind: 'client', client: c.id });
      return;
    }
    this.pump(n);
    c.guess = n.id;
    c.busy = pending;
    this.history.push(op);
    this.q.push(this.now + 400, { kind: 'op-timeout', client: c.id, opId: pending.opId });
  }

  private completeOp(p: PendingOp, output: KvOperation['output']): void {
    if (p.done) return;
    p.done = true;
    p.op.output = output;
    p.op.ret = this.now;
    this.log(`client ${p.client} ${JSON.stringify(p.op.input)} -> ${JSON.stringify(output)}`);
    this.release(p);
  }

  /** The operation certainly did not take effect: it leaves the history. */
  private failOp(p: PendingOp): void {
    if (p.done) {
      // Timed out earlier and now known to have failed: drop the open-ended write.
      const i = this.history.indexOf(p.op);
      if (i >= 0 && p.op.ret === Infinity) this.history.splice(i, 1);
      return;
    }
    p.done = true;
    const i = this.history.indexOf(p.op);
    if (i >= 0) this.history.splice(i, 1);
    this.release(p);
  }

  private release(p: PendingOp): void {
    const c = this.clients[p.client] as Client;
    if (c.busy === p) {
      c.busy = undefined;
      this.q.push(this.now + this.rng.int(0, 20), { kind: 'client', client: c.id });
    }
  }

  // ------------------------------------------------------------------ faults

  private leaders(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up && n.raft?.currentRole === 'leader');
  }

  private injectFault(): void {
    const up = [...this.nodes.values()].filter((n) => n.up);
    const leader = this.leaders().sort((a, b) => (b.raft as RaftNode).currentTerm - (a.raft as RaftNode).currentTerm)[0];
    const kinds: Array<[number, () => void]> = [
      [0.15, () => this.partitionSymmetric()],
      [0.1, () => this.partitionAsymmetric()],
      [0.08, () => leader && this.isolate(leader)],
      [
        0.12,
        () => {
          this.blocked.clear();
          this.log('network healed');
        },
      ],
      [
        this.crashWeight,
        () => {
          if (up.length === 0) return;
          // Crashing a node that is mid-write is what loses un-synced state; favour it.
          const writing = up.filter((n) => n.fsyncing);
          const victim = writing.length > 0 && this.rng.chance(0.5) ? this.rng.pick(writing) : leader && this.rng.chance(0.5) ? leader : this.rng.pick(up);
          this.crash(victim);
          this.q.push(this.now + this.rng.int(5, 300), { kind: 'restart', node: victim.id });
        },
      ],
      [0.2, () => leader && this.membershipChange(leader)],
      // A connection to a live leader breaks: its followers may be told it is down when it is not.
      [0.08, () => leader && this.reportDown(leader, this.rng.chance(0.5) ? 1 : 0.3)],
      [0.07, () => leader && this.transfer(leader)],
    ];
    const total = kinds.reduce((a, [w]) => a + w, 0);
    let roll = this.rng.next() * total;
    for (const [w, act] of kinds) {
      roll -= w;
      if (roll < 0) {
        act();
        return;
      }
    }
  }

  private partitionSymmetric(): void {
    this.blocked.clear();
    const side = new Set(this.ids.filter(() => this.rng.chance(0.5)));
    for (const a of this.ids) for (const b of this.ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
    this.log(`partition: {${[...side].join(',')}} | rest`);
  }

  private partitionAsymmetric(): void {
    // Some links drop one way only.
    this.blocked.clear();
    for (let i = 0; i < 3; i++) {
      const a = this.rng.pick(this.ids);
      const b = this.rng.pick(this.ids);
      if (a !== b) this.blocked.add(`${a}>${b}`);
    }
    this.log(`asymmetric partition: ${[...this.blocked].join(' ')}`);
  }

  private isolate(leader: SimNode): void {
    this.blocked.clear();
    for (const b of this.ids) {
      if (b === leader.id) continue;
      this.blocked.add(`${leader.id}>${b}`);
      this.blocked.add(`${b}>${leader.id}`);
    }
    this.log(`isolate leader ${leader.id}`);
  }

  private transfer(leader: SimNode): void {
    const raft = leader.raft as RaftNode;
    const to = this.rng.pick(raft.confState().voters);
    try {
      raft.transferLeadership(to);
      this.log(`transfer leadership ${leader.id} -> ${to}`);
      this.pump(leader);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  /** Tells the other members (each with probability p, after 0–5 ms) that `down`'s connections broke. */
  private reportDown(down: SimNode, p: number): void {
    for (const n of this.nodes.values()) {
      if (n === down || !n.up || !this.rng.chance(p)) continue;
      this.q.push(this.now + this.rng.int(0, 5), { kind: 'peer-down', node: n.id, epoch: n.epoch, peer: down.id });
    }
  }

  private crash(n: SimNode): void {
    const rd = n.writing;
    if (rd && this.rng.chance(0.5)) this.tornWrite(n, rd);
    // A killed process's connections close: most peers hear of it at once (not across a partition).
    this.reportDown(n, 0.7);
    this.log(`crash ${n.id} (unsynced writes lost; durable last ${n.storage.lastIndex()})`);
    n.up = false;
    n.epoch++;
    n.raft = undefined;
    n.fsyncing = false;
    n.writing = undefined;
    if (this.opts.sabotage === 'forget-vote') {
      const hs = n.storage.initialState().hardState;
      n.storage.setHardState({ ...hs, vote: '' });
    }
  }

  /**
   * A crash in the middle of a write: a prefix of it reached the disk (in write order: snapshot,
   * entries, hard state), the rest is lost. Nothing of it had been acknowledged to anyone.
   */
  private tornWrite(n: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      if (this.rng.chance(0.5)) return;
      n.storage.applySnapshot(rd.snapshot);
    }
    const k = this.rng.int(0, rd.entries.length);
    n.storage.append(rd.entries.slice(0, k));
    if (k === rd.entries.length && rd.hardState && this.rng.chance(0.5)) n.storage.setHardState(rd.hardState);
    this.log(`${n.id}: torn write kept ${k} of ${rd.entries.length} entries`);
  }

  private membershipChange(leader: SimNode): void {
    const raft = leader.raft as RaftNode;
    const cs = raft.confState();
    const members = new Set([...cs.voters, ...cs.learners]);
    const outsiders = this.ids.filter((id) => !members.has(id));
    const options: Array<() => { type: 'add-voter' | 'add-learner' | 'remove-node'; nodeId: NodeId } | undefined> = [
      () => (outsiders.length > 0 ? { type: 'add-learner', nodeId: this.rng.pick(outsiders) } : undefined),
      () => (cs.learners.length > 0 && cs.voters.length < 5 ? { type: 'add-voter', nodeId: this.rng.pick(cs.learners) } : undefined),
      () => (cs.voters.length > 3 ? { type: 'remove-node', nodeId: this.rng.pick(cs.voters) } : undefined),
      () => (cs.learners.length > 0 ? { type: 'remove-node', nodeId: this.rng.pick(cs.learners) } : undefined),
    ];
    const change = this.rng.pick(options)();
    if (!change) return;
    try {
      const { index } = raft.proposeConfChange(change);
      this.confChanges++;
      this.log(`${leader.id} proposes ${change.type} ${change.nodeId} at ${index}`);
      this.pump(leader);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      this.log(`conf change ${change.type} ${change.nodeId} refused: ${(err as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ checks

  private checkEveryStep(): void {
    let hasLeader = false;
    for (const n of this.nodes.values()) {
      if (!n.up || !n.raft) continue;
      const r = n.raft;
      if (r.currentRole === 'leader') {
        hasLeader = true;
        this.inv.onLeader(n.id, r.currentTerm, r.log);
      }
    }
    if (this.healed) {
      if (hasLeader) {
        if (this.leaderlessSince !== undefined) this.maxElectMs = Math.max(this.maxElectMs, this.now - this.leaderlessSince);
        this.leaderlessSince = undefined;
      } else if (this.leaderlessSince === undefined) this.leaderlessSince = this.now;
    }
  }

  private finish(): void {
    if (this.leaderlessSince !== undefined) this.maxElectMs = Math.max(this.maxElectMs, this.now - this.leaderlessSince);
    // Liveness once the network is healthy: a leader within a bounded time (a few election
    // timeouts), and progress.
    // With neither pre-vote nor check-quorum, a removed member that missed its removal keeps
    // deposing leaders with higher terms (thesis §4.2.3); only safety is checked then.
    if (!this.preVote && !this.checkQuorum) return;
    if (this.maxElectMs > LIVENESS_MS) throw new SimViolation(`liveness: no leader for ${this.maxElectMs} ms after healing`);
    if (this.lastHealedCommit < 0) throw new SimViolation('liveness: nothing was committed after healing');
    // After healing, every member of the final configuration converges to the same applied state.
    const leader = this.leaders()[0];
    if (!leader) return;
    const cs = (leader.raft as RaftNode).confState();
    for (const id of [...cs.voters, ...cs.learners]) {
      const n = this.nodes.get(id) as SimNode;
      if (n.up && n.applied >= this.inv.maxApplied() - 0 && n.applied === leader.applied) {
        const a = JSON.stringify([...n.kv.data.entries()].sort(byKey));
        const b = JSON.stringify([...leader.kv.data.entries()].sort(byKey));
        if (a !== b) throw new SimViolation(`${id} and leader ${leader.id} applied up to ${n.applied} but hold different data`);
      }
    }
  }
}

export function runSeed(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
