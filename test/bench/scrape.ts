// npm run bench:scrape — what one Prometheus scrape of a node's /metrics costs, with 100 running
// tasks on the node. Needs root (network namespace, containers). Prints two tables.
//
// Set-up: one real tsd (manager and worker) in a network namespace of its own (test/helpers/tsd-node.ts),
// run with node's --trace-gc-nvp so that its log has one line per garbage collection; a service of
// 100 busybox `sleep` replicas, 16 MiB memory limit each, all running. The scraper is a small
// process inside the namespace (scrape-client.ts) with a viewer's certificate from
// `tsctl cluster user add prometheus --role viewer --pem-dir`, so every request crosses the
// cluster's mutual TLS as Prometheus's would.
//
// Timed, on the real tsd (table 1):
// - scrape latency as the scraper sees it, request sent to last byte of the body, on a kept-alive
//   connection (Prometheus keeps it between scrapes), after 5 warm-up scrapes; and on a new
//   connection each time (the TLS handshake included). p50, p95 and max.
// - tsd's CPU per scrape: utime+stime of its /proc/PID/stat over windows of scrapes (one every
//   BENCH_INTERVAL_MS, start to start) minus what it used at its idle rate over the same time, the
//   idle rate from idle windows of the same length taken alternately (idle, scrapes, idle, …),
//   divided by the scrapes. The same for the containers' shims, which answer a state request per
//   container per scrape; and for a window of scrapes on new connections (TLS handshake). From
//   it, the CPU share of one scrape every 15 s (cpu per scrape / 15 s). A window is 15 scrapes
//   (3.75 s by default): shorter than tsd's keep-alive timeout (75 s, metrics-server.ts), so the
//   kept connection survives the idle windows; kept scrapes that found it closed are counted.
// - tsd's garbage collections in those windows, from its --trace-gc-nvp lines: count, longest
//   pause, pauses over 5 ms, scrape windows against idle ones; heap bytes allocated per scrape =
//   (allocated in scrape windows − in idle windows) / scrapes. V8 reports allocation per
//   collection, so each window's total can be off by at most one collection's `allocated` (printed).
//
// Timed in this process, against the same 100 containers (table 2), to see where a scrape goes: the
// pieces the container families are made of, each over all 100 containers at once as tsd does it,
// median of 10; and reading the very same files with one `cat` (its spawn, `cat /dev/null`,
// subtracted), the kernel's share, with the ratio ours / cat. Heap bytes allocated by one
// collection of the container families: used heap after − before, over collections during which
// no GC ran (a perf_hooks observer says), median.
//
// The machine is shared: the load average is printed with the tables.
// BENCH_SCRAPES (default 60, split into 3 windows), BENCH_INTERVAL_MS (250), BENCH_REPLICAS (100).
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { createInterface, type Interface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import * as client from 'prom-client';

import { ApiClient } from '../../cli/client.js';
import { exposition } from '../../common/metrics/text-collectors.js';
import { API_VERSION, type Service, type Task } from '../../common/resources/types.js';
import { V1_STAT_FILES, V2_STAT_FILES } from '../../agent/runtime/cgroups/stats-files.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { StateStore, type StoredState } from '../../agent/runtime/state-store.js';
import { ContainerMetrics } from '../../agent/stats/container-metrics.js';
import { readContainer } from '../../agent/stats/container-reading.js';
import { bootTimeSeconds, CLOCK_TICKS_PER_SECOND, processStartSeconds } from '../../agent/stats/proc-start.js';
import { containerIdFor } from '../../agent/worker/task-runner.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';
import { METRICS_PORT, type TestNode } from '../helpers/tsd-node.js';
import { parseGcTrace, summariseGc, type GcSummary } from './gc-trace.js';
import { median, percentile } from './stats.js';

const run = promisify(execFile);
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 60);
const WINDOWS = 4;
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? 250);
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 100);
const WARM_UP = 5;
const FRESH_SCRAPES = 15;
const PIECE_ROUNDS = 10;
const GC_PAUSE_GOAL_MS = 5;
const PROMETHEUS_INTERVAL_S = 15;
const MS_PER_TICK = 1000 / CLOCK_TICKS_PER_SECOND;
const clientScript = join(fileURLToPath(new URL('.', import.meta.url)), 'scrape-client.ts');

interface ScrapeAnswer {
  ms: number;
  bytes: number;
  status: number;
  series: number;
  containerSeries: number;
  reused: boolean;
}

/** The scraper inside the node's namespace, one command and one answer at a time. */
class Scraper {
  private readonly lines: AsyncIterator<string>;
  private readonly reader: Interface;

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.reader = createInterface({ input: child.stdout });
    this.lines = this.reader[Symbol.asyncIterator]();
  }

  async scrape(mode: 'keep' | 'fresh'): Promise<ScrapeAnswer> {
    this.child.stdin.write(`${mode}\n`);
    const next = await this.lines.next();
    if (next.done === true) throw new Error('the scraper exited');
    const answer = JSON.parse(next.value) as ScrapeAnswer & { error?: string };
    if (answer.error !== undefined) throw new Error(`scrape failed: ${answer.error}`);
    if (answer.status !== 200) throw new Error(`scrape answered HTTP ${answer.status}`);
    return answer;
  }

  stop(): void {
    this.reader.close();
    this.child.stdin.end();
    this.child.kill();
  }
}

/** utime + stime of a process, in clock ticks; 0 once it is gone. */
async function cpuTicks(pid: number): Promise<number> {
  // A shim whose container ended has no stat any more: it adds nothing, which is what it cost.
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After ") ": field 3 is index 0, so utime (14) and stime (15) are 11 and 12.
  return Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
}

async function ticksOf(pids: readonly number[]): Promise<number> {
  return (await Promise.all(pids.map(cpuTicks))).reduce((a, b) => a + b, 0);
}

interface Window {
  tsdTicks: number;
  shimTicks: number;
  gc: GcSummary;
  ms: number;
}

/** Runs `body` and measures tsd's and the shims' CPU and tsd's collections over it. */
async function measured(node: TestNode, logPath: string, shimPids: number[], body: () => Promise<void>): Promise<Window> {
  const [tsd0, shim0, log0] = await Promise.all([cpuTicks(node.pid), ticksOf(shimPids), stat(logPath)]);
  const started = performance.now();
  await body();
  const ms = performance.now() - started;
  const [tsd1, shim1, log1] = await Promise.all([cpuTicks(node.pid), ticksOf(shimPids), stat(logPath)]);
  const file = await open(logPath, 'r');
  try {
    const length = log1.size - log0.size;
    const { buffer } = await file.read({ buffer: Buffer.alloc(length), position: log0.size, length });
    return { tsdTicks: tsd1 - tsd0, shimTicks: shim1 - shim0, gc: summariseGc(parseGcTrace(buffer.toString('utf8')), GC_PAUSE_GOAL_MS), ms };
  } finally {
    await file.close();
  }
}

async function waitRunning(api: ApiClient, service: string, count: number): Promise<Task[]> {
  const deadline = Date.now() + 15 * 60_000;
  let last = -1;
  for (;;) {
    const tasks = (await api.list({ kind: 'Task', stack: 'bench', service })).objectsJson.map((j) => JSON.parse(j) as Task);
    const running = tasks.filter((t) => t.desiredState === 'running' && t.status.state === 'running');
    if (running.length === count) return running;
    if (running.length !== last) console.error(`  ${running.length}/${count} running`);
    last = running.length;
    if (Date.now() > deadline) throw new Error(`only ${running.length} of ${count} tasks running after 15 minutes`);
    await sleep(1000);
  }
}

/** Median ms of `rounds` runs of `fn`. */
async function timedMedian(rounds: number, fn: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    await fn();
    samples.push(performance.now() - started);
  }
  return median(samples);
}

/** The files one scrape reads for a container, as they exist (cgroup stats, net/dev, stat). */
function filesOf(stored: StoredState): string[] {
  const names = new Set<string>([...V1_STAT_FILES.map(([, file]) => file), ...V2_STAT_FILES]);
  const files = new Set<string>();
  for (const dir of stored.cgroup.dirs) for (const name of names) if (existsSync(join(dir, name))) files.add(join(dir, name));
  return [...files, `/proc/${stored.pid}/net/dev`, `/proc/${stored.pid}/stat`, '/proc/stat'];
}

interface Pieces {
  rows: Array<[string, number]>;
  allocatedBytes: number | undefined;
  allocationSamples: number;
  catMs: number;
  files: number;
  collectMs: number;
}

/** Table 2: the pieces of the container families, in this process, over the same containers. */
async function pieces(dataRoot: string, tasks: Task[]): Promise<Pieces> {
  const runtime = new NativeRuntime({ stateRoot: join(dataRoot, 'runtime') });
  const ids = tasks.map(containerIdFor);
  const all = (fn: (id: string) => Promise<unknown>) => () => Promise.all(ids.map(fn));
  const running = () => tasks.map((task) => ({ task, containerId: containerIdFor(task) }));
  const log = (message: string) => console.error(`  (in-process) ${message}`);
  // A new ContainerMetrics each time: one reuses its reading for 500 ms.
  const collect = async () => {
    const registry = new client.Registry();
    new ContainerMetrics({ runtime, running, node: 'node1', log }).register(registry);
    return (await exposition([registry])).body;
  };
  await collect();
  const rows: Array<[string, number]> = [
    [
      'runtime.state() (state.json, exit.json, shim socket)',
      await timedMedian(
        PIECE_ROUNDS,
        all((id) => runtime.state(id)),
      ),
    ],
    [
      'runtime.stats() (state.json, cgroup files)',
      await timedMedian(
        PIECE_ROUNDS,
        all((id) => runtime.stats(id)),
      ),
    ],
    [
      'readContainer() (state + stats + net/dev)',
      await timedMedian(
        PIECE_ROUNDS,
        all((id) => readContainer(runtime, id)),
      ),
    ],
  ];
  const stored = (await Promise.all(ids.map((id) => new StateStore(join(dataRoot, 'runtime')).read(id)))).filter((s) => s !== undefined);
  rows.push(['processStartSeconds(), /proc/stat for each', await timedMedian(PIECE_ROUNDS, () => Promise.all(stored.map((s) => processStartSeconds(s.pid))))]);
  rows.push([
    'processStartSeconds(), /proc/stat once (as a scrape does)',
    await timedMedian(PIECE_ROUNDS, () => {
      let boot: Promise<number | undefined> | undefined;
      return Promise.all(stored.map((s) => processStartSeconds(s.pid, '/proc', () => (boot ??= bootTimeSeconds()))));
    }),
  ]);
  const collectMs = await timedMedian(PIECE_ROUNDS, collect);
  rows.push(['container families, read + text (what a scrape adds)', collectMs]);

  const files = stored.flatMap(filesOf);
  const cat = (paths: string[]) => () => run('cat', paths, { maxBuffer: 64 * 1024 * 1024 });
  const catMs = Math.max(0, (await timedMedian(PIECE_ROUNDS, cat(files))) - (await timedMedian(PIECE_ROUNDS, cat(['/dev/null']))));
  rows.push([`cat of the same ${files.length} files, one process (spawn subtracted)`, catMs]);

  // Allocation of one collection, over collections no GC interrupted.
  let gcs = 0;
  const observer = new PerformanceObserver((list) => (gcs += list.getEntries().length));
  observer.observe({ entryTypes: ['gc'] });
  const allocations: number[] = [];
  try {
    for (let i = 0; i < 3 * PIECE_ROUNDS && allocations.length < PIECE_ROUNDS; i++) {
      await sleep(20);
      const gcsBefore = gcs;
      const before = v8.getHeapStatistics().used_heap_size;
      await collect();
      const after = v8.getHeapStatistics().used_heap_size;
      await sleep(20); // the observer's entries arrive on a later turn
      if (gcs === gcsBefore) allocations.push(after - before);
    }
  } finally {
    observer.disconnect();
  }
  return {
    rows,
    allocatedBytes: allocations.length > 0 ? median(allocations) : undefined,
    allocationSamples: allocations.length,
    catMs,
    files: files.length,
    collectMs,
  };
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const mib = (bytes: number) => fmt(bytes / 2 ** 20, 2);

let node: TestNode | undefined;
let workDir: string | undefined;
let scraper: Scraper | undefined;
let api: ApiClient | undefined;
let cleaning: Promise<void> | undefined;
/** Tears everything down once, whether the run ended, failed or was interrupted. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    scraper?.stop();
    api?.close();
    await stopBusyboxNode(node, workDir);
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  const loadAtStart = os.loadavg();
  console.error(`starting tsd and ${REPLICAS} containers (load ${loadAtStart.map((l) => l.toFixed(2)).join(' ')})`);
  const busybox = await startBusyboxNode('tessera-bench-scrape-', { nodeFlags: ['--trace-gc-nvp'] });
  ({ node, workDir } = busybox);
  const logPath = join(node.dataRoot, 'tsd.log');
  const pemDir = join(workDir, 'prometheus-tls');
  await node.tsctl('cluster', 'user', 'add', 'prometheus', '--role', 'viewer', '--output', join(workDir, 'prometheus.tessera.json'), '--pem-dir', pemDir);
  api = new ApiClient(node.server);
  const service: Service = {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'sleepers', stack: 'bench' },
    spec: {
      image: busybox.imageRef,
      command: ['sleep', '1000000'],
      replicas: REPLICAS,
      stopGracePeriodMs: 100,
      resources: { limits: { memory: 16 * 2 ** 20 } },
    },
  };
  await api.apply({ objectsJson: [JSON.stringify(service)] });
  const tasks = await waitRunning(api, 'sleepers', REPLICAS);
  const store = new StateStore(join(node.dataRoot, 'runtime'));
  const shimPids = (await Promise.all(tasks.map((t) => store.read(containerIdFor(t))))).flatMap((s) => (s?.shimPid === undefined ? [] : [s.shimPid]));
  // What starting 100 containers left to do (status reports, log files) settles first.
  await sleep(10_000);

  const child = spawn('nsenter', [
    `--net=/run/netns/${node.netns}`,
    process.execPath,
    ...process.execArgv,
    clientScript,
    pemDir,
    `https://127.0.0.1:${METRICS_PORT}/metrics`,
  ]);
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`  scraper: ${chunk.toString()}`));
  scraper = new Scraper(child);
  let last: ScrapeAnswer | undefined;
  for (let i = 0; i < WARM_UP; i++) last = await scraper.scrape('keep');

  const loadBefore = os.loadavg();
  const perWindow = Math.ceil(SCRAPES / WINDOWS);
  const windowMs = perWindow * INTERVAL_MS;
  const idle: Window[] = [];
  const busy: Window[] = [];
  const kept: number[] = [];
  let reconnected = 0;
  for (let w = 0; w < WINDOWS; w++) {
    idle.push(await measured(node, logPath, shimPids, () => sleep(windowMs)));
    busy.push(
      await measured(node, logPath, shimPids, async () => {
        const started = performance.now();
        for (let i = 0; i < perWindow; i++) {
          last = await scraper!.scrape('keep');
          kept.push(last.ms);
          if (!last.reused) reconnected++;
          const next = started + (i + 1) * INTERVAL_MS;
          await sleep(Math.max(0, next - performance.now()));
        }
      }),
    );
  }
  const fresh: number[] = [];
  const freshWindow = await measured(node, logPath, shimPids, async () => {
    const started = performance.now();
    for (let i = 0; i < FRESH_SCRAPES; i++) {
      fresh.push((await scraper!.scrape('fresh')).ms);
      await sleep(Math.max(0, started + (i + 1) * INTERVAL_MS - performance.now()));
    }
  });
  const loadAfter = os.loadavg();
  scraper.stop();
  scraper = undefined;

  const parts = await pieces(node.dataRoot, tasks);

  const sum = (ws: Window[], f: (w: Window) => number) => ws.reduce((a, w) => a + f(w), 0);
  const scrapes = kept.length;
  const idleMs = sum(idle, (w) => w.ms);
  /** CPU ms of `ws` above the idle rate, per scrape. */
  const perScrape = (ws: Window[], ticks: (w: Window) => number, count: number) =>
    ((sum(ws, ticks) - (sum(idle, ticks) / idleMs) * sum(ws, (w) => w.ms)) * MS_PER_TICK) / count;
  const tsdPerScrapeMs = perScrape(busy, (w) => w.tsdTicks, scrapes);
  const shimPerScrapeMs = perScrape(busy, (w) => w.shimTicks, scrapes);
  const tsdPerFreshMs = perScrape([freshWindow], (w) => w.tsdTicks, fresh.length);
  const gcOf = (ws: Window[]) => ({
    count: sum(ws, (w) => w.gc.count),
    max: Math.max(...ws.map((w) => w.gc.maxPauseMs)),
    over: sum(ws, (w) => w.gc.over),
    total: sum(ws, (w) => w.gc.totalPauseMs),
    allocated: sum(ws, (w) => w.gc.allocatedBytes),
    edge: Math.max(...ws.map((w) => w.gc.maxAllocatedBytes)),
    kinds: ws.flatMap((w) => [...w.gc.byKind]).reduce((m, [k, n]) => m.set(k, (m.get(k) ?? 0) + n), new Map<string, number>()),
  });
  const gcBusy = gcOf(busy);
  const gcIdle = gcOf(idle);
  const allocatedPerScrape = (gcBusy.allocated - gcIdle.allocated) / scrapes;
  const kinds = (k: Map<string, number>) => [...k].map(([kind, n]) => `${n} ${kind}`).join(', ') || 'none';

  console.log(
    `\nOne node, ${REPLICAS} running busybox tasks; ${scrapes} scrapes of /metrics over mutual TLS in ${WINDOWS} windows of ${perWindow}, ` +
      `one every ${INTERVAL_MS} ms, against ${WINDOWS} idle windows of ${windowMs} ms (${os.cpus().length} CPUs)`,
  );
  console.log(`load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}\n`);
  table(
    ['measure', 'p50', 'p95', 'max', 'goal'],
    [
      ['scrape, kept-alive connection (ms, client-observed)', fmt(percentile(kept, 50)), fmt(percentile(kept, 95)), fmt(Math.max(...kept)), '< 20'],
      ['scrape, new TLS connection each (ms, client-observed)', fmt(percentile(fresh, 50)), fmt(percentile(fresh, 95)), fmt(Math.max(...fresh)), '-'],
    ],
  );
  console.log('');
  table(
    ['tsd, per scrape (scrape windows − idle windows)', 'value', 'goal'],
    [
      ['tsd CPU per scrape, kept connection (ms)', fmt(tsdPerScrapeMs), '-'],
      ['tsd CPU per scrape, new TLS connection each (ms)', fmt(tsdPerFreshMs), '-'],
      ['shims CPU per scrape (ms, all 100 together)', fmt(shimPerScrapeMs), '-'],
      // Every 15 s the kept connection is gone (tsd closes idle ones after 5 s): each scrape is a new one.
      [
        `tsd CPU at one scrape every ${PROMETHEUS_INTERVAL_S} s, new connection (% of one CPU)`,
        fmt((tsdPerFreshMs / (PROMETHEUS_INTERVAL_S * 1000)) * 100, 3),
        '-',
      ],
      [`tsd heap allocated per scrape (MiB, ± ${mib(gcBusy.edge + gcIdle.edge)} x ${WINDOWS} / ${scrapes})`, mib(allocatedPerScrape), '-'],
      [`GC pauses > ${GC_PAUSE_GOAL_MS} ms in scrape windows (idle windows)`, `${gcBusy.over} (${gcIdle.over})`, '0'],
      ['longest GC pause in scrape windows (idle windows) (ms)', `${fmt(gcBusy.max)} (${fmt(gcIdle.max)})`, `<= ${GC_PAUSE_GOAL_MS}`],
      ['GCs in scrape windows (idle windows)', `${gcBusy.count} (${gcIdle.count})`, '-'],
      ['GC pause total in scrape windows (idle windows) (ms)', `${fmt(gcBusy.total)} (${fmt(gcIdle.total)})`, '-'],
      ['response (KiB), series, container_* series', `${fmt((last?.bytes ?? 0) / 1024)}, ${last?.series}, ${last?.containerSeries}`, '-'],
      ['kept-connection scrapes that had to reconnect', String(reconnected), '0'],
    ],
  );
  console.log(`(collections by kind: scrape windows ${kinds(gcBusy.kinds)}; idle windows ${kinds(gcIdle.kinds)})`);
  console.log(
    `(tsd CPU ticks of ${MS_PER_TICK} ms: scrape windows ${busy.map((w) => w.tsdTicks).join(', ')}; idle ${idle.map((w) => w.tsdTicks).join(', ')}; new connections ${freshWindow.tsdTicks}; window lengths ${busy.map((w) => fmt(w.ms, 0)).join(', ')} / ${idle.map((w) => fmt(w.ms, 0)).join(', ')} ms)\n`,
  );
  table(
    [`in this process, all ${tasks.length} containers at once (median of ${PIECE_ROUNDS})`, 'ms', 'x cat'],
    parts.rows.map(([name, ms]) => [name, fmt(ms, 2), parts.catMs > 0 ? fmt(ms / parts.catMs, 1) : '-']),
  );
  console.log(
    `heap allocated by one collection of the container families: ${parts.allocatedBytes === undefined ? '- (a GC ran during every one)' : `${mib(parts.allocatedBytes)} MiB`} (median of ${parts.allocationSamples} without a GC)`,
  );
} finally {
  await cleanup();
}
