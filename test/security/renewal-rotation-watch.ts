// What the renewal and rotation test watches while the load runs: each node's certificate files
// (a renewal shows as a new serial in node.crt), the nodes' readiness and the long-running tasks,
// sampled once a second so that a short blip (a node down for two seconds, a task replaced and
// back) is seen, not only the end state.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { ApiClient } from '../../cli/client.js';
import type { ClusterNodeState } from '../../cli/local-cluster/netns-cluster.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { parseCertificate, splitPemCertificates } from '../../common/identity/x509.js';
import type { Node, Task } from '../../common/resources/types.js';

export interface NodeCertFiles {
  /** node.crt split into its certificates, leaf first. */
  chainPems: string[];
  /** roots.pem split into its certificates. */
  rootPems: string[];
}

export async function readNodeCertFiles(node: ClusterNodeState): Promise<NodeCertFiles> {
  const dir = join(node.dataRoot, 'certs');
  const [chain, roots] = await Promise.all([readFile(join(dir, 'node.crt'), 'utf8'), readFile(join(dir, 'roots.pem'), 'utf8')]);
  const chainPems = splitPemCertificates(`${node.name} node.crt`, chain);
  if (chainPems.length === 0) throw new Error(`${node.name}: node.crt holds no certificate`);
  return { chainPems, rootPems: splitPemCertificates(`${node.name} roots.pem`, roots) };
}

/** The serial of the node's leaf certificate (the first PEM block of node.crt). */
export async function leafSerial(node: ClusterNodeState): Promise<string> {
  const chain = await readFile(join(node.dataRoot, 'certs', 'node.crt'), 'utf8');
  const leaf = splitPemCertificates(`${node.name} node.crt`, chain)[0];
  if (leaf === undefined) throw new Error(`${node.name}: node.crt holds no certificate`);
  return parseIdentity(leaf).serial;
}

/** The same certificate, whatever the PEM's line breaks. */
export function samePem(a: string, b: string): boolean {
  const body = (pem: string): string => pem.replace(/-----[A-Z ]+-----|\s/g, '');
  return body(a) === body(b);
}

/** Whether `leafPem` names `rootPem`'s subject as its issuer and carries a signature that root's key verifies. */
export async function issuedByRoot(leafPem: string, rootPem: string): Promise<boolean> {
  const leaf = parseCertificate('node certificate', leafPem);
  const root = parseCertificate('root certificate', rootPem);
  return leaf.issuer === root.subject && (await leaf.verify({ publicKey: root.publicKey, signatureOnly: true }));
}

/** What identifies a running task's container: replaced or restarted, one of these changes. */
export interface TaskFingerprint {
  uid: string;
  node: string;
  containerId: string;
  pid: number;
  startedAt: string;
}

export function fingerprintOf(task: Task): TaskFingerprint {
  return {
    uid: task.metadata.uid ?? '',
    node: task.nodeName ?? '',
    containerId: task.status.containerId ?? '',
    pid: task.status.pid ?? 0,
    startedAt: task.status.startedAt ?? '',
  };
}

/** How the service's tasks differ from the baseline: any task added, gone, stopped or with another container. */
export function taskDifferences(baseline: ReadonlyMap<string, TaskFingerprint>, tasks: readonly Task[]): string[] {
  const differences: string[] = [];
  const seen = new Set<string>();
  for (const task of tasks) {
    const name = task.metadata.name;
    seen.add(name);
    const before = baseline.get(name);
    if (!before) {
      differences.push(`new task ${name} on ${task.nodeName ?? '-'} (${task.status.state})`);
      continue;
    }
    if (task.desiredState !== 'running' || task.status.state !== 'running') {
      differences.push(`task ${name} is ${task.status.state} (desired ${task.desiredState}): ${task.status.message ?? task.status.error ?? ''}`);
    }
    const now = fingerprintOf(task);
    for (const key of Object.keys(before) as Array<keyof TaskFingerprint>) {
      if (now[key] !== before[key]) differences.push(`task ${name}: ${key} ${before[key]} -> ${now[key]}`);
    }
  }
  for (const name of baseline.keys()) if (!seen.has(name)) differences.push(`task ${name} is gone`);
  return differences;
}

export interface Observation {
  /** Milliseconds since the watch started. */
  atMs: number;
  what: string;
}

export interface WatchTarget {
  nodes: () => readonly ClusterNodeState[];
  api: ApiClient;
  stack: string;
  service: string;
  baseline: ReadonlyMap<string, TaskFingerprint>;
}

const TICK_MS = 1000;
/** A read through the API may fail for a moment (a leader election); this many in a row is a finding. */
const MAX_READ_ERRORS_IN_A_ROW = 5;

export class ClusterWatch {
  /** Renewal times per node (ms since the watch started), counted since the last resetRenewals. */
  readonly renewals = new Map<string, number[]>();
  readonly notReady: Observation[] = [];
  readonly taskChanges: Observation[] = [];
  readonly readErrors: Observation[] = [];
  private readonly serials = new Map<string, string>();
  private readonly startedAt = Date.now();
  private readonly seen = new Set<string>();
  private errorsInARow = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly target: WatchTarget) {}

  elapsedMs(): number {
    return Date.now() - this.startedAt;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  resetRenewals(): void {
    this.renewals.clear();
  }

  renewalCount(node: string): number {
    return this.renewals.get(node)?.length ?? 0;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.sampleCertificates();
      await this.sampleApi();
      await sleep(TICK_MS);
    }
  }

  private async sampleCertificates(): Promise<void> {
    for (const node of this.target.nodes()) {
      // A node's files are replaced by rename, so a read sees the old or the new file, never half.
      const serial = await leafSerial(node).catch((err: Error) => this.note(this.readErrors, `${node.name} node.crt: ${err.message}`));
      if (serial === undefined) continue;
      const before = this.serials.get(node.name);
      this.serials.set(node.name, serial);
      if (before !== undefined && before !== serial) this.renewals.set(node.name, [...(this.renewals.get(node.name) ?? []), this.elapsedMs()]);
    }
  }

  private async sampleApi(): Promise<void> {
    const { api, stack, service, baseline } = this.target;
    try {
      const [nodes, tasks] = await Promise.all([api.list({ kind: 'Node', allStacks: true }, 5000), api.list({ kind: 'Task', stack, service }, 5000)]);
      this.errorsInARow = 0;
      for (const node of nodes.objectsJson.map((j) => JSON.parse(j) as Node)) {
        if (node.status.state !== 'ready') this.note(this.notReady, `${node.metadata.name} ${node.status.state}: ${node.status.message ?? ''}`);
      }
      for (const difference of taskDifferences(
        baseline,
        tasks.objectsJson.map((j) => JSON.parse(j) as Task),
      ))
        this.note(this.taskChanges, difference);
    } catch (err) {
      this.errorsInARow++;
      this.note(this.readErrors, `API read: ${(err as Error).message}`);
      if (this.errorsInARow === MAX_READ_ERRORS_IN_A_ROW) this.note(this.notReady, `the API failed ${MAX_READ_ERRORS_IN_A_ROW} reads in a row`);
    }
  }

  /** Records an observation once per distinct text (a condition lasting ten seconds is one finding, with its first time). */
  private note(list: Observation[], what: string): undefined {
    if (!this.seen.has(what)) {
      this.seen.add(what);
      list.push({ atMs: this.elapsedMs(), what });
    }
    return undefined;
  }
}
