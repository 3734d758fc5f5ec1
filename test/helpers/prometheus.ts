// A real Prometheus (Debian's /usr/bin/prometheus) for the e2e tests: its configuration derived from
// the shipped deploy/prometheus/prometheus.yml, the process started inside a network namespace the
// test chose, and its HTTP API asked with curl from inside that namespace (loopback only).
import { execFile, spawn } from 'node:child_process';
import { open, readlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { forget, remember } from '../../cli/local-cluster/live-clusters.js';

const run = promisify(execFile);
export const PROMETHEUS_BINARY = '/usr/bin/prometheus';
/** Where the shipped configuration expects the scrape certificate's PEM files (docs/prometheus.md). */
export const SHIPPED_CERT_DIR = '/etc/prometheus/tessera';

export interface TestConfigChanges {
  /** The managers' addresses, in place of MANAGER1, MANAGER2, ... */
  managers: readonly string[];
  /** The directory of `tsctl cluster user add --pem-dir`, in place of /etc/prometheus/tessera. */
  pemDir: string;
  /** Prometheus durations ("1s"): shorter than the shipped ones, so that the test is short. */
  scrapeInterval: string;
  evaluationInterval: string;
  refreshInterval: string;
}

/**
 * The shipped configuration with only these changed: the MANAGERn placeholders, the PEM files'
 * directory and the three intervals. Each replacement must find what it replaces, so that a change
 * of the shipped file's shape fails here rather than testing something else.
 */
export function deriveTestConfig(shipped: string, changes: TestConfigChanges): string {
  const replaceEvery = (text: string, from: string, to: string): string => {
    if (!text.includes(from)) throw new Error(`the shipped prometheus.yml has no "${from}" to replace`);
    return text.replaceAll(from, to);
  };
  let text = shipped;
  // Highest first: MANAGER1 is a prefix of MANAGER10.
  for (let i = changes.managers.length; i >= 1; i--) text = replaceEvery(text, `MANAGER${i}`, changes.managers[i - 1]!);
  if (/MANAGER\d/.test(text)) throw new Error(`the shipped prometheus.yml names more managers than the ${changes.managers.length} given`);
  text = replaceEvery(text, `${SHIPPED_CERT_DIR}/`, `${changes.pemDir.replace(/\/+$/, '')}/`);
  text = replaceEvery(text, 'scrape_interval: 15s', `scrape_interval: ${changes.scrapeInterval}`);
  text = replaceEvery(text, 'evaluation_interval: 15s', `evaluation_interval: ${changes.evaluationInterval}`);
  text = replaceEvery(text, 'refresh_interval: 30s', `refresh_interval: ${changes.refreshInterval}`);
  return text;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt?: string;
  value: string;
}

export interface PromTarget {
  discoveredLabels: Record<string, string>;
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  lastError: string;
  health: 'up' | 'down' | 'unknown';
}

export interface RunningPrometheus {
  pid: number;
  logPath: string;
  /** An instant query (/api/v1/query); a result that is not a vector is an error. */
  query(expr: string): Promise<PromSample[]>;
  alerts(): Promise<PromAlert[]>;
  activeTargets(): Promise<PromTarget[]>;
  /** SIGTERM, then SIGKILL if it has not gone within 10 s; the process is this test's own. */
  stop(): Promise<void>;
}

export interface StartPrometheusOptions {
  /** A process whose network namespace Prometheus joins (nsenter --net=/proc/PID/ns/net). */
  netnsOfPid: number;
  configFile: string;
  dataDir: string;
  logPath: string;
  /** Port on the namespace's loopback for the web API. */
  port: number;
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data?: T;
  errorType?: string;
  error?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone. (EPERM cannot happen: the test runs as root and started it.)
    return false;
  }
}

/** Starts Prometheus in the namespace of `netnsOfPid`; resolves once its API answers /-/ready. */
export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const netns = `--net=/proc/${options.netnsOfPid}/ns/net`;
  const log = await open(options.logPath, 'a', 0o600);
  // nsenter joins only the network namespace and execs Prometheus (no fork without --pid): the PID
  // is Prometheus's own, and it reads its configuration and certificates from the host's files.
  const child = spawn(
    'nsenter',
    [
      netns,
      PROMETHEUS_BINARY,
      `--config.file=${options.configFile}`,
      `--storage.tsdb.path=${options.dataDir}`,
      `--web.listen-address=127.0.0.1:${options.port}`,
    ],
    { stdio: ['ignore', log.fd, log.fd] },
  );
  await log.close();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start prometheus');
  const ownNetns = `--net=/proc/${pid}/ns/net`;
  const stop = async (): Promise<void> => {
    forget(handle);
    if (!alive(pid)) return;
    child.kill('SIGTERM');
    for (let i = 0; i < 100 && alive(pid) && child.exitCode === null; i++) await sleep(100);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const handle = { pid };
  // A test worker ended by ava's timeout runs no after.always hook (test/helpers/worker-teardown.ts).
  remember(handle, stop);

  const get = async (path: string, params: Record<string, string> = {}): Promise<string> => {
    const args = [ownNetns, 'curl', '-sS', '--max-time', '10', '-G'];
    for (const [key, value] of Object.entries(params)) args.push('--data-urlencode', `${key}=${value}`);
    const { stdout } = await run('nsenter', [...args, `http://127.0.0.1:${options.port}${path}`], { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  };
  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const text = await get(path, params);
    const answer = JSON.parse(text) as ApiAnswer<T>;
    if (answer.status !== 'success' || answer.data === undefined)
      throw new Error(`prometheus ${path}: ${answer.errorType ?? ''} ${answer.error ?? text.slice(0, 300)}`);
    return answer.data;
  };
  const running: RunningPrometheus = {
    pid,
    logPath: options.logPath,
    async query(expr) {
      const data = await api<{ resultType: string; result: PromSample[] }>('/api/v1/query', { query: expr });
      if (data.resultType !== 'vector') throw new Error(`prometheus: ${expr} gave a ${data.resultType}, not a vector`);
      return data.result;
    },
    async alerts() {
      return (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
    },
    async activeTargets() {
      return (await api<{ activeTargets: PromTarget[] }>('/api/v1/targets', { state: 'active' })).activeTargets;
    },
    stop,
  };
  try {
    const deadline = Date.now() + 60_000;
    // Until nsenter has exec'd, /proc/PID/ns/net is the test's own namespace: no request before.
    const target = await readlink(`/proc/${options.netnsOfPid}/ns/net`);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`prometheus exited (${child.exitCode ?? child.signalCode}); see ${options.logPath}`);
      const joined = (await readlink(`/proc/${pid}/ns/net`).catch((err: Error) => err.message)) === target;
      const ready = joined ? await get('/-/ready').catch((err: Error) => err.message) : 'not in its namespace yet';
      if (/Server is Ready/.test(ready)) return running;
      if (Date.now() > deadline) throw new Error(`prometheus not ready after 60 s (last answer: ${ready.trim()}); see ${options.logPath}`);
      await sleep(300);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
