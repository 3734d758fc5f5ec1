// `npm run bench:scale`: the control plane at scale, kubemark-style. Three real tsd managers
// (separate processes from dist/, each in its own network namespace, drained so they take no tasks;
// heartbeat and node-down settings at tsd's defaults) and N hollow nodes (test/scale/: each joins
// with a worker token and holds its own certificate, runs the real agent session over mutual TLS —
// register, heartbeats, assignments, batched status reports — and simulates only its containers:
// a start latency and a failure rate). Needs root (network namespaces) and `npm run build`.
//
// What is timed:
// - placements/s: S×R tasks from the first Apply request until the last of them was seen assigned
//   at its hollow node (Apply, service controller, scheduler, Raft, dispatcher: all of it);
// - apply → all running: until the last hollow node started the last simulated container;
// - RSS (sampled every second during the rollout, and the kernel's peak VmHWM) and CPU (utime +
//   stime from /proc during the rollout, as % of one core) of the leader and the followers;
// - API latency: a loop of ClusterInfo calls (a linearizable read) on the leader's root socket,
//   one at a time, for the whole rollout;
// - reschedule after 10 % of the nodes go silent (their process SIGSTOPped: sockets open, nothing
//   sent) and, separately, after another 10 % are cut (their process SIGKILLed: sockets closed):
//   from then until every slot runs again on the remaining nodes;
// - leader kill -9 in the middle of a rollout of S/10 more services: from the kill until every slot
//   of every service runs exactly once; and, from the hollow nodes' own record of every run, how
//   many slots ever ran twice at once on the live nodes (must be 0) and how many are missing.
// The goals are printed beside the figures; none of them is a pass/fail gate.
//
// Flags: --nodes N (1000) --services S (1000) --replicas R (100) --start-latency-ms (100)
// --failure-rate (0) --fleet-size (nodes per hollow process, 500) --timeout-s (1800)
// --profile DIR (managers run with --cpu-prof into DIR; only the rollout is measured, then the
// managers stop so the profiles are written, and the leader's top entries are printed).
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import { copyLogs } from '../helpers/cluster-logs.js';
import type { LabNode } from '../helpers/managers-lab.js';
import type { FleetProcess } from '../scale/fleet-process.js';
import { HollowView } from '../scale/hollow-view.js';
import { wallClockMs } from '../scale/hollow-worker.js';
import { applyServices, hollowServices, startScaleCluster, type ScaleCluster } from '../scale/scale-cluster.js';
import { profileReport } from './cpuprofile-top.js';
import { percentile } from './stats.js';

const { values: flags } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    services: { type: 'string', default: '1000' },
    replicas: { type: 'string', default: '100' },
    'start-latency-ms': { type: 'string', default: '100' },
    'failure-rate': { type: 'string', default: '0' },
    'fleet-size': { type: 'string', default: '500' },
    'timeout-s': { type: 'string', default: '1800' },
    profile: { type: 'string' },
  },
});
const NODES = Number(flags.nodes);
const SERVICES = Number(flags.services);
const REPLICAS = Number(flags.replicas);
const TOTAL = SERVICES * REPLICAS;
const TIMEOUT_MS = Number(flags['timeout-s']) * 1000;
const PROFILE_DIR = flags.profile ? resolve(flags.profile) : undefined;
const SIM = { startLatencyMs: Number(flags['start-latency-ms']), jitter: 0.5, failureRate: Number(flags['failure-rate']), seed: 19 };
const CLK_TCK = 100;

const log = (message: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} ${message}\n`);

// ----------------------------------------------------------------- /proc

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function memoryKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

interface ProcessFigures {
  name: string;
  peakRssMiB: number;
  hwmMiB: number;
  cpuPercent: number;
}

/** Samples the managers' RSS every second and their CPU over the whole span; `stop` gives the figures. */
function watchManagers(managers: LabNode[]): { stop(): Promise<ProcessFigures[]> } {
  const startedAt = performance.now();
  const peak = new Map<string, number>();
  const ticksAtStart = new Map<string, Promise<number>>(managers.map((m) => [m.name, cpuTicks(m.pid)]));
  const sample = async () => {
    for (const m of managers) {
      if (m.pid > 0) peak.set(m.name, Math.max(peak.get(m.name) ?? 0, await memoryKiB(m.pid, 'VmRSS').catch(() => 0)));
    }
  };
  const timer = setInterval(() => void sample(), 1000);
  return {
    async stop() {
      clearInterval(timer);
      await sample();
      const seconds = (performance.now() - startedAt) / 1000;
      const figures: ProcessFigures[] = [];
      for (const m of managers) {
        if (m.pid <= 0) continue;
        const ticks = (await cpuTicks(m.pid)) - (await ticksAtStart.get(m.name)!);
        figures.push({
          name: m.name,
          peakRssMiB: (peak.get(m.name) ?? 0) / 1024,
          hwmMiB: (await memoryKiB(m.pid, 'VmHWM')) / 1024,
          cpuPercent: (100 * ticks) / CLK_TCK / seconds,
        });
      }
      return figures;
    },
  };
}

/** ClusterInfo calls one after another on one manager's root socket until stopped. */
function apiLoop(socket: string): { stop(): Promise<{ latencies: number[]; errors: number }> } {
  const client = new ApiClient(socket, 10_000);
  const latencies: number[] = [];
  let errors = 0;
  const stopping = new AbortController();
  const done = (async () => {
    while (!stopping.signal.aborted) {
      const started = performance.now();
      try {
        await client.clusterInfo();
        latencies.push(performance.now() - started);
      } catch {
        // Counted, not fatal: the figure is the latency of the calls that were answered.
        errors++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  return {
    async stop() {
      stopping.abort();
      await done;
      client.close();
      return { latencies, errors };
    },
  };
}

// ----------------------------------------------------------------- phases

interface Fleets {
  main: FleetProcess[];
  silent: FleetProcess | undefined;
  cut: FleetProcess | undefined;
  /** Node names per fleet process, in order. */
  nodesOf: Map<FleetProcess, string[]>;
}

async function startFleets(cluster: ScaleCluster, view: HollowView, withFailures: boolean): Promise<{ fleets: Fleets; joinMs: number; connectMs: number }> {
  const tenth = withFailures ? Math.floor(NODES / 10) : 0;
  const fleetSize = Number(flags['fleet-size']);
  const plan: Array<{ prefix: string; count: number; role: 'main' | 'silent' | 'cut' }> = [];
  let left = NODES - 2 * tenth;
  for (let i = 0; left > 0; i++, left -= fleetSize) plan.push({ prefix: `hollow${i}`, count: Math.min(fleetSize, left), role: 'main' });
  if (tenth > 0) plan.push({ prefix: 'silent', count: tenth, role: 'silent' }, { prefix: 'cut', count: tenth, role: 'cut' });
  const fleets: Fleets = { main: [], silent: undefined, cut: undefined, nodesOf: new Map() };
  const started = performance.now();
  const processes = await Promise.all(
    plan.map(async (p, i) => {
      const fleet = await cluster.startFleet({ namePrefix: p.prefix, count: p.count, concurrency: 32, sim: { ...SIM, seed: SIM.seed + i }, view });
      fleets.nodesOf.set(
        fleet,
        Array.from({ length: p.count }, (_, n) => `${p.prefix}-${String(n).padStart(4, '0')}`),
      );
      if (p.role === 'main') fleets.main.push(fleet);
      else fleets[p.role] = fleet;
      return fleet;
    }),
  );
  const timings = await Promise.all(processes.map((f) => f.ready));
  log(`${NODES} hollow nodes registered after ${Math.round(performance.now() - started)} ms`);
  return { fleets, joinMs: Math.max(...timings.map((t) => t.joinMs)), connectMs: Math.max(...timings.map((t) => t.connectMs)) };
}

/** Every slot of `services` running exactly once on nodes outside `except`. */
function slotsRunningOnce(view: HollowView, except: ReadonlySet<string>, expected: number): boolean {
  const slots = view.runningBySlot(except);
  if (slots.size < expected) return false;
  for (const runs of slots.values()) if (runs.length !== 1) return false;
  return slots.size === expected;
}

/** The moment every slot ran again: the latest start among the runs now holding each slot. */
function latestStart(view: HollowView, except: ReadonlySet<string>): number {
  let latest = 0;
  for (const runs of view.runningBySlot(except).values()) for (const r of runs) latest = Math.max(latest, r.start);
  return latest;
}

async function rescheduleAfter(
  what: string,
  view: HollowView,
  fleet: FleetProcess,
  nodes: readonly string[],
  gone: Set<string>,
  expected: number,
  act: () => void,
): Promise<{ tasks: number; seconds: number }> {
  const names = new Set(nodes);
  const tasks = [...view.runs.values()].filter((r) => r.end === undefined && names.has(r.node)).length;
  for (const n of nodes) gone.add(n);
  const at = wallClockMs();
  act();
  log(`${what}: ${nodes.length} nodes with ${tasks} running tasks (pid ${fleet.pid})`);
  await view.until(`${what}: every slot running elsewhere`, () => slotsRunningOnce(view, gone, expected), TIMEOUT_MS);
  return { tasks, seconds: (latestStart(view, gone) - at) / 1000 };
}

// ----------------------------------------------------------------- report

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

function printTable(rows: Array<[string, string, string]>): void {
  const head: [string, string, string] = ['measure', 'value', 'goal'];
  const widths = [0, 1, 2].map((i) => Math.max(...[head, ...rows].map((r) => r[i]!.length)));
  for (const row of [head, ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

// ----------------------------------------------------------------- main

async function main(): Promise<void> {
  if (PROFILE_DIR) await mkdir(PROFILE_DIR, { recursive: true });
  log(`3 managers, ${NODES} hollow nodes, ${SERVICES} services × ${REPLICAS} replicas; containers simulated (${JSON.stringify(SIM)})`);
  const cluster = await startScaleCluster({
    from: 'dist',
    // tsd's own defaults (the lab's are shorter, for tests).
    tsdFlags: ['--heartbeat-ms', '1000', '--node-down-after-ms', '15000'],
    ...(PROFILE_DIR ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] } : {}),
    log,
  });
  const rows: Array<[string, string, string]> = [];
  const notes: string[] = [];
  try {
    const view = new HollowView();
    const { fleets, joinMs, connectMs } = await startFleets(cluster, view, !PROFILE_DIR);
    rows.push([
      `${NODES} hollow nodes: joined (NodeCA.Join, 32 at a time per process) / sessions registered (s)`,
      `${fmt(joinMs / 1000, 1)} / ${fmt(connectMs / 1000, 1)}`,
      '-',
    ]);

    // Rollout.
    const leader = await cluster.leader();
    const followers = cluster.managers.filter((m) => m !== leader);
    const watch = watchManagers([leader, ...followers]);
    const api = apiLoop(leader.socket);
    const appliedAt = wallClockMs();
    await applyServices(cluster.api, hollowServices('scale', 'svc', SERVICES, REPLICAS));
    const applyMs = wallClockMs() - appliedAt;
    log(`applied ${SERVICES} services in ${Math.round(applyMs)} ms; waiting for ${TOTAL} tasks to run`);
    const progress = setInterval(() => log(`assigned ${view.assignedCount}, running ${view.runningCount()}`), 10_000);
    await view.until('every task running', () => view.runningCount() >= TOTAL, TIMEOUT_MS).finally(() => clearInterval(progress));
    const figures = await watch.stop();
    const { latencies, errors } = await api.stop();
    const placedSeconds = ((view.lastAssignedAt ?? Number.NaN) - appliedAt) / 1000;
    const runningSeconds = ((view.lastRunAt ?? Number.NaN) - appliedAt) / 1000;
    rows.push([`apply ${fmt(SERVICES)} services (Apply requests of 200, s)`, fmt(applyMs / 1000, 2), '-']);
    rows.push([`end-to-end placements/s (apply → ${fmt(TOTAL)} tasks seen assigned at their hollow nodes)`, fmt(TOTAL / placedSeconds), '>= 5,000/s']);
    rows.push([`apply → all ${fmt(TOTAL)} running (s)`, fmt(runningSeconds, 1), TOTAL >= 100_000 ? '< 30 s' : '(100,000 in < 30 s)']);
    rows.push(['tasks running/s (apply → all running)', fmt(TOTAL / runningSeconds), '-']);
    for (const f of figures) {
      const role = f.name === leader.name ? 'leader' : 'follower';
      rows.push([`${role} ${f.name}: RSS peak sampled / VmHWM (MiB)`, `${fmt(f.peakRssMiB)} / ${fmt(f.hwmMiB)}`, role === 'leader' ? '< 1,024 MiB' : '-']);
      rows.push([`${role} ${f.name}: CPU during the rollout (% of one core)`, fmt(f.cpuPercent), '-']);
    }
    rows.push([
      `API ClusterInfo on the leader during the rollout: p50 / p99 / max (ms, ${fmt(latencies.length)} calls, ${errors} errors)`,
      `${fmt(percentile(latencies, 50), 1)} / ${fmt(percentile(latencies, 99), 1)} / ${fmt(Math.max(...latencies), 1)}`,
      '-',
    ]);

    if (PROFILE_DIR) {
      const leaderPid = leader.pid;
      for (const m of cluster.managers) await cluster.lab.stop(m);
      // node names a profile CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile.
      notes.push(
        `CPU profiles in ${PROFILE_DIR}; the leader was ${leader.name}, pid ${leaderPid} (each covers its tsd's whole life, start-up and joins included)`,
      );
    } else {
      const gone = new Set<string>();
      const silent = await rescheduleAfter('10 % silent', view, fleets.silent!, fleets.nodesOf.get(fleets.silent!)!, gone, TOTAL, () =>
        fleets.silent!.signal('SIGSTOP'),
      );
      rows.push([`10 % of nodes silent (SIGSTOP, sockets open): ${fmt(silent.tasks)} tasks → running elsewhere (s)`, fmt(silent.seconds, 1), '-']);
      const cut = await rescheduleAfter('10 % cut', view, fleets.cut!, fleets.nodesOf.get(fleets.cut!)!, gone, TOTAL, () => fleets.cut!.signal('SIGKILL'));
      rows.push([`10 % of nodes cut (SIGKILL, sockets closed): ${fmt(cut.tasks)} tasks → running elsewhere (s)`, fmt(cut.seconds, 1), '-']);
      fleets.silent!.signal('SIGKILL');

      // Leader kill -9 in the middle of a further rollout.
      const more = Math.max(1, Math.floor(SERVICES / 10));
      const expected = TOTAL + more * REPLICAS;
      const killed = await cluster.leader();
      // Runs on the silenced and cut nodes never reported an end: count from here.
      const base = view.runningCount();
      await applyServices(cluster.api, hollowServices('scale2', 'svc', more, REPLICAS));
      await view.until('half the further rollout running', () => view.runningCount() >= base + (more * REPLICAS) / 2, TIMEOUT_MS);
      const runningAtKill = view.runningCount();
      const killedAt = wallClockMs();
      await cluster.lab.kill9(killed);
      log(`killed the leader ${killed.name} with ${runningAtKill} tasks running`);
      const converged = await view
        .until('every slot running once after the leader kill', () => slotsRunningOnce(view, gone, expected), TIMEOUT_MS)
        .then(
          (): boolean => true,
          (err: Error): boolean => {
            notes.push(err.message);
            return false;
          },
        );
      const twice = new Set(view.overlaps(gone).map((o) => o.slot));
      const missing = expected - view.runningBySlot(gone).size;
      rows.push([
        `leader kill -9 mid-rollout (${fmt(more * REPLICAS)} more tasks): converged after (s)`,
        converged ? fmt((latestStart(view, gone) - killedAt) / 1000, 1) : 'not converged',
        'converges',
      ]);
      rows.push(['  slots that ran twice at once / slots missing', `${twice.size} / ${missing}`, '0 / 0 (nothing lost)']);
    }
  } catch (err) {
    // The managers' and fleets' logs say why; the lab's directory goes with the cluster.
    const dir = resolve('test-logs', `bench-scale-${Date.now()}`);
    await copyLogs(dir, [
      ...cluster.managers.map((m) => ({ path: join(m.dataRoot, 'tsd.log'), name: `${m.name}.log` })),
      ...(await readdir(cluster.lab.dir)).filter((f) => f.startsWith('fleet-')).map((f) => ({ path: join(cluster.lab.dir, f), name: f })),
    ]);
    log(`logs kept in ${dir}`);
    throw err;
  } finally {
    await cluster.destroy();
  }
  printTable(rows);
  for (const note of notes) console.log(note);
  if (PROFILE_DIR) {
    const files = (await readdir(PROFILE_DIR)).filter((f) => f.endsWith('.cpuprofile'));
    for (const file of files) {
      console.log('');
      for (const line of await profileReport(resolve(PROFILE_DIR, file), 20)) console.log(line);
    }
  }
}

await main();
