// A local netns cluster brought up by the built tsctl (`tsctl cluster up`, as a user runs it), with
// a context file, data root, netns prefix and underlay octet of its own so that it stays apart from
// other tests; tsctl runs with that context only (never a server from the caller's environment).
// Used by the e2e tests and the benchmark of tsctl following the cluster (issue 20). Needs
// `npm run build` (bin/tsctl runs dist/).
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { CliContext } from '../../cli/context.js';
import { destroyNetnsCluster, type ClusterNodeState, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';

const run = promisify(execFile);
export const TSCTL = join(process.cwd(), 'bin', 'tsctl');

export interface TsctlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface MemberRow {
  id: string;
  role: string;
}

/** The rows of `tsctl cluster members` (NAME ADDRESS ROLE ...). Pure. */
export function parseMembers(out: string): MemberRow[] {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [id, , role] = line.split(/\s+/);
      return { id: id!, role: role! };
    });
}

/** A 172.31.X.0/24 no address of this machine is in, X in [from, from + count) (tests keep apart by range). */
export async function freeUnderlayOctet(from = 100, count = 80): Promise<number> {
  const used = (await run('ip', ['-4', '-o', 'addr', 'show'])).stdout;
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = from + Math.floor(Math.random() * count);
    if (!used.includes(`172.31.${candidate}.`)) return candidate;
  }
  throw new Error(`no free 172.31.X.0/24 underlay among ${from}-${from + count - 1}`);
}

/** A child's output as lines, collected as they come. */
export interface CollectedOutput {
  lines: string[];
  stderr(): string;
}

export function collectLines(child: ChildProcess): CollectedOutput {
  const lines: string[] = [];
  let stderr = '';
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { lines, stderr: () => stderr };
}

export class TsctlCluster {
  readonly contextFile: string;

  private constructor(
    readonly workDir: string,
    readonly octet: number,
    readonly prefix: string,
  ) {
    this.contextFile = join(workDir, 'context.json');
  }

  /** A scratch directory and a free underlay; nothing is started yet (see up). */
  static async prepare(letter: string): Promise<TsctlCluster> {
    const workDir = await mkdtemp(join(tmpdir(), 'tessera-tsctl-cluster-'));
    const prefix = `${letter}${process.pid.toString(36).slice(-3)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
    return new TsctlCluster(workDir, await freeUnderlayOctet(), prefix);
  }

  /** tsctl's environment: this cluster's context (or `context`), no TESSERA_SERVER. */
  env(context = this.contextFile): NodeJS.ProcessEnv {
    const vars: NodeJS.ProcessEnv = { ...process.env, TESSERA_CONTEXT: context };
    delete vars['TESSERA_SERVER'];
    return vars;
  }

  /** Runs tsctl to its end (the timeout only keeps a hang from stalling the suite). */
  async tsctl(args: string[], context = this.contextFile): Promise<TsctlResult> {
    try {
      const { stdout, stderr } = await run(TSCTL, args, { env: this.env(context), timeout: 120_000 });
      return { stdout, stderr, code: 0 };
    } catch (err) {
      const failed = err as Error & { stdout?: string; stderr?: string; code?: number };
      return { stdout: failed.stdout ?? '', stderr: failed.stderr ?? failed.message, code: typeof failed.code === 'number' ? failed.code : 1 };
    }
  }

  /** `tsctl cluster up --nodes N --managers M` with this cluster's data root, prefix and underlay, and `extra` flags. */
  up(nodes: number, managers: number, extra: string[] = []): Promise<TsctlResult> {
    const args = ['cluster', 'up', '--nodes', String(nodes), '--managers', String(managers), '--data-root', join(this.workDir, 'data')];
    return this.tsctl([...args, '--netns-prefix', this.prefix, '--underlay-octet', String(this.octet), ...extra]);
  }

  async readContext(): Promise<CliContext | undefined> {
    const text = await readFile(this.contextFile, 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as CliContext);
  }

  async state(): Promise<NetnsClusterState> {
    const context = await this.readContext();
    if (!context?.netns) throw new Error('no netns cluster in the context');
    return context.netns;
  }

  async members(): Promise<MemberRow[]> {
    return parseMembers((await this.tsctl(['cluster', 'members'])).stdout);
  }

  /** The Raft leader's node, as `tsctl cluster members` says. */
  async leader(): Promise<ClusterNodeState> {
    const members = await this.members();
    const name = members.find((m) => m.role === 'leader')?.id;
    const node = (await this.state()).nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no leader in ${JSON.stringify(members)}`);
    return node;
  }

  /** Makes the context name `node`'s socket first, so that tsctl asks it before the others. */
  async askFirst(node: ClusterNodeState): Promise<void> {
    const context = await this.readContext();
    if (!context || node.apiSocket === undefined) throw new Error(`no context, or ${node.name} is no manager`);
    await writeFile(this.contextFile, JSON.stringify({ ...context, server: node.apiSocket }), { mode: 0o600 });
  }

  /** Removes whatever the cluster left (also after a failed test), then the scratch directory. */
  async destroy(): Promise<void> {
    const state = (await this.readContext())?.netns;
    if (state) await destroyNetnsCluster(state);
    await rm(this.workDir, { recursive: true, force: true });
  }
}
