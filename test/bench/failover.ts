// `npm run bench:failover`: how long a user waits for tsctl after the Raft leader of a 3-manager
// cluster dies (issue 20's goal: 1.5 s). Needs root and `npm run build` (bin/tsctl runs dist/).
//
// What is timed, per run: a 3-manager netns cluster (`tsctl cluster up --nodes 3 --managers 3`,
// test/helpers/tsctl-cluster.ts) whose context names the leader first (as after any command it
// answered); the leader's tsd gets SIGKILL; the clock starts right after the kill(2) and a new
// `tsctl get services` process (bin/tsctl, the real CLI, with that context) is started at once;
// "answer" is when the services table reaches its stdout, "exit" when the process has ended (it may
// refresh the context's manager list after answering). The killed manager is started again and
// rejoins before the next run, so every run kills the leader of a healthy 3-manager cluster.
// Where the time goes, measured beside it: from the same kill, an ApiClient inside this process
// (already loaded, with the context's managers, leader first: the failover and the cluster's
// election without tsctl's start-up) until its List answers; the same command on the healthy
// cluster (start-up and the calls, no failover); and `tsctl --help` (start-up alone: loading the
// modules, no call). FAILOVER_RUNS sets the number of runs (default 7).
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { processAlive } from '../../agent/runtime/process-alive.js';
import { ApiClient } from '../../cli/client.js';
import { contextServers } from '../../cli/context-servers.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { eventually } from '../helpers/eventually.js';
import { TSCTL, TsctlCluster } from '../helpers/tsctl-cluster.js';
import { median } from './stats.js';

const GOAL_MS = 1500;
const RUNS = Number(process.env['FAILOVER_RUNS'] ?? 7);

interface Timed {
  answerMs: number;
  exitMs: number;
  code: number;
  stderr: string;
}

/** Starts `tsctl ARGS` now; times from `since` to its first stdout and to its exit. */
function timedTsctl(cluster: TsctlCluster, since: number, args = ['get', 'services']): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSCTL, args, { env: cluster.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let answerMs = -1;
    let stderr = '';
    child.stdout.on('data', () => {
      if (answerMs < 0) answerMs = performance.now() - since;
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ answerMs, exitMs: performance.now() - since, code: code ?? -1, stderr }));
  });
}

/** From `since`, the time until a client that is already loaded, with the context's managers in order, has its List answered. */
async function listAfterKill(cluster: TsctlCluster, since: number): Promise<number> {
  const context = await cluster.readContext();
  if (!context) throw new Error('no context');
  const [first, ...others] = contextServers(context);
  const client = new ApiClient(first!, { timeoutMs: 30_000, failover: { addresses: others, securityFor: () => LOCAL_INSECURE } });
  try {
    await client.list({ kind: 'Service', allStacks: true });
    return performance.now() - since;
  } finally {
    client.close();
  }
}

async function settle(cluster: TsctlCluster, name: string): Promise<void> {
  await eventually(
    `${name} back among the voting managers, with a leader`,
    async () => {
      const rows = await cluster.members();
      return rows.some((r) => r.id === name && (r.role === 'follower' || r.role === 'leader')) && rows.some((r) => r.role === 'leader');
    },
    120_000,
    500,
  );
  // Let the restarted manager catch up and the cluster go quiet before the next kill.
  await sleep(3000);
}

const cluster = await TsctlCluster.prepare('b');
try {
  const up = await cluster.up(3, 3);
  if (up.code !== 0) throw new Error(`cluster up failed: ${up.stderr}`);
  const manifest = join(cluster.workDir, 'svc.json');
  await writeFile(
    manifest,
    JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name: 'bench', stack: 'fo' }, spec: { image: 'none:1', replicas: 0 } }),
  );
  const applied = await cluster.tsctl(['apply', '-f', manifest]);
  if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);

  const healthy: Timed[] = [];
  const startUp: Timed[] = [];
  for (let i = 0; i < RUNS; i++) {
    healthy.push(await timedTsctl(cluster, performance.now()));
    startUp.push(await timedTsctl(cluster, performance.now(), ['--help']));
  }
  const inProcess: number[] = [];

  const afterKill: Timed[] = [];
  for (let run = 0; run < RUNS; run++) {
    const leader = await cluster.leader();
    await cluster.askFirst(leader);
    // The tsd this bench's cluster started: its PID, checked against the start time recorded with it.
    if (!processAlive(leader.pid, leader.startTime)) throw new Error(`${leader.name}'s tsd (PID ${leader.pid}) is not the one the cluster recorded`);
    process.kill(leader.pid, 'SIGKILL');
    const killedAt = performance.now();
    const [timed, listMs] = await Promise.all([timedTsctl(cluster, killedAt), listAfterKill(cluster, killedAt)]);
    inProcess.push(listMs);
    if (timed.code !== 0 || timed.answerMs < 0) throw new Error(`run ${run + 1}: tsctl get services failed (${timed.code}): ${timed.stderr}`);
    afterKill.push(timed);
    console.error(
      `run ${run + 1}: killed ${leader.name}; tsctl answer ${Math.round(timed.answerMs)} ms, exit ${Math.round(timed.exitMs)} ms; in-process List ${Math.round(listMs)} ms`,
    );
    const start = await cluster.tsctl(['cluster', 'node', 'start', leader.name]);
    if (start.code !== 0) throw new Error(`cluster node start ${leader.name} failed: ${start.stderr}`);
    await settle(cluster, leader.name);
  }

  const ms = (v: number) => String(Math.round(v));
  const row = (what: string, samples: number[], goal: string) => [what, ms(median(samples)), ms(Math.max(...samples)), goal];
  const header = ['measure (ms)', 'median', 'max', 'goal'];
  const rows = [
    row(
      'kill -9 of the leader → `tsctl get services` answer printed',
      afterKill.map((r) => r.answerMs),
      String(GOAL_MS),
    ),
    row(
      'kill -9 of the leader → that tsctl process exited',
      afterKill.map((r) => r.exitMs),
      '-',
    ),
    row('kill -9 of the leader → in-process ApiClient List answered (no start-up)', inProcess, '-'),
    row(
      'healthy cluster: `tsctl get services` answer printed (no failover)',
      healthy.map((r) => r.answerMs),
      '-',
    ),
    row(
      'healthy cluster: that tsctl process exited',
      healthy.map((r) => r.exitMs),
      '-',
    ),
    row(
      '`tsctl --help` exited (start-up alone, no call)',
      startUp.map((r) => r.exitMs),
      '-',
    ),
  ];
  console.log(`tsctl failover: ${RUNS} runs, 3-manager netns cluster, leader killed with SIGKILL, clock from the kill to the new tsctl process's output`);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[header, ...rows].map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log(`(after kill, answer per run: ${afterKill.map((r) => ms(r.answerMs)).join(', ')} ms; load average at the end: ${loadavg()[0]!.toFixed(1)})`);
} finally {
  const down = await cluster.tsctl(['cluster', 'down']);
  if (down.code !== 0) console.error(`cluster down: ${down.stderr}`);
  await cluster.destroy();
}
