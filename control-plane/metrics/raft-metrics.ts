// The store's Prometheus metrics under etcd's names with our prefix (etcd_… → tessera_…), so that
// etcd dashboards and alerts carry over; the mapping is in docs/prometheus.md. Two deviations, both
// because `promtool check metrics` refuses etcd's own form: a value that only grows and that etcd
// publishes as a gauge named *_total is a counter here, one that goes down loses the "_total"; and
// milliseconds become seconds.
//
// Nothing here runs on the write path. Levels (leader, term, indexes, keys) are read from the Raft
// host and the MVCC state when Prometheus scrapes; counts the host keeps as plain numbers are
// turned into counters then too. Durations are observed by hooks the storage, host and state
// machine call (a histogram observe: no allocation); the WAL's fsync is timed on its own thread.
// The peer round-trip time comes from a probe: a Status call to each other member every few
// seconds, on the same (mutually authenticated) channel Raft uses.
import { performance } from 'node:perf_hooks';
import * as client from 'prom-client';

import type { PeerTraffic } from '../raft/transport/peer-traffic.js';
import { MemoryStore } from '../store/memory-store.js';
import type { MvccStats } from '../store/mvcc/mvcc-state.js';
import { RaftStore } from '../store/raft-store.js';
import type { Store } from '../store/store.js';

/** prom-client's exponential buckets as etcd declares them (start · 2^n). */
const doubling = (start: number, count: number): number[] => client.exponentialBuckets(start, 2, count);

export interface StoreMetrics {
  stop(): void;
}

export interface RaftMetricsOptions {
  /** How often every other member is probed for the round-trip time. Default 5 s; 0: never. */
  probeEveryMs?: number;
  probeTimeoutMs?: number;
}

/**
 * The metrics of whichever store this manager runs on. `--store etcd` registers none: the
 * consensus and the database are etcd's, and etcd's own /metrics has the originals.
 */
export function registerStoreMetrics(registry: client.Registry, store: Store, options: RaftMetricsOptions = {}): StoreMetrics {
  if (store instanceof RaftStore) return registerRaftMetrics(registry, store, options);
  if (store instanceof MemoryStore) return registerMemoryStoreMetrics(registry, store);
  return { stop: () => {} };
}

/** A gauge read when scraped. */
function levelGauge(registry: client.Registry, name: string, help: string, read: () => number): void {
  new client.Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** A counter that follows a number that only grows (an index, a count kept elsewhere), read when scraped. */
function followingCounter(registry: client.Registry, name: string, help: string, read: () => number): void {
  let seen = 0;
  new client.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = Math.max(seen, now);
    },
  });
}

/**
 * A counter per peer that follows one of the host's per-peer counts, read when scraped. Peers that
 * are no longer members are forgotten, by the host's counts and the metric alike.
 */
function followingPeerCounter(
  registry: client.Registry,
  name: string,
  help: string,
  label: 'To' | 'From',
  counts: () => ReadonlyMap<string, number>,
  members: () => ReadonlySet<string>,
): void {
  const seen = new Map<string, number>();
  new client.Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      const now = counts();
      const current = members();
      for (const peer of seen.keys()) {
        if (now.has(peer) && current.has(peer)) continue;
        this.remove({ [label]: peer });
        seen.delete(peer);
      }
      for (const [peer, n] of now) {
        if (!current.has(peer)) continue;
        const was = seen.get(peer) ?? 0;
        if (n > was) this.inc({ [label]: peer }, n - was);
        seen.set(peer, Math.max(was, n));
      }
    },
  });
}

/** etcd's peer traffic counters, from the transport's counts (control-plane/raft/transport/peer-traffic.ts). */
function registerPeerTrafficMetrics(registry: client.Registry, traffic: PeerTraffic, peers: () => ReadonlySet<string>): void {
  // The members other than this one; counts of any other id are dropped before the counters read them.
  const members = (): ReadonlySet<string> => {
    const current = peers();
    traffic.retain(current);
    return current;
  };
  followingPeerCounter(
    registry,
    'tessera_network_peer_sent_bytes_total',
    'Bytes of Raft batches sent to another member (label To: its id): serialized messages, without gRPC, HTTP/2 or TLS framing.',
    'To',
    () => traffic.sentBytes,
    members,
  );
  followingPeerCounter(
    registry,
    'tessera_network_peer_received_bytes_total',
    'Bytes of Raft batches received from another member (label From: its id): serialized messages, without gRPC, HTTP/2 or TLS framing.',
    'From',
    () => traffic.receivedBytes,
    members,
  );
  followingPeerCounter(
    registry,
    'tessera_network_peer_sent_failures_total',
    'Failed sends to another member (label To: its id): a stream that broke with an error, or a message dropped because the queue to it was full.',
    'To',
    () => traffic.sendFailures,
    members,
  );
}

/** The MVCC state's sizes and revisions, and its compaction time (both backends that keep their own data). */
function registerMvccMetrics(registry: client.Registry, stats: () => MvccStats): client.Histogram {
  const read = (pick: (s: MvccStats) => number) => (): number => pick(stats());
  levelGauge(
    registry,
    'tessera_debugging_mvcc_keys',
    'Keys in the store now (etcd: etcd_debugging_mvcc_keys_total, a gauge).',
    read((s) => s.keys),
  );
  levelGauge(
    registry,
    'tessera_mvcc_db_total_size_in_bytes',
    'Size of the store: keys and values of every version held, in characters (about bytes; the store is in memory).',
    read((s) => s.sizeHeld),
  );
  levelGauge(
    registry,
    'tessera_debugging_mvcc_current_revision',
    'The current revision of the store.',
    read((s) => s.revision),
  );
  levelGauge(
    registry,
    'tessera_debugging_mvcc_compact_revision',
    'The revision of the last compaction of the store.',
    read((s) => s.compactRevision),
  );
  return new client.Histogram({
    name: 'tessera_debugging_mvcc_db_compaction_total_duration_seconds',
    help: 'Time to apply one compaction of the store (etcd: ..._milliseconds).',
    buckets: doubling(0.001, 14),
    registers: [registry],
  });
}

export function registerMemoryStoreMetrics(registry: client.Registry, store: MemoryStore): StoreMetrics {
  // One manager holding all state: it always has a leader, itself.
  levelGauge(registry, 'tessera_server_has_leader', 'Whether a leader exists: 1 with the memory store (a single manager).', () => 1);
  levelGauge(registry, 'tessera_server_is_leader', 'Whether this member is the leader: 1 with the memory store.', () => 1);
  const compaction = registerMvccMetrics(registry, () => store.mvccStats());
  store.onCompaction = (seconds) => compaction.observe(seconds);
  return { stop: () => (store.onCompaction = undefined) };
}

export function registerRaftMetrics(registry: client.Registry, store: RaftStore, options: RaftMetricsOptions = {}): StoreMetrics {
  const host = store.host;
  levelGauge(registry, 'tessera_server_has_leader', 'Whether a leader exists: 1 if this member knows one, 0 if not.', () => (host.leader() ? 1 : 0));
  levelGauge(registry, 'tessera_server_is_leader', 'Whether this member is the leader: 1 if it is, 0 if not.', () => (host.isLeader() ? 1 : 0));
  levelGauge(registry, 'tessera_server_is_learner', 'Whether this member is a learner (not yet voting): 1 if it is, 0 if not.', () =>
    host.node.confState().learners.includes(host.id) ? 1 : 0,
  );
  levelGauge(registry, 'tessera_server_term', 'The Raft term this member is in.', () => host.node.currentTerm);
  followingCounter(registry, 'tessera_server_leader_changes_seen_total', 'Leader changes this member has seen.', () => host.counters.leaderChanges);
  followingCounter(
    registry,
    'tessera_server_proposals_committed_total',
    'Raft log entries committed: the commit index (etcd: a gauge).',
    () => host.node.committedIndex,
  );
  followingCounter(registry, 'tessera_server_proposals_applied_total', 'Raft log entries applied: the applied index (etcd: a gauge).', () => host.appliedIndex);
  levelGauge(registry, 'tessera_server_proposals_pending', 'Writes proposed or forwarded by this member, not yet applied.', () => host.pendingProposals);
  followingCounter(
    registry,
    'tessera_server_proposals_failed_total',
    'Writes proposed or forwarded by this member that failed (timed out, dropped, replaced or lost in a leader change).',
    () => host.counters.proposalsFailed,
  );
  followingCounter(registry, 'tessera_disk_wal_write_bytes_total', 'Bytes written to the WAL (etcd: a gauge).', () => store.walStats().bytes);

  const walFsync = new client.Histogram({
    name: 'tessera_disk_wal_fsync_duration_seconds',
    help: 'Time of the fdatasync of one WAL batch (measured on the thread that makes it).',
    buckets: doubling(0.001, 14),
    registers: [registry],
  });
  const walWrite = new client.Histogram({
    name: 'tessera_disk_wal_write_duration_seconds',
    help: 'Time to encode (and seal) one WAL batch and write it into the page cache, before its fsync.',
    buckets: doubling(0.001, 14),
    registers: [registry],
  });
  const snapSave = new client.Histogram({
    name: 'tessera_debugging_snap_save_total_duration_seconds',
    help: 'Time to seal, write and fsync one snapshot file (own snapshots and those received from the leader).',
    buckets: doubling(0.001, 14),
    registers: [registry],
  });
  const snapSize = new client.Gauge({
    name: 'tessera_snapshot_size_bytes',
    help: 'Size of the last snapshot file written (sealed).',
    registers: [registry],
  });
  const stateSnapshot = new client.Histogram({
    name: 'tessera_disk_backend_snapshot_duration_seconds',
    help: "Time to serialize the store's state for a Raft snapshot (made beside other work, in slices).",
    buckets: doubling(0.01, 17),
    registers: [registry],
  });
  const compaction = registerMvccMetrics(registry, () => store.mvccStats());
  store.observe({
    walBatch: (_bytes, writeSeconds, fsyncSeconds) => {
      walWrite.observe(writeSeconds);
      walFsync.observe(fsyncSeconds);
    },
    snapshotSaved: (seconds, bytes) => {
      snapSave.observe(seconds);
      snapSize.set(bytes);
    },
    stateSnapshotMade: (seconds) => stateSnapshot.observe(seconds),
    compaction: (seconds) => compaction.observe(seconds),
  });

  const peers = (): ReadonlySet<string> => {
    const cs = host.node.confState();
    return new Set([...cs.voters, ...cs.learners].filter((id) => id !== host.id));
  };
  new client.Gauge({
    name: 'tessera_network_active_peers',
    help: 'Whether the Raft channel to another member is connected: 1 or 0 (label Remote: its id; Local: this member).',
    labelNames: ['Local', 'Remote'],
    registers: [registry],
    collect() {
      // Members this one has sent to (so has a channel to); one that left loses its series.
      this.reset();
      const members = peers();
      for (const peer of host.peerConnections()) if (members.has(peer.id)) this.set({ Local: host.id, Remote: peer.id }, peer.connected ? 1 : 0);
    },
  });
  registerPeerTrafficMetrics(registry, host.traffic, peers);

  const prober = new PeerProber(store, registry, options);
  return { stop: () => prober.stop() };
}

/**
 * Measures the round-trip time to every other member with a Status call (answered from memory),
 * as etcd's prober does over HTTP. A probe that fails or times out records nothing; a member that
 * left the group loses its series.
 */
class PeerProber {
  private readonly rtt: client.Histogram<'To'>;
  private readonly timer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly probed = new Set<string>();
  private readonly timeoutMs: number;

  constructor(
    private readonly store: RaftStore,
    registry: client.Registry,
    options: RaftMetricsOptions,
  ) {
    this.rtt = new client.Histogram({
      name: 'tessera_network_peer_round_trip_time_seconds',
      help: 'Round-trip time of a Status call to another member (label To: its id), probed every few seconds.',
      labelNames: ['To'],
      buckets: doubling(0.0001, 14),
      registers: [registry],
    });
    this.timeoutMs = options.probeTimeoutMs ?? 2000;
    const every = options.probeEveryMs ?? 5000;
    if (every > 0) {
      this.timer = setInterval(() => void this.probeAll(), every);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One round: every other member once, in parallel; skipped while the previous round runs. */
  async probeAll(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const host = this.store.host;
      const cs = host.node.confState();
      const peers = [...cs.voters, ...cs.learners].filter((id) => id !== host.id);
      for (const id of this.probed) {
        if (peers.includes(id)) continue;
        this.rtt.remove({ To: id });
        this.probed.delete(id);
      }
      await Promise.all(peers.map((id) => this.probe(id)));
    } finally {
      this.probing = false;
    }
  }

  private async probe(id: string): Promise<void> {
    const host = this.store.host;
    const address = host.addressOf(id);
    if (!address) return;
    const started = performance.now();
    try {
      await host.peerClient(address).status(this.timeoutMs);
    } catch {
      // Deliberately not recorded: an unreachable member has no round-trip time, and Raft reports
      // it already (has_leader, leader changes); a timeout as a sample would bend the histogram.
      return;
    }
    this.rtt.observe({ To: id }, (performance.now() - started) / 1000);
    this.probed.add(id);
  }
}
