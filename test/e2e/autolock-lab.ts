// Real tsd managers for the autolock tests, each in a network namespace of its own on a private
// underlay (a bridge in a switch namespace), with its root socket outside the namespace so the test
// (and tsctl) reach it. tsd and tsctl run from the sources through tsx, so these tests need no
// `npm run build` (dist/ is shared with other work on this machine).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { cgroupDirsUnder } from '../helpers/host-cgroups.js';

const run = promisify(execFile);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSD = join(REPO, 'daemon', 'main.ts');
const TSCTL = join(REPO, 'cli', 'main.ts');
const FROM_SOURCE = ['--import', 'tsx'];

export interface LabNode {
  name: string;
  netns: string;
  address: string;
  dataRoot: string;
  socket: string;
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
  start(n: LabNode, args: string[]): Promise<void>;
  kill9(n: LabNode): Promise<void>;
  /** tsctl against the node's root socket; rejects with stderr on a non-zero exit. */
  tsctl(n: LabNode, ...args: string[]): Promise<string>;
  /** tsctl with `input` on its stdin; resolves with the exit code and output either way. */
  tsctlWithInput(n: LabNode, input: string, ...args: string[]): Promise<TsctlResult>;
  /** Runs a command inside the node's network namespace. */
  inNetns(n: LabNode, command: string, ...args: string[]): Promise<string>;
  log(n: LabNode): Promise<string>;
  destroy(): Promise<void>;
}

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

export async function makeLab(count: number): Promise<Lab> {
  const prefix = `ta${randomBytes(3).toString('hex')}`;
  const base = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const sw = `${prefix}-sw`;
  const nodes: LabNode[] = [];
  const lab: Lab = {
    nodes,
    async start(n, args) {
      const logFile = await open(join(n.dataRoot, 'tsd.log'), 'a', 0o600);
      const child = spawn(
        'nsenter',
        [
          `--net=/run/netns/${n.netns}`,
          process.execPath,
          ...FROM_SOURCE,
          TSD,
          ...args,
          ...nodeFlags(n, prefix, nodes.indexOf(n)),
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
        ],
        { cwd: REPO, stdio: ['ignore', logFile.fd, logFile.fd] },
      );
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
    async tsctl(n, ...args) {
      const res = await lab.tsctlWithInput(n, '', ...args);
      if (res.code !== 0) throw new Error(`tsctl ${args.join(' ')} exited with ${res.code}: ${res.stderr}`);
      return res.stdout;
    },
    tsctlWithInput(n, input, ...args) {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [...FROM_SOURCE, TSCTL, '--server', n.socket, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.once('error', reject);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? -1, stdout, stderr });
        });
        child.stdin.end(input);
      });
    },
    async inNetns(n, command, ...args) {
      const { stdout } = await run('ip', ['netns', 'exec', n.netns, command, ...args]);
      return stdout;
    },
    log: (n) => readFile(join(n.dataRoot, 'tsd.log'), 'utf8').catch(() => ''),
    async destroy() {
      for (const n of nodes) {
        if (n.pid) {
          try {
            process.kill(n.pid, 'SIGTERM');
          } catch {
            // Already gone.
          }
          await Promise.race([n.exited, sleep(30_000)]);
          if (n.pid) await lab.kill9(n);
        }
        await run(process.execPath, [...FROM_SOURCE, TSD, 'cleanup', ...nodeFlags(n, prefix, nodes.indexOf(n))], { cwd: REPO }).catch(() => undefined);
        await run('ip', ['netns', 'del', n.netns]).catch(() => undefined);
      }
      await run('ip', ['netns', 'del', sw]).catch(() => undefined);
      for (const dir of await cgroupDirsUnder(prefix)) await rmdir(dir).catch(() => undefined);
      await rm(base, { recursive: true, force: true });
    },
  };
  try {
    await run('ip', ['netns', 'add', sw]);
    await run('ip', ['-n', sw, 'link', 'add', `${prefix}u`, 'type', 'bridge']);
    await run('ip', ['-n', sw, 'link', 'set', `${prefix}u`, 'up']);
    for (let i = 1; i <= count; i++) {
      const n: LabNode = {
        name: `mgr-${i}`,
        netns: `${prefix}-n${i}`,
        address: `10.89.0.${i}`,
        dataRoot: join(base, `mgr-${i}`),
        socket: `unix:${join(base, `mgr-${i}.sock`)}`,
        pid: 0,
        exited: Promise.resolve(),
      };
      nodes.push(n);
      await run('mkdir', ['-p', n.dataRoot]);
      await run('ip', ['netns', 'add', n.netns]);
      await run('ip', ['-n', n.netns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', sw, 'link', 'add', `${prefix}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
      await run('ip', ['-n', sw, 'link', 'set', `${prefix}v${i}`, 'master', `${prefix}u`, 'up']);
      await run('ip', ['-n', n.netns, 'addr', 'add', `${n.address}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', n.netns, 'link', 'set', 'eth0', 'up']);
    }
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}
