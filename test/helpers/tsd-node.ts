// Starts a real tsd in a network namespace of the test's own, so its bridge, veths and nftables
// rules never touch the host's namespace, and removes all of it afterwards. The API is served on
// a unix socket, which the test process reaches from outside the namespace.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroupDirsUnder } from './host-cgroups.js';

const run = promisify(execFile);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsdMain = join(repoRoot, 'dist', 'daemon', 'main.js');
/** tsctl as built (dist/), for tests and benchmarks that run the real CLI process. */
export const tsctlMain = join(repoRoot, 'dist', 'cli', 'main.js');
/** Inside the node's own network namespace any port is free, so the metrics port is fixed. */
export const METRICS_PORT = 9323;

export interface TestNode {
  prefix: string;
  netns: string;
  dataRoot: string;
  server: string;
  cgroupParent: string;
  bridge: string;
  subnet: string;
  gateway: string;
  readonly pid: number;
  /** Runs tsctl against this node; rejects with stderr when it exits non-zero. */
  tsctl(...args: string[]): Promise<string>;
  /** Runs a command inside the node's network namespace. */
  inNetns(command: string, ...args: string[]): Promise<string>;
  log(): Promise<string>;
  /** kill -9 of tsd (its containers stay, kept by their shims). */
  killDaemon(): Promise<void>;
  /** Starts tsd again with the same settings (plus these flags) and waits until it is ready. */
  restartDaemon(extraFlags?: string[]): Promise<void>;
  /** SIGTERM tsd and wait for it (it removes its containers and network set-up, unless run with --live-restore). */
  stopDaemon(): Promise<void>;
  destroy(): Promise<void>;
}

export interface TestNodeOptions {
  subnetOctet?: number;
  /** Flags for node itself, before tsd's script (e.g. --trace-gc-nvp for a benchmark). */
  nodeFlags?: string[];
}

export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  const prefix = `tse${id}`;
  const netns = `${prefix}-ns`;
  const dataRoot = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const server = `unix:${join(dataRoot, 'api.sock')}`;
  const cgroupParent = `${prefix}`;
  const bridge = `${prefix}br`.slice(0, 15);
  const octet = options.subnetOctet ?? 100 + Math.floor(Math.random() * 100);
  const subnet = `10.${octet}.7.0/24`;
  const gateway = `10.${octet}.7.1`;

  await run('ip', ['netns', 'add', netns]);
  await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);

  const logPath = join(dataRoot, 'tsd.log');
  let child: ChildProcess;
  let exited: Promise<void>;
  let daemonRunning = false;
  const spawnDaemon = async (extraFlags: string[] = []) => {
    const logFile = await open(logPath, 'a');
    // nsenter rather than `ip netns exec`: the latter remounts /sys for the namespace, which hides
    // the cgroup hierarchies under /sys/fs/cgroup from tsd.
    child = spawn(
      'nsenter',
      [
        `--net=/run/netns/${netns}`,
        process.execPath,
        '--enable-source-maps',
        ...(options.nodeFlags ?? []),
        tsdMain,
        'run',
        '--data-root',
        dataRoot,
        // The mutual-TLS port inside the node's own namespace; tests talk to the root-only socket.
        '--listen',
        '127.0.0.1:7420',
        '--api-socket',
        server,
        '--metrics-listen',
        `127.0.0.1:${METRICS_PORT}`,
        '--node-name',
        'node1',
        '--bridge',
        bridge,
        '--subnet',
        subnet,
        '--nft-table',
        prefix,
        '--cgroup-parent',
        cgroupParent,
        // tsd's default is the machine's own address, which this namespace does not have.
        '--advertise-address',
        '127.0.0.1',
        '--heartbeat-ms',
        '500',
        '--node-down-after-ms',
        '3000',
        ...extraFlags,
      ],
      { stdio: ['ignore', logFile.fd, logFile.fd] },
    );
    await logFile.close();
    daemonRunning = true;
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    void exited.then(() => (daemonRunning = false));
  };
  await spawnDaemon();

  const node: TestNode = {
    prefix,
    netns,
    dataRoot,
    server,
    cgroupParent,
    bridge,
    subnet,
    gateway,
    get pid() {
      return child.pid ?? 0;
    },
    async tsctl(...args: string[]) {
      try {
        const { stdout } = await run(process.execPath, [tsctlMain, '--server', server, ...args], { maxBuffer: 16 * 1024 * 1024 });
        return stdout;
      } catch (err) {
        const e = err as Error & { stderr?: string; stdout?: string };
        throw new Error(`tsctl ${args.join(' ')} failed: ${e.stderr || e.message}${e.stdout ? `\nstdout: ${e.stdout}` : ''}`);
      }
    },
    async inNetns(command: string, ...args: string[]) {
      const { stdout } = await run('ip', ['netns', 'exec', netns, command, ...args], { maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    },
    log: () => readFile(logPath, 'utf8').catch(() => ''),
    async killDaemon() {
      if (!daemonRunning) return;
      child.kill('SIGKILL');
      await exited;
    },
    async restartDaemon(extraFlags: string[] = []) {
      if (daemonRunning) throw new Error('tsd is still running');
      await spawnDaemon(extraFlags);
      await waitReady();
    },
    async stopDaemon() {
      if (!daemonRunning) return;
      // nsenter execs node, so this PID is tsd itself.
      child.kill('SIGTERM');
      const timeout = sleep(60_000).then(() => 'timeout' as const);
      if ((await Promise.race([exited.then(() => 'exited' as const), timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async destroy() {
      await node.stopDaemon();
      await run(process.execPath, [
        tsdMain,
        'cleanup',
        '--data-root',
        dataRoot,
        '--bridge',
        bridge,
        '--subnet',
        subnet,
        '--nft-table',
        prefix,
        '--cgroup-parent',
        cgroupParent,
      ]).catch(() => {});
      await run('ip', ['netns', 'delete', netns]).catch(() => {});
      await removeCgroupTree(cgroupParent);
      await rm(dataRoot, { recursive: true, force: true });
    },
  };

  // Wait until the API answers and the node is ready.
  async function waitReady(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!daemonRunning) throw new Error(`tsd exited during start-up:\n${await node.log()}`);
      try {
        const out = await node.tsctl('get', 'nodes', '-o', 'json');
        if (out.includes('"ready"')) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`tsd did not become ready within 60 s:\n${await node.log()}`);
      await sleep(200);
    }
  }
  try {
    await waitReady();
  } catch (err) {
    await node.destroy();
    throw err;
  }
  return node;
}

/** Every cgroup directory named by the parent in any hierarchy (v1 or v2), deepest first; tests use this to prove nothing is left. */
export async function listCgroups(parent: string): Promise<string[]> {
  return cgroupDirsUnder(parent);
}

async function removeCgroupTree(parent: string): Promise<void> {
  for (const dir of await listCgroups(parent)) await rmdir(dir).catch(() => {});
}
