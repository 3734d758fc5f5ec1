// Real Raft store members as separate OS processes (control-plane/raft/host/member-main.ts), for
// the real-process tests and the store benchmark. Two layouts:
//  - netns: every member in its own network namespace on a bridge in a switch namespace of its own
//    (nothing in the host's namespace); peers talk over that underlay, and the member's link can be
//    cut to partition it. Clients (this process) reach each member on a unix socket.
//  - loopback: members on 127.0.0.1 with distinct ports (the benchmark).
// Processes are killed by PID; namespaces, links and directories are removed by name in stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { runCommand } from '../../agent/network/exec.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { RaftPeerClient, type WireStatus } from '../../control-plane/raft/transport/peer-client.js';
import { copyLogs } from '../helpers/cluster-logs.js';
import { freePort } from '../helpers/free-port.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MEMBER_MAIN = join(REPO, 'control-plane', 'raft', 'host', 'member-main.ts');

export interface MemberProcess {
  id: string;
  /** Peer address (underlay or loopback). */
  address: string;
  /** Where this process's clients reach it (unix socket in netns mode, the peer address on loopback). */
  clientAddress: string;
  dataDir: string;
  logFile: string;
  netns: string;
  child: ChildProcess | undefined;
}

export interface RaftProcessCluster {
  members: MemberProcess[];
  root: string;
  clientAddresses(): string[];
  /** kill -9 by PID; waits for the exit. */
  kill(m: MemberProcess): Promise<void>;
  /** Starts the member again on its data directory. */
  restart(m: MemberProcess): Promise<void>;
  /** Takes the member's underlay link down / up (netns mode). */
  cut(m: MemberProcess): Promise<void>;
  heal(m: MemberProcess): Promise<void>;
  status(m: MemberProcess): Promise<WireStatus>;
  /** The member every reachable member agrees is leader. */
  leader(timeoutMs?: number, among?: MemberProcess[]): Promise<MemberProcess>;
  log(m: MemberProcess): Promise<string>;
  stop(): Promise<void>;
}

export interface RaftProcessOptions {
  members: number;
  netns: boolean;
  snapshotEvery?: number;
  tickMs?: number;
}

function exited(c: ChildProcess | undefined): boolean {
  return !c || c.exitCode !== null || c.signalCode !== null;
}

export async function startRaftProcesses(options: RaftProcessOptions): Promise<RaftProcessCluster> {
  const root = await mkdtemp(join(tmpdir(), 'tsr-'));
  const prefix = `rf${randomBytes(3).toString('hex')}`;
  const switchNs = `${prefix}-sw`;
  const bridge = `${prefix}br`;
  const members: MemberProcess[] = [];
  const clients = new Map<string, RaftPeerClient>();
  let bootstrapArg = '';
  const made: { switchNs: boolean; netns: string[] } = { switchNs: false, netns: [] };

  /** Removes everything even when a step fails, then reports what could not be removed (a leak). */
  const stopAll = async (): Promise<void> => {
    for (const c of clients.values()) c.close();
    await Promise.all(members.map((m) => killMember(m)));
    const leaks: string[] = [];
    const namespaces = made.switchNs ? [...made.netns, switchNs] : made.netns;
    for (const ns of namespaces) {
      await runCommand(['ip', 'netns', 'del', ns]).catch((err: unknown) => leaks.push(`netns ${ns}: ${String(err)}`));
    }
    // TESSERA_TEST_KEEP_LOG_DIR: copy the members' logs there first (for a failure or a stall to study).
    const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
    if (keep)
      await copyLogs(
        keep,
        members.map((m) => ({ path: m.logFile, name: `${basename(root)}-${m.id}.log` })),
      );
    await rm(root, { recursive: true, force: true });
    if (leaks.length > 0) throw new Error(`raft harness clean-up failed: ${leaks.join('; ')}`);
  };

  async function killMember(m: MemberProcess): Promise<void> {
    const c = m.child;
    if (exited(c) || !c?.pid) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    process.kill(c.pid, 'SIGKILL');
    await gone;
  }

  async function spawnMember(m: MemberProcess): Promise<void> {
    // A member killed with -9 leaves its unix socket behind; binding again needs it gone.
    if (m.clientAddress.startsWith('unix:')) await rm(m.clientAddress.slice('unix:'.length), { force: true });
    const args = [
      '--import',
      'tsx',
      MEMBER_MAIN,
      '--id',
      m.id,
      '--group',
      prefix,
      '--data-dir',
      m.dataDir,
      '--listen',
      m.address,
      '--bootstrap',
      bootstrapArg,
      '--snapshot-every',
      String(options.snapshotEvery ?? 10_000),
      '--tick-ms',
      String(options.tickMs ?? 100),
      ...(options.netns ? ['--client-socket', m.clientAddress] : []),
    ];
    const argv = options.netns ? ['ip', 'netns', 'exec', m.netns, process.execPath, ...args] : [process.execPath, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(m.logFile, { flags: 'a' });
    child.stderr.pipe(log);
    m.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`member ${m.id} did not start within 30 s`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`member ${m.id} exited with ${code} during start; see ${m.logFile}`));
      });
    });
  }

  const client = (m: MemberProcess): RaftPeerClient => {
    let c = clients.get(m.id);
    if (!c) {
      c = new RaftPeerClient(m.clientAddress, LOCAL_INSECURE);
      clients.set(m.id, c);
    }
    return c;
  };

  try {
    if (options.netns) {
      await runCommand(['ip', 'netns', 'add', switchNs]);
      made.switchNs = true;
      await runCommand(['ip', '-n', switchNs, 'link', 'add', bridge, 'type', 'bridge']);
      await runCommand(['ip', '-n', switchNs, 'link', 'set', bridge, 'up']);
    }
    for (let i = 0; i < options.members; i++) {
      const id = `m${i}`;
      const m: MemberProcess = {
        id,
        address: options.netns ? `10.77.0.${i + 1}:7430` : `127.0.0.1:${await freePort()}`,
        clientAddress: '',
        dataDir: join(root, id),
        logFile: join(root, `${id}.log`),
        netns: options.netns ? `${prefix}-${id}` : '',
        child: undefined,
      };
      m.clientAddress = options.netns ? `unix:${join(root, `${id}.sock`)}` : m.address;
      if (options.netns) {
        await runCommand(['ip', 'netns', 'add', m.netns]);
        made.netns.push(m.netns);
        await runCommand(['ip', '-n', m.netns, 'link', 'set', 'lo', 'up']);
        await runCommand(['ip', '-n', switchNs, 'link', 'add', `${prefix}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', m.netns]);
        await runCommand(['ip', '-n', switchNs, 'link', 'set', `${prefix}v${i}`, 'master', bridge, 'up']);
        await runCommand(['ip', '-n', m.netns, 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', 'eth0']);
        await runCommand(['ip', '-n', m.netns, 'link', 'set', 'eth0', 'up']);
      }
      members.push(m);
    }
    bootstrapArg = members.map((m) => `${m.id}=${m.address}`).join(',');
    await Promise.all(members.map((m) => spawnMember(m)));
  } catch (err) {
    await stopAll().catch((cleanupErr: unknown) => {
      throw new AggregateError([err, cleanupErr], `raft harness failed to start (${String(err)}), and its clean-up failed too`);
    });
    throw err;
  }

  const cluster: RaftProcessCluster = {
    members,
    root,
    clientAddresses: () => members.map((m) => m.clientAddress),
    kill: killMember,
    restart: spawnMember,
    cut: async (m) => {
      await runCommand(['ip', '-n', m.netns, 'link', 'set', 'eth0', 'down']);
    },
    heal: async (m) => {
      await runCommand(['ip', '-n', m.netns, 'link', 'set', 'eth0', 'up']);
    },
    status: (m) => client(m).status(1000),
    leader: async (timeoutMs = 15_000, among = members) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const alive = among.filter((m) => !exited(m.child));
        // A member that does not answer now (starting, cut off, electing) is simply not the leader yet.
        const statuses = await Promise.all(
          alive.map((m) =>
            client(m)
              .status(1000)
              .catch(() => undefined),
          ),
        );
        const leaders = statuses.filter((s): s is WireStatus => s?.role === 'leader');
        const top = leaders.sort((a, b) => b.term - a.term)[0];
        if (top) {
          const m = members.find((x) => x.id === top.id);
          if (m) return m;
        }
        if (Date.now() > deadline) throw new Error(`no leader within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    // A member that never started has no log yet; any other read error is the test's to see.
    log: (m) =>
      readFile(m.logFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return '';
        throw err;
      }),
    stop: stopAll,
  };
  return cluster;
}
