// Hundreds of hollow nodes in one process. Each is a real cluster member: it joins with a worker
// token through the same call `tsd join` makes (daemon/identity/bootstrap.ts requestJoin: the
// manager's chain checked against the token's pin, its own key and CSR, NodeCA.Join), holds its own
// issued certificate, and runs the real agent session (agent/session/agent-session.ts) over the
// cluster's mutual TLS: its own gRPC channel and stream, register, heartbeats, the full assignment
// set and deltas, batched status reports, reconnection to another manager. What runs the tasks is a
// HollowWorker (hollow-worker.ts): only the containers are simulated.
import { AgentSession } from '../../agent/session/agent-session.js';
import type { JoinToken } from '../../common/identity/join-token.js';
import { TlsIdentity } from '../../common/transport/tls-identity.js';
import { requestJoin } from '../../daemon/identity/bootstrap.js';
import { HollowWorker, type HollowEvent, type SimulatedContainers } from './hollow-worker.js';

export interface FleetOptions {
  /** The managers' host:port; node i joins and first dials managers[i % n]. */
  managers: string[];
  token: JoinToken;
  /** Node names are `<prefix>-<index>` (a DNS label). */
  namePrefix: string;
  count: number;
  /**
   * Two octets: node i advertises <prefix>.<i / 250>.<i % 250 + 1>. Every node connects from the
   * fleet's one address, but the managers key overlay peers by the advertised one, which must be
   * a node's own; nothing dials it (a hollow node serves no image blobs).
   */
  addressPrefix: string;
  /** Joins (and session starts) in flight at once. */
  concurrency: number;
  sim: SimulatedContainers;
  onEvent: (event: HollowEvent) => void;
  log: (message: string) => void;
}

export interface HollowNode {
  name: string;
  session: AgentSession;
  worker: HollowWorker;
}

/** Runs `work` over `items` with at most `limit` in flight; rejects with the first failure. */
async function bounded<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  return results;
}

function addressOf(prefix: string, i: number): string {
  return `${prefix}.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

export class HollowFleet {
  readonly nodes: HollowNode[] = [];
  /** Milliseconds the joins took, and then the sessions until every node was registered. */
  joinMs = 0;
  connectMs = 0;

  constructor(private readonly options: FleetOptions) {}

  /** Joins every node, then starts every session and waits until each is registered with the leader. */
  async start(): Promise<void> {
    const { options } = this;
    const names = Array.from({ length: options.count }, (_, i) => `${options.namePrefix}-${String(i).padStart(4, '0')}`);
    const joinStarted = performance.now();
    const identities = await bounded(names, options.concurrency, (name, i) =>
      requestJoin(options.managers[i % options.managers.length]!, options.token, name, addressOf(options.addressPrefix, i)).catch((err: Error) => {
        throw new Error(`hollow node ${name} could not join: ${err.message}`);
      }),
    );
    this.joinMs = performance.now() - joinStarted;
    const connectStarted = performance.now();
    await bounded(names, options.concurrency, async (name, i) => {
      const { material, subject } = identities[i]!;
      const first = i % options.managers.length;
      const managers = [...options.managers.slice(first), ...options.managers.slice(0, first)];
      let worker: HollowWorker | undefined;
      const session = new AgentSession({
        managers,
        nodeName: name,
        description: {
          hostname: name,
          address: addressOf(options.addressPrefix, i),
          // Plenty, so that only the scheduler's own rules (spread) decide.
          memoryBytes: 64 * 2 ** 30,
          nanoCpus: 32e9,
          engineLabels: { 'tessera.io/hollow': 'true' },
        },
        security: { mode: 'mtls', identity: new TlsIdentity(material), expected: { kind: 'cluster-node', clusterId: subject.o, role: 'manager' } },
        onAssignments: (tasks) => worker?.reconcile(tasks),
        log: (message) => options.log(`${name}: ${message}`),
      });
      worker = new HollowWorker(name, (task, status) => session.report(task, status), options.sim, options.onEvent, options.log);
      this.nodes.push({ name, session, worker });
      session.start();
      await session.whenConnected();
    });
    this.connectMs = performance.now() - connectStarted;
  }

  runningCount(): number {
    return this.nodes.reduce((n, node) => n + node.worker.runningCount(), 0);
  }

  stop(): void {
    for (const node of this.nodes) {
      node.worker.stopAll();
      node.session.stop();
    }
  }
}
