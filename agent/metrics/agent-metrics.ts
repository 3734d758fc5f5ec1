// The agent's Prometheus metrics: task start phases, image pulls, health checks, overlay DNS and
// overlay peers. They register into a prom-client Registry the daemon gives (one per node, served
// as the node's /metrics), so the agent never depends on the manager's metrics. Each is recorded
// where the work already happens: an increment or one histogram observation per event.
import { performance } from 'node:perf_hooks';
import * as client from 'prom-client';

import { readNodeMemory, type NodeMemory } from '../stats/node-memory.js';

/** The phases of a task start, in order (agent/worker/task-runner.ts). */
export const START_PHASES = ['image', 'rootfs', 'network', 'spawn'] as const;
export type StartPhase = (typeof START_PHASES)[number];

export type PullSource = 'registry' | 'peer';

/** What a health probe came to: exit 0, another exit, its timeout, or it could not be run. */
export type ProbeResultKind = 'healthy' | 'unhealthy' | 'timeout' | 'error';

/** How a DNS query to the overlay resolver was answered. */
export type DnsQueryResult = 'answered' | 'forwarded' | 'servfail' | 'malformed';

export interface TaskStartObserver {
  /** A task's container started; seconds spent in each phase. */
  taskStarted(phases: Readonly<Record<StartPhase, number>>): void;
  /** A task start failed in this phase. */
  taskStartFailed(phase: StartPhase): void;
}

export interface ImagePullObserver {
  /** A blob of this many bytes was downloaded into the store. */
  downloaded(source: PullSource, bytes: number): void;
  /** A pull from a registry or from peers ended. */
  pulled(source: PullSource, ok: boolean, seconds: number): void;
}

/** How a task's container ended (agent/worker/task-runner.ts reports it). */
export const TASK_EXIT_REASONS = ['completed', 'failed', 'oom_killed', 'stopped'] as const;
export type TaskExitReason = (typeof TASK_EXIT_REASONS)[number];

export interface TaskExitObserver {
  taskExited(reason: TaskExitReason): void;
}

export interface HealthProbeObserver {
  probed(result: ProbeResultKind, seconds: number): void;
}

export interface DnsQueryObserver {
  query(transport: 'udp' | 'tcp', result: DnsQueryResult): void;
}

/** Remote overlay endpoints this node has programmed, counted when scraped. */
export interface OverlayPeerCounts {
  /** Distinct other nodes (underlay addresses) on at least one overlay network with this one. */
  nodes: number;
  /** Remote task endpoints (MAC → node entries) over all overlay networks. */
  endpoints: number;
}

const SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface AgentMetricsOptions {
  /** Where /proc is (tests). */
  procRoot?: string;
  log?: (message: string) => void;
}

export class AgentMetrics implements TaskStartObserver, TaskExitObserver, ImagePullObserver, HealthProbeObserver, DnsQueryObserver {
  private readonly startPhaseSeconds: client.Histogram<'phase'>;
  private readonly startSeconds: client.Histogram;
  private readonly startFailures: client.Counter<'phase'>;
  private readonly exits: client.Counter<'reason'>;
  private readonly pullBytes: client.Counter<'source'>;
  private readonly pulls: client.Counter<'source' | 'result'>;
  private readonly pullSeconds: client.Histogram<'source'>;
  private readonly probes: client.Counter<'result'>;
  private readonly probeSeconds: client.Histogram;
  private readonly dnsQueries: client.Counter<'transport' | 'result'>;
  private overlayPeers: (() => OverlayPeerCounts) | undefined;

  constructor(
    readonly registry: client.Registry,
    options: AgentMetricsOptions = {},
  ) {
    const registers = [registry];
    this.startPhaseSeconds = new client.Histogram({
      name: 'tessera_agent_task_start_phase_duration_seconds',
      help: 'Time a task start spent in each phase: image (ensure the image), rootfs (mount it and write the bundle), network (overlay addresses and interfaces), spawn (create and start the container).',
      labelNames: ['phase'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.startSeconds = new client.Histogram({
      name: 'tessera_agent_task_start_duration_seconds',
      help: 'Time from a task being accepted to its container running.',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.startFailures = new client.Counter({
      name: 'tessera_agent_task_start_failures_total',
      help: 'Task starts that failed, by the phase they failed in.',
      labelNames: ['phase'],
      registers,
    });
    this.exits = new client.Counter({
      name: 'tessera_agent_task_exits_total',
      help: "Task containers that ended, by reason: completed (exit 0), failed (another exit or a signal), oom_killed (the kernel's OOM killer), stopped (asked to stop).",
      labelNames: ['reason'],
      registers,
    });
    // Every reason exported from the start: increase() sees the first exit of each.
    for (const reason of TASK_EXIT_REASONS) this.exits.inc({ reason }, 0);
    this.pullBytes = new client.Counter({
      name: 'tessera_agent_image_pull_bytes_total',
      help: 'Bytes of image blobs downloaded, from a registry or from other nodes (peer).',
      labelNames: ['source'],
      registers,
    });
    this.pulls = new client.Counter({
      name: 'tessera_agent_image_pulls_total',
      help: 'Image pulls ended, by source (registry, peer) and result (success, failure).',
      labelNames: ['source', 'result'],
      registers,
    });
    this.pullSeconds = new client.Histogram({
      name: 'tessera_agent_image_pull_duration_seconds',
      help: 'Time an image pull took (successful or not), by source.',
      labelNames: ['source'],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.probes = new client.Counter({
      name: 'tessera_agent_health_checks_total',
      help: 'Container health probes run, by result (healthy, unhealthy, timeout, error).',
      labelNames: ['result'],
      registers,
    });
    this.probeSeconds = new client.Histogram({
      name: 'tessera_agent_health_check_duration_seconds',
      help: 'Time a container health probe took.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.dnsQueries = new client.Counter({
      name: 'tessera_agent_dns_queries_total',
      help: 'DNS queries to the overlay resolver, by transport and how they were answered (answered from service names, forwarded upstream, servfail when no upstream answered, malformed).',
      labelNames: ['transport', 'result'],
      registers,
    });
    registerNodeMemory(registers, options);
    // Read when scraped from the driver's own mirror of what it programmed: nothing to keep in step.
    const peerCounts = (): OverlayPeerCounts | undefined => this.overlayPeers?.();
    new client.Gauge({
      name: 'tessera_agent_overlay_peer_nodes',
      help: 'Other nodes this node shares at least one overlay network with (VXLAN flood entries).',
      registers,
      collect() {
        this.set(peerCounts()?.nodes ?? 0);
      },
    });
    new client.Gauge({
      name: 'tessera_agent_overlay_peer_endpoints',
      help: 'Remote task endpoints programmed into this node’s overlay forwarding tables.',
      registers,
      collect() {
        this.set(peerCounts()?.endpoints ?? 0);
      },
    });
  }

  /** Where the overlay peer gauges read from (the node's overlay driver). */
  watchOverlayPeers(counts: () => OverlayPeerCounts): void {
    this.overlayPeers = counts;
  }

  taskStarted(phases: Readonly<Record<StartPhase, number>>): void {
    let total = 0;
    for (const phase of START_PHASES) {
      this.startPhaseSeconds.observe({ phase }, phases[phase]);
      total += phases[phase];
    }
    this.startSeconds.observe(total);
  }

  taskStartFailed(phase: StartPhase): void {
    this.startFailures.inc({ phase });
  }

  taskExited(reason: TaskExitReason): void {
    this.exits.inc({ reason });
  }

  downloaded(source: PullSource, bytes: number): void {
    this.pullBytes.inc({ source }, bytes);
  }

  pulled(source: PullSource, ok: boolean, seconds: number): void {
    this.pulls.inc({ source, result: ok ? 'success' : 'failure' });
    this.pullSeconds.observe({ source }, seconds);
  }

  probed(result: ProbeResultKind, seconds: number): void {
    this.probes.inc({ result });
    this.probeSeconds.observe(seconds);
  }

  query(transport: 'udp' | 'tcp', result: DnsQueryResult): void {
    this.dnsQueries.inc({ transport, result });
  }
}

/**
 * The node's memory from /proc/meminfo, read when scraped (one small read for both gauges). A
 * failed read leaves the gauges out of that scrape rather than reporting zero free memory.
 */
function registerNodeMemory(registers: client.Registry[], options: AgentMetricsOptions): void {
  let reading: { at: number; memory: Promise<NodeMemory | undefined> } | undefined;
  const read = (): Promise<NodeMemory | undefined> => {
    // Both gauges of one scrape share a reading.
    if (reading && Date.now() - reading.at < 500) return reading.memory;
    const memory = readNodeMemory(options.procRoot).catch((err: unknown) => {
      options.log?.(`metrics: node memory not read: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    });
    reading = { at: Date.now(), memory };
    return memory;
  };
  const gauge = (name: string, help: string, pick: (m: NodeMemory) => number): void => {
    new ReadGauge({ name, help, registers }, async () => {
      const memory = await read();
      return memory ? pick(memory) : undefined;
    });
  };
  gauge('tessera_node_memory_total_bytes', "The node's memory (MemTotal of /proc/meminfo), in bytes.", (m) => m.totalBytes);
  gauge(
    'tessera_node_memory_available_bytes',
    "Memory the node can still give without swapping (the kernel's MemAvailable estimate), in bytes.",
    (m) => m.availableBytes,
  );
}

/**
 * A gauge without labels whose value is read when scraped, and that has no sample at all when the
 * read gives none (prom-client's own always has one, 0 after a reset: a false "no memory left").
 */
class ReadGauge extends client.Gauge {
  constructor(
    options: { name: string; help: string; registers: client.Registry[] },
    private readonly read: () => Promise<number | undefined>,
  ) {
    super(options);
  }

  override async get(): ReturnType<client.Gauge['get']> {
    const base = await super.get();
    const value = await this.read();
    return { ...base, values: value === undefined ? [] : [{ value, labels: {} }] };
  }
}

/**
 * Times a task start phase by phase: `enter(phase)` charges the time since the last call to the
 * phase being left, so work that comes back to a phase (the network before and after the
 * container exists) adds up; `pause()` leaves time uncharged (status reports to the manager).
 */
export class StartPhaseTimer {
  private readonly seconds: Record<StartPhase, number> = { image: 0, rootfs: 0, network: 0, spawn: 0 };
  private current: StartPhase | undefined;
  private since = performance.now();
  private ended = false;

  constructor(private readonly observer: TaskStartObserver | undefined) {}

  /** The phase work is in now; undefined for time charged to none. */
  enter(phase: StartPhase | undefined): void {
    const now = performance.now();
    if (this.current !== undefined) this.seconds[this.current] += (now - this.since) / 1000;
    this.current = phase;
    this.since = now;
  }

  get phase(): StartPhase | undefined {
    return this.current;
  }

  /** The container runs: every phase is recorded. */
  started(): void {
    if (this.ended) return;
    this.ended = true;
    this.enter(undefined);
    this.observer?.taskStarted(this.seconds);
  }

  /** The start failed in the phase it was in (none: it failed between phases, not counted); after started(), nothing. */
  failed(): void {
    if (this.ended) return;
    this.ended = true;
    const phase = this.current;
    this.enter(undefined);
    if (phase !== undefined) this.observer?.taskStartFailed(phase);
  }
}
