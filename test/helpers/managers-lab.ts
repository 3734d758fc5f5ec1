// Real tsd managers for e2e tests, each in a network namespace of its own on a private underlay (a
// bridge in a switch namespace the lab makes; nothing in the host's namespace), with its root
// socket outside the namespace so the test (and tsctl) reach it. tsd and tsctl run either from
// dist/ (needs `npm run build`) or from the sources through tsx (no build: dist/ may be shared with
// other work on the machine). The lab removes its processes, namespaces, cgroups and files by name.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { cgroupDirsUnder } from './host-cgroups.js';

const run = promisify(execFile);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The underlay's /24; nodes are .1, .2, …; every lab has its own switch, so labs may share it. */
const UNDERLAY = '10.89.0';
const TSCTL_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 30_000;

export interface LabOptions {
  /** How many managers (mgr-1 … mgr-N). */
  count: number;
  /** 'dist': the built tsd and tsctl; 'source': daemon/main.ts and cli/main.ts through tsx. */
  from: 'dist' | 'source';
  /** Gives the switch's bridge an underlay address of its own (lab.switchAddress), for a service run there (etcd). */
  addressOnSwitch?: boolean;
  /** Flags for node itself, before tsd's script (e.g. --cpu-prof for a benchmark). */
  nodeArgs?: string[];
  /** tsd flags after the lab's own, so they override them (e.g. the default heartbeat settings). */
  tsdFlags?: string[];
}

export interface LabNode {
  name: string;
  netns: string;
  address: string;
  dataRoot: string;
  socket: string;
  /** tsd's pid (nsenter execs it); 0 when not running. */
  pid: number;
  exited: Promise<void>;
}

export interface TsctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Lab {
  nodes: LabNode[];
  /** The lab's scratch directory (the data roots are below it); removed by destroy(). */
  dir: string;
  /** The switch namespace holding the underlay bridge. */
  switchNetns: string;
  /** The switch's underlay address, with `addressOnSwitch`. */
  switchAddress: string | undefined;
  /** Starts tsd with `args` (a verb and its flags) and the node's own flags. */
  start(n: LabNode, args: string[]): Promise<void>;
  kill9(n: LabNode): Promise<void>;
  /** SIGTERM, then SIGKILL when tsd has not exited within 30 s. */
  stop(n: LabNode): Promise<void>;
  /** tsctl against the node's root socket; rejects with stderr on a non-zero exit. */
  tsctl(n: LabNode, ...args: string[]): Promise<string>;
  /** tsctl with `input` on its stdin; resolves with the exit code and output either way. */
  tsctlWithInput(n: LabNode, input: string, ...args: string[]): Promise<TsctlResult>;
  /** Runs a command inside the node's network namespace. */
  inNetns(n: LabNode, command: string, ...args: string[]): Promise<string>;
  log(n: LabNode): Promise<string>;
  destroy(): Promise<void>;
}

/** The node argument for tsd and tsctl: node itself with the tsx loader, or the built file. */
function entryArgs(from: LabOptions['from'], program: 'daemon' | 'cli'): string[] {
  if (from === 'source') return ['--import', 'tsx', join(REPO, program, 'main.ts')];
  return ['--enable-source-maps', join(REPO, 'dist', program, 'main.js')];
}

/** The flags `tsd cleanup` needs as well as tsd itself: what the node made on the host. */
function nodeFlags(n: LabNode, prefix: string, index: number): string[] {
  return [
    '--data-root',
    n.dataRoot,
    '--bridge',
    `${prefix}b`,
    '--subnet',
    `10.${160 + index}.9.0/24`,
    '--nft-table',
    prefix,
    '--cgroup-parent',
    `${prefix}/${n.name}`,
  ];
}

function serveFlags(n: LabNode): string[] {
  return [
    '--node-name',
    n.name,
    '--listen',
    `${n.address}:7420`,
    '--metrics-listen',
    `${n.address}:7421`,
    '--advertise-address',
    n.address,
    '--api-socket',
    n.socket,
    '--heartbeat-ms',
    '500',
    '--node-down-after-ms',
    '5000',
  ];
}

function runTsctl(from: LabOptions['from'], n: LabNode, input: string, args: string[]): Promise<TsctlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...entryArgs(from, 'cli'), '--server', n.socket, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), TSCTL_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

async function makeSwitch(sw: string, prefix: string, switchAddress: string | undefined): Promise<void> {
  await run('ip', ['netns', 'add', sw]);
  await run('ip', ['-n', sw, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', sw, 'link', 'add', `${prefix}u`, 'type', 'bridge']);
  if (switchAddress) await run('ip', ['-n', sw, 'addr', 'add', `${switchAddress}/24`, 'dev', `${prefix}u`]);
  await run('ip', ['-n', sw, 'link', 'set', `${prefix}u`, 'up']);
}

/** A namespace for node `i` with a veth to the switch's bridge, carrying the node's underlay address. */
async function plugNode(n: LabNode, sw: string, prefix: string, i: number): Promise<void> {
  await mkdir(n.dataRoot, { recursive: true });
  await run('ip', ['netns', 'add', n.netns]);
  await run('ip', ['-n', n.netns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', sw, 'link', 'add', `${prefix}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
  await run('ip', ['-n', sw, 'link', 'set', `${prefix}v${i}`, 'master', `${prefix}u`, 'up']);
  await run('ip', ['-n', n.netns, 'addr', 'add', `${n.address}/24`, 'dev', 'eth0']);
  await run('ip', ['-n', n.netns, 'link', 'set', 'eth0', 'up']);
}

export async function makeLab(options: LabOptions): Promise<Lab> {
  const { from } = options;
  const prefix = `tl${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const sw = `${prefix}-sw`;
  const nodes: LabNode[] = [];
  const lab: Lab = {
    nodes,
    dir,
    switchNetns: sw,
    switchAddress: options.addressOnSwitch ? `${UNDERLAY}.254` : undefined,
    async start(n, args) {
      const logFile = await open(join(n.dataRoot, 'tsd.log'), 'a', 0o600);
      const tsd = [
        process.execPath,
        ...(options.nodeArgs ?? []),
        ...entryArgs(from, 'daemon'),
        ...args,
        ...nodeFlags(n, prefix, nodes.indexOf(n)),
        ...serveFlags(n),
        ...(options.tsdFlags ?? []),
      ];
      const child = spawn('nsenter', [`--net=/run/netns/${n.netns}`, ...tsd], { cwd: REPO, stdio: ['ignore', logFile.fd, logFile.fd] });
      await logFile.close();
      n.pid = child.pid ?? 0;
      n.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    },
    async kill9(n) {
      if (!n.pid) return;
      try {
        process.kill(n.pid, 'SIGKILL');
      } catch {
        // Already gone.
        return;
      }
      await n.exited;
      n.pid = 0;
    },
    async stop(n) {
      if (!n.pid) return;
      try {
        process.kill(n.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      await Promise.race([n.exited.then(() => (n.pid = 0)), sleep(STOP_GRACE_MS)]);
      await lab.kill9(n);
    },
    async tsctl(n, ...args) {
      const res = await runTsctl(from, n, '', args);
      if (res.code !== 0) throw new Error(`tsctl ${args.join(' ')} exited with ${res.code}: ${res.stderr}`);
      return res.stdout;
    },
    tsctlWithInput: (n, input, ...args) => runTsctl(from, n, input, args),
    async inNetns(n, command, ...args) {
      const { stdout } = await run('ip', ['netns', 'exec', n.netns, command, ...args]);
      return stdout;
    },
    log: (n) => readFile(join(n.dataRoot, 'tsd.log'), 'utf8').catch(() => ''),
    async destroy() {
      for (const n of nodes) {
        await lab.stop(n);
        // Best effort: what a failed cleanup leaves goes with the namespaces and cgroups below.
        await run(process.execPath, [...entryArgs(from, 'daemon'), 'cleanup', ...nodeFlags(n, prefix, nodes.indexOf(n))], { cwd: REPO }).catch(() => undefined);
        await run('ip', ['netns', 'del', n.netns]).catch(() => undefined);
      }
      await run('ip', ['netns', 'del', sw]).catch(() => undefined);
      for (const cgroup of await cgroupDirsUnder(prefix)) await rmdir(cgroup).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await makeSwitch(sw, prefix, lab.switchAddress);
    for (let i = 1; i <= options.count; i++) {
      const n: LabNode = {
        name: `mgr-${i}`,
        netns: `${prefix}-n${i}`,
        address: `${UNDERLAY}.${i}`,
        dataRoot: join(dir, `mgr-${i}`),
        socket: `unix:${join(dir, `mgr-${i}.sock`)}`,
        pid: 0,
        exited: Promise.resolve(),
      };
      nodes.push(n);
      await plugNode(n, sw, prefix, i);
    }
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}
