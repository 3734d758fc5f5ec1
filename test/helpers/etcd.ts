// Starts real etcd servers (Debian's etcd-server, /usr/bin/etcd) for tests and benchmarks: on
// 127.0.0.1 with free ports and a temporary data directory, one member or a cluster. Stopped by
// PID (never by name), and the directory is removed. Plaintext unless `tls` is given: then clients
// and peers both use https with client certificates required (etcd's mutual TLS).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { request } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

export const ETCD_BINARY = process.env.TESSERA_ETCD_BINARY ?? '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  process: ChildProcess;
  pid: number;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Client URLs of the members that are still running. */
  endpoints(): string[];
  /** kill -9 of one member (by PID); it stays down. */
  kill(member: EtcdMember): Promise<void>;
  /** Stops every member still running and removes the temporary directory. */
  stop(): Promise<void>;
}

export interface EtcdClusterOptions {
  members?: number;
  /** Extra etcd flags for every member, e.g. ['--heartbeat-interval=100']. */
  extraArgs?: string[];
  startTimeoutMs?: number;
  /**
   * Mutual TLS on the client and the peer URLs, every member serving the same certificate. It
   * must carry both the serverAuth and clientAuth usages (members dial each other with it, and
   * the health probe uses it as its client certificate) and the IP SAN 127.0.0.1.
   */
  tls?: EtcdTlsFiles;
}

export interface EtcdTlsFiles {
  /** PEM roots that client and peer certificates must chain to. */
  caFile: string;
  /** PEM certificate chain and PEM private key of every member. */
  certFile: string;
  keyFile: string;
}

/** etcd's flags for mutual TLS with the same files on both ports. */
function tlsArgs(tls: EtcdTlsFiles): string[] {
  return [
    '--client-cert-auth',
    `--trusted-ca-file=${tls.caFile}`,
    `--cert-file=${tls.certFile}`,
    `--key-file=${tls.keyFile}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${tls.caFile}`,
    `--peer-cert-file=${tls.certFile}`,
    `--peer-key-file=${tls.keyFile}`,
  ];
}

interface TlsProbe {
  ca: string;
  cert: string;
  key: string;
}

/** GET /health over https with a client certificate (fetch has no way to present one). */
function healthyTls(clientUrl: string, probe: TlsProbe): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${clientUrl}/health`, { ...probe, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        // /health answers a few bytes; anything longer is not etcd's answer.
        if (body.length < 4096) body += chunk;
      });
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 && (JSON.parse(body) as { health?: string }).health === 'true');
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
    });
    // Refused, reset or timed out while the member starts: not healthy yet.
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function healthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

async function waitExit(p: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(p)) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopMember(m: EtcdMember, signal: NodeJS.Signals): Promise<void> {
  if (exited(m.process)) return;
  try {
    process.kill(m.pid, signal);
  } catch {
    return; // already gone
  }
  if (!(await waitExit(m.process, 10_000))) {
    process.kill(m.pid, 'SIGKILL');
    await waitExit(m.process, 5_000);
  }
}

/** Starts an etcd cluster (default one member) and waits until every member reports healthy. */
/**
 * Free ports are found by binding port 0 and closing it, so another test may take one before etcd
 * binds it; a member that exits during start-up is therefore retried with new ports (twice).
 */
export async function startEtcdCluster(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdClusterOnce(options);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !/exited during start/.test(err.message)) throw err;
    }
  }
}

async function startEtcdClusterOnce(options: EtcdClusterOptions): Promise<EtcdCluster> {
  if (!existsSync(ETCD_BINARY)) throw new Error(`etcd binary not found at ${ETCD_BINARY} (install Debian package etcd-server)`);
  const count = options.members ?? 1;
  // Read before anything is made, so that a missing file leaves nothing behind.
  const scheme = options.tls ? 'https' : 'http';
  const probe: TlsProbe | undefined = options.tls && {
    ca: await readFile(options.tls.caFile, 'utf8'),
    cert: await readFile(options.tls.certFile, 'utf8'),
    key: await readFile(options.tls.keyFile, 'utf8'),
  };
  const isHealthy = (url: string): Promise<boolean> => (probe ? healthyTls(url, probe) : healthy(url));
  const root = await mkdtemp(join(tmpdir(), 'tessera-etcd-'));
  const token = `tessera-test-${randomBytes(4).toString('hex')}`;
  const specs: Array<{ name: string; clientPort: number; peerPort: number }> = [];
  const used = new Set<number>();
  for (let i = 0; i < count; i++) {
    const ports: number[] = [];
    while (ports.length < 2) {
      const p = await freePort();
      if (!used.has(p)) {
        used.add(p);
        ports.push(p);
      }
    }
    specs.push({ name: `m${i}`, clientPort: ports[0] as number, peerPort: ports[1] as number });
  }
  const initialCluster = specs.map((s) => `${s.name}=${scheme}://127.0.0.1:${s.peerPort}`).join(',');
  const members: EtcdMember[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(members.map((m) => stopMember(m, 'SIGTERM')));
    await rm(root, { recursive: true, force: true });
  };
  try {
    for (const s of specs) {
      const clientUrl = `${scheme}://127.0.0.1:${s.clientPort}`;
      const peerUrl = `${scheme}://127.0.0.1:${s.peerPort}`;
      const dataDir = join(root, s.name);
      const logFile = join(root, `${s.name}.log`);
      const log = createWriteStream(logFile);
      const child = spawn(
        ETCD_BINARY,
        [
          `--name=${s.name}`,
          `--data-dir=${dataDir}`,
          `--listen-client-urls=${clientUrl}`,
          `--advertise-client-urls=${clientUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=${initialCluster}`,
          '--initial-cluster-state=new',
          `--initial-cluster-token=${token}`,
          ...(options.tls ? tlsArgs(options.tls) : []),
          ...(options.extraArgs ?? []),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      if (child.pid === undefined) throw new Error(`could not start ${ETCD_BINARY}`);
      members.push({ name: s.name, clientUrl, peerUrl, dataDir, logFile, process: child, pid: child.pid });
    }
    const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
    for (const m of members) {
      while (!(await isHealthy(m.clientUrl))) {
        if (exited(m.process)) {
          const tail = (await readFile(m.logFile, 'utf8').catch(() => '')).slice(-2000);
          throw new Error(`etcd member ${m.name} exited during start (code ${m.process.exitCode}):\n${tail}`);
        }
        if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy at ${m.clientUrl} in time`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    members,
    endpoints: () => members.filter((m) => !exited(m.process)).map((m) => m.clientUrl),
    kill: (m) => stopMember(m, 'SIGKILL'),
    stop: stopAll,
  };
}
