// Three real tsd managers (separate processes, each in a network namespace of its own on the lab's
// private underlay: test/helpers/managers-lab.ts) drained so they take no tasks, and processes of
// hollow nodes (fleet-process.ts) that run in the lab's switch namespace, where the underlay is
// reachable, and join with a worker token. Used by `npm run bench:scale` and the hollow-node e2e test.
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { ApiClient } from '../../cli/client.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { API_VERSION, type Network, type Service } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';
import { makeLab, type Lab, type LabNode, type LabOptions } from '../helpers/managers-lab.js';
import { startFleetProcess, type FleetProcess } from './fleet-process.js';
import type { SimSettings } from './fleet-protocol.js';
import type { HollowView } from './hollow-view.js';
import { parseMembers } from '../helpers/tsctl-cluster.js';

const API_PORT = 7420;
const START_TIMEOUT_MS = 120_000;
/** Apply requests carry at most this many services (a request is capped at 4 MiB). */
const APPLY_CHUNK = 200;

export interface ScaleClusterOptions {
  from: LabOptions['from'];
  nodeArgs?: string[];
  tsdFlags?: string[];
  log?: (message: string) => void;
}

export interface Member {
  id: string;
  role: string;
}

export interface ScaleCluster {
  lab: Lab;
  managers: LabNode[];
  /** host:port of each manager's mutual-TLS server. */
  addresses: string[];
  /** The API over the managers' root sockets, going to the next manager when one is down. */
  api: ApiClient;
  members(via?: LabNode): Promise<Member[]>;
  leader(): Promise<LabNode>;
  startFleet(options: { namePrefix: string; count: number; concurrency: number; sim: SimSettings; view: HollowView }): Promise<FleetProcess>;
  destroy(): Promise<void>;
}

function tokenIn(out: string): string {
  const token = out
    .trim()
    .split(/\s+/)
    .find((w) => w.startsWith('TSJT-'));
  if (!token) throw new Error('tsctl cluster join-token printed no token');
  return token;
}

export async function startScaleCluster(options: ScaleClusterOptions): Promise<ScaleCluster> {
  const log = options.log ?? (() => undefined);
  const lab = await makeLab({
    count: 3,
    from: options.from,
    addressOnSwitch: true,
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
    ...(options.tsdFlags ? { tsdFlags: options.tsdFlags } : {}),
  });
  const managers = lab.nodes;
  const fleets: FleetProcess[] = [];
  let workerToken: Promise<string> | undefined;
  let fleetsStarted = 0;
  const [first, ...others] = managers as [LabNode, ...LabNode[]];
  const api = new ApiClient(first.socket, { failover: { addresses: others.map((m) => m.socket), securityFor: () => LOCAL_INSECURE } });
  const cluster: ScaleCluster = {
    lab,
    managers,
    addresses: managers.map((m) => `${m.address}:${API_PORT}`),
    api,
    async members(via) {
      const live = via ? [via] : managers.filter((m) => m.pid > 0);
      let last: unknown;
      for (const m of live) {
        try {
          return parseMembers(await lab.tsctl(m, 'cluster', 'members'));
        } catch (err) {
          last = err;
        }
      }
      throw last instanceof Error ? last : new Error('no manager answered');
    },
    async leader() {
      return eventually(
        'a Raft leader',
        async () => {
          const leader = (await cluster.members()).find((m) => m.role === 'leader');
          return leader ? managers.find((m) => m.name === leader.id && m.pid > 0) : undefined;
        },
        60_000,
      );
    },
    async startFleet({ namePrefix, count, concurrency, sim, view }) {
      const ordinal = fleetsStarted++;
      // One token for every fleet: each request mints a new one and the previous one stops working.
      workerToken ??= lab.tsctl(first.pid > 0 ? first : managers.find((m) => m.pid > 0)!, 'cluster', 'join-token', 'worker').then(tokenIn);
      const token = await workerToken;
      const fleet = await startFleetProcess({
        netns: lab.switchNetns,
        logFile: join(lab.dir, `fleet-${namePrefix}.log`),
        onEvents: (events) => view.add(events),
        managers: cluster.addresses,
        token,
        namePrefix,
        count,
        // Each fleet its own range of advertised addresses (10.240.x.y, 10.241.x.y, …).
        addressPrefix: `10.${240 + ordinal}`,
        concurrency,
        sim,
      });
      fleets.push(fleet);
      return fleet;
    },
    async destroy() {
      for (const fleet of fleets) await fleet.stop();
      api.close();
      await lab.destroy();
    },
  };
  try {
    await lab.start(first, ['init']);
    await eventually(
      'the first manager',
      async () => ((await lab.tsctl(first, 'get', 'nodes', '-o', 'json')).includes('"ready"') ? true : undefined),
      START_TIMEOUT_MS,
    );
    const token = tokenIn(await lab.tsctl(first, 'cluster', 'join-token', 'manager'));
    for (const m of others) {
      // Through a 0600 file, never argv; removed once the manager is in.
      const tokenFile = join(m.dataRoot, 'join-token');
      await writeFile(tokenFile, token, { mode: 0o600 });
      await lab.start(m, ['join', '--token-file', tokenFile, cluster.addresses[0]!]);
      await eventually(
        `${m.name} to be a voter`,
        async () => ((await cluster.members(first)).some((r) => r.id === m.name && r.role === 'follower') ? true : undefined),
        START_TIMEOUT_MS,
      );
      await rm(tokenFile, { force: true });
      log(`${m.name} joined`);
    }
    // Managers take no tasks: every task goes to a hollow node.
    for (const m of managers) await api.updateNode({ name: m.name, availability: 'drain', addLabels: {}, removeLabels: [] });
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

/** The network the hollow services join: a stack's default network is a /24, too small for hundreds of tasks and nodes. */
export const HOLLOW_NETWORK = 'hollow-net';

/**
 * A network of `stack` with room for every task, node and VIP (the managers still allocate each an
 * address on it: that is part of what is measured), then `count` services of `replicas` each on it,
 * for hollow nodes (the image is never pulled).
 */
export function hollowServices(stack: string, prefix: string, count: number, replicas: number, subnet = '10.128.0.0/12'): Array<Service | Network> {
  const network: Network = { apiVersion: API_VERSION, kind: 'Network', metadata: { name: HOLLOW_NETWORK, stack }, spec: { subnets: [subnet] } };
  const services = Array.from({ length: count }, (_, i): Service => ({
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: `${prefix}${i}`, stack },
    spec: { image: 'registry.invalid/hollow:1', replicas, networks: [{ name: HOLLOW_NETWORK }] },
  }));
  return [network, ...services];
}

/** Applies the objects in requests of at most APPLY_CHUNK each. */
export async function applyServices(api: ApiClient, objects: ReadonlyArray<Service | Network>): Promise<void> {
  for (let i = 0; i < objects.length; i += APPLY_CHUNK) {
    await api.apply({ objectsJson: objects.slice(i, i + APPLY_CHUNK).map((s) => JSON.stringify(s)) });
  }
}
