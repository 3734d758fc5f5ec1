// The steady write load of the renewal and rotation test: one write at a time at a fixed pace,
// spread round-robin over every manager's API (a follower forwards to the leader over mutual TLS,
// which is what renewal and rotation replace under it). A failed write is counted and retried,
// on the next manager, until it is acknowledged; afterwards every acknowledged write must be
// visible through every manager.
import { setTimeout as sleep } from 'node:timers/promises';

import type { ApiClient } from '../../cli/client.js';
import type { Config, Node, Service } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';

/** What one write does: a new Config object, a scale of the churn service, or a label on a node. */
export interface Write {
  seq: number;
  kind: 'config' | 'scale' | 'label';
  /** The replicas a scale sets; the sequence number otherwise. */
  value: number;
}

export interface WriterTarget {
  /** Stack of the Config objects and of the churn service. */
  stack: string;
  /** A service with replicas the writer scales between 1 and 2. */
  churnService: string;
  /** The node whose label `load-seq` the writer sets. */
  labelNode: string;
}

const RETRY_FOR_MS = 30_000;
const RETRY_PAUSE_MS = 250;
const KEPT_ERRORS = 8;

/** Every tenth write scales, every tenth (offset by five) labels, the rest create Config objects. */
export function plannedWrite(seq: number): Write {
  if (seq % 10 === 0) return { seq, kind: 'scale', value: 1 + ((seq / 10) % 2) };
  if (seq % 10 === 5) return { seq, kind: 'label', value: seq };
  return { seq, kind: 'config', value: seq };
}

export function configName(seq: number): string {
  return `w-${seq}`;
}

function configObject(target: WriterTarget, seq: number): Config {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Config',
    metadata: { name: configName(seq), stack: target.stack, labels: { seq: String(seq) } },
    spec: { data: Buffer.from(`write ${seq}\n`).toString('base64') },
  };
}

export class SteadyWriter {
  readonly acked: Write[] = [];
  /** Writes not acknowledged within RETRY_FOR_MS: each one is a failure of the product. */
  readonly gaveUp: Write[] = [];
  /** Failed attempts (each then retried). */
  failures = 0;
  /** The first few distinct errors, for the report. */
  readonly errors: string[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly clients: readonly ApiClient[],
    private readonly target: WriterTarget,
    private readonly everyMs: number,
  ) {
    if (clients.length === 0) throw new Error('the writer needs at least one API client');
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    for (let seq = 1; !this.stopped; seq++) {
      const began = Date.now();
      await this.writeUntilAcked(plannedWrite(seq));
      await sleep(Math.max(0, this.everyMs - (Date.now() - began)));
    }
  }

  private async writeUntilAcked(write: Write): Promise<void> {
    const deadline = Date.now() + RETRY_FOR_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.perform(write, this.clients[(write.seq + attempt) % this.clients.length]!);
        this.acked.push(write);
        return;
      } catch (err) {
        this.failures++;
        this.keepError(`write ${write.seq} (${write.kind}): ${(err as Error).message}`);
        if (Date.now() > deadline) {
          this.gaveUp.push(write);
          return;
        }
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  private keepError(message: string): void {
    const shape = message.replace(/\d+/g, 'N');
    if (this.errors.length < KEPT_ERRORS && !this.errors.some((e) => e.replace(/\d+/g, 'N') === shape)) this.errors.push(message);
  }

  private async perform(write: Write, client: ApiClient): Promise<void> {
    const { stack, churnService, labelNode } = this.target;
    if (write.kind === 'scale') {
      await client.scale({ ref: { kind: 'Service', stack, name: churnService }, replicas: write.value });
    } else if (write.kind === 'label') {
      await client.updateNode({ name: labelNode, addLabels: { 'load-seq': String(write.value) } });
    } else {
      const { results } = await client.apply({ objectsJson: [JSON.stringify(configObject(this.target, write.seq))] });
      if (results.length !== 1) throw new Error(`apply of ${configName(write.seq)} answered ${results.length} results`);
    }
  }
}

function lastOfKind(writes: readonly Write[], kind: Write['kind']): Write | undefined {
  for (let i = writes.length - 1; i >= 0; i--) if (writes[i]!.kind === kind) return writes[i];
  return undefined;
}

/** What of `acked` one manager does not show: missing or wrong Config objects, a wrong scale, a wrong label. */
/**
 * `loadRunning`: the writer is still going, so one more write than `acked` may already have
 * landed: a label (values only grow) may be newer, and a scale may show the next value.
 */
export async function missingWrites(client: ApiClient, target: WriterTarget, acked: readonly Write[], loadRunning = false): Promise<string[]> {
  const configs = new Map(
    (await client.list({ kind: 'Config', stack: target.stack })).objectsJson.map((j) => {
      const config = JSON.parse(j) as Config;
      return [config.metadata.name, config.metadata.labels?.seq] as const;
    }),
  );
  const missing = acked
    .filter((w) => w.kind === 'config' && configs.get(configName(w.seq)) !== String(w.seq))
    .map((w) => `config ${configName(w.seq)}: ${configs.has(configName(w.seq)) ? `label seq=${configs.get(configName(w.seq))}` : 'absent'}`);
  const lastScale = lastOfKind(acked, 'scale');
  if (lastScale) {
    const services = (await client.list({ kind: 'Service', stack: target.stack })).objectsJson.map((j) => JSON.parse(j) as Service);
    const replicas = services.find((s) => s.metadata.name === target.churnService)?.spec.replicas;
    const nextValue = 1 + (((lastScale.seq + 10) / 10) % 2);
    const acceptable = loadRunning ? [lastScale.value, nextValue] : [lastScale.value];
    if (replicas === undefined || !acceptable.includes(replicas))
      missing.push(`scale ${lastScale.seq}: ${target.churnService} has ${replicas} replicas, not ${lastScale.value}`);
  }
  const lastLabel = lastOfKind(acked, 'label');
  if (lastLabel) {
    const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
    const label = nodes.find((n) => n.metadata.name === target.labelNode)?.spec.labels?.['load-seq'];
    const landed = Number(label);
    if (loadRunning ? !(landed >= lastLabel.value) : label !== String(lastLabel.value))
      missing.push(`label ${lastLabel.seq}: ${target.labelNode} has load-seq=${label}`);
  }
  return missing;
}

/**
 * Waits (a follower may lag the leader by a moment) until every manager shows every acknowledged
 * write; throws with what is still missing where.
 */
export async function assertNoLostWrite(
  clients: ReadonlyMap<string, ApiClient>,
  target: WriterTarget,
  acked: readonly Write[],
  loadRunning = false,
): Promise<void> {
  const lost = new Map<string, string[]>();
  for (const [manager, client] of clients) {
    await eventually(
      () => `${manager} to show all ${acked.length} acknowledged writes; missing: ${(lost.get(manager) ?? []).slice(0, 10).join('; ')}`,
      async () => {
        const missing = await missingWrites(client, target, acked, loadRunning);
        lost.set(manager, missing);
        return missing.length === 0;
      },
      15_000,
      500,
    );
  }
}
