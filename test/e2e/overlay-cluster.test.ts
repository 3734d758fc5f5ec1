// End to end on a 3-node netns cluster (cli/local-cluster/netns-cluster.ts): overlay networks allocated by
// the managers and programmed by every node's agent. A service spread over the workers answers by
// name from a container on the manager node, its VIP reaches every replica, its published port
// answers on every node (also the one running no replica), and a container on another network
// cannot reach it. Commands run inside containers by entering their namespaces with nsenter
// (pid from the task's status), as `exec` does not exist yet.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { Network, Service, Task } from '../../common/resources/types.js';
import {
  createNetnsCluster,
  destroyNetnsCluster,
  restartNetnsNode,
  type NetnsClusterOptions,
  type NetnsClusterState,
} from '../../cli/local-cluster/netns-cluster.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const STACK = 'ov';

let cluster: NetnsClusterState;
let clusterOptions: NetnsClusterOptions;
let client: ApiClient;
let workDir: string;
let registry: UnderlayRegistry | undefined;
let image: string;
const octet = 100 + Math.floor(Math.random() * 100);
const registryHost = `172.31.${octet}.254:5000`;

function serviceObject(name: string, spec: Partial<Service['spec']>): string {
  const object: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: STACK },
    spec: { image, command: ['sleep', '100000'], ...spec },
  };
  return JSON.stringify(object);
}

function networkObject(name: string): string {
  const object: Network = { apiVersion: 'tessera/v1', kind: 'Network', metadata: { name, stack: STACK }, spec: { driver: 'overlay' } };
  return JSON.stringify(object);
}

async function running(service: string, count: number): Promise<Task[]> {
  const all = (await client.list({ kind: 'Task', stack: STACK, service })).objectsJson.map((j) => JSON.parse(j) as Task);
  const live = all.filter((t) => t.desiredState === 'running' && t.status.state === 'running');
  if (live.length === count) return live;
  throw new Error(
    `${service}: ${live.length}/${count} running: ${all.map((t) => `${t.metadata.name}@${t.nodeName ?? '-'} ${t.status.state} ${t.status.message ?? ''}`).join('; ')}`,
  );
}

/** Runs busybox inside a running container: its network, mount (so its resolv.conf), UTS namespaces and root. */
async function inContainer(task: Task, args: string[], timeoutMs = 8000): Promise<string> {
  const pid = String(task.status.pid);
  const { stdout } = await run('nsenter', ['-t', pid, '-n', '-m', '-u', '-r', '-w', '/bin/busybox', ...args], { timeout: timeoutMs });
  return stdout;
}

async function fetchIn(task: Task, url: string): Promise<string> {
  return (await inContainer(task, ['wget', '-q', '-O', '-', url], 5000)).trim();
}

async function canFetchIn(task: Task, url: string): Promise<boolean> {
  try {
    await fetchIn(task, url);
    return true;
  } catch {
    return false;
  }
}

function addressesIn(nslookupOutput: string): string[] {
  // busybox prints the server first ("Address: 10.0.1.1:53"), then the answers.
  return nslookupOutput
    .split('\n')
    .map((l) => /^Address:\s*(\d+\.\d+\.\d+\.\d+)$/.exec(l.trim())?.[1])
    .filter((a): a is string => a !== undefined)
    .sort();
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-ovc-'));
  const prefix = `o${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  clusterOptions = {
    prefix,
    nodes: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 3000,
    insecureRegistries: [registryHost],
  };
  cluster = await createNetnsCluster(clusterOptions);
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  image = registry.image;
});

test.after.always(async () => {
  // before() may have failed before assigning these: the declared types do not hold here.
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  // OVC_KEEP=1 leaves the cluster up for debugging (state in /tmp/ovc-cluster.json).
  if (process.env['OVC_KEEP'] === '1') {
    await writeFile('/tmp/ovc-cluster.json', JSON.stringify(cluster));
    return;
  }
  if (started) await destroyNetnsCluster(started);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('service discovery, VIP, routing mesh and isolation across nodes', async (t) => {
  const httpd = ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'];
  await client.apply({
    objectsJson: [
      networkObject('front'),
      networkObject('back'),
      // Two replicas, one on each worker; none on node-1, where the client runs.
      serviceObject('web', {
        command: httpd,
        replicas: 2,
        networks: [{ name: 'front' }],
        ports: [{ target: 80, published: 8080 }],
        placement: { constraints: ['node.role==worker'] },
      }),
      serviceObject('client', { replicas: 1, networks: [{ name: 'front' }], placement: { constraints: ['node.role==manager'] } }),
      serviceObject('outsider', { replicas: 1, networks: [{ name: 'back' }], placement: { constraints: ['node.role==manager'] } }),
    ],
  });
  const web = await eventually('2 web replicas', () => running('web', 2), 120_000, 500);
  t.deepEqual(web.map((x) => x.nodeName ?? '(unplaced)').sort(), ['node-2', 'node-3']);
  const [clientTask] = await eventually('the client', () => running('client', 1), 60_000, 500);
  const [outsider] = await eventually('the outsider', () => running('outsider', 1), 60_000, 500);
  t.is(clientTask!.nodeName, 'node-1');

  // By name from node-1: the service name gives one VIP, tasks.web both replicas.
  const vip = await eventually(
    'web to resolve to its VIP',
    async () => {
      const addresses = addressesIn(await inContainer(clientTask!, ['nslookup', 'web']));
      return addresses.length === 1 ? addresses[0] : undefined;
    },
    30_000,
    500,
  );
  const taskAddresses = await eventually(
    'tasks.web to list both replicas',
    async () => {
      const addresses = addressesIn(await inContainer(clientTask!, ['nslookup', 'tasks.web']));
      return addresses.length === 2 ? addresses : undefined;
    },
    30_000,
    500,
  );
  t.false(taskAddresses.includes(vip!));
  t.deepEqual(addressesIn(await inContainer(clientTask!, ['nslookup', `${STACK}_web`])), [vip!]);

  // The VIP (by name) reaches every replica; each replica is also reachable directly across nodes.
  for (const address of taskAddresses) t.regex(await eventually(`replica ${address}`, () => fetchIn(clientTask!, `http://${address}/`), 20_000, 500), /^web-/);
  t.regex(await eventually('the VIP', () => fetchIn(clientTask!, `http://${vip!}/`), 20_000, 500), /^web-/);
  const hostnames = new Set<string>();
  for (let i = 0; i < 30 && hostnames.size < 2; i++) hostnames.add(await eventually('web by name', () => fetchIn(clientTask!, 'http://web/'), 20_000, 500));
  t.is(hostnames.size, 2, `answers came from ${[...hostnames].join(', ')}`);
  for (const address of taskAddresses) t.regex(await fetchIn(clientTask!, `http://${address}/`), /^web-/);

  // Routing mesh: port 8080 answers on every node's underlay address, from the switch namespace.
  for (const node of cluster.nodes) {
    const answer = await eventually(
      `port 8080 on ${node.name}`,
      async () => {
        const { stdout } = await run(
          'nsenter',
          [`--net=/run/netns/${cluster.switchNetns}`, '/bin/busybox', 'wget', '-q', '-O', '-', `http://${node.underlayAddress}:8080/`],
          { timeout: 8000 },
        );
        return stdout.trim();
      },
      30_000,
      500,
    );
    t.regex(answer, /^web-/, `via ${node.name}`);
  }

  // Isolation: the outsider, on another network on the same node as the client, reaches neither
  // the VIP nor a replica, and its resolver does not know the name.
  t.false(await canFetchIn(outsider!, `http://${vip!}/`));
  for (const address of taskAddresses) t.false(await canFetchIn(outsider!, `http://${address}/`));
  const lookup = await inContainer(outsider!, ['nslookup', 'web']).catch((err: Error & { stdout?: string }) => err.stdout ?? '');
  t.deepEqual(addressesIn(lookup), []);

  // Entries follow tasks: scaling web to one replica leaves the VIP answering with the survivor only.
  await client.scale({ ref: { kind: 'Service', stack: STACK, name: 'web' }, replicas: 1 });
  const [survivor] = await eventually('1 web replica', () => running('web', 1), 60_000, 500);
  const survivorName = await eventually(
    'tasks.web to shrink',
    async () => {
      const addresses = addressesIn(await inContainer(clientTask!, ['nslookup', 'tasks.web']));
      return addresses.length === 1 ? addresses[0] : undefined;
    },
    30_000,
    500,
  );
  t.truthy(survivorName);
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await fetchIn(clientTask!, 'http://web/'));
  t.is(seen.size, 1);
  t.truthy(survivor);
});

test.serial("services that name no network join their stack's default network and reach each other by name across nodes", async (t) => {
  const httpd = ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'];
  await client.apply({
    objectsJson: [
      serviceObject('plain-web', { command: httpd, replicas: 1, placement: { constraints: ['node.hostname==node-3'] } }),
      serviceObject('plain-client', { replicas: 1, placement: { constraints: ['node.hostname==node-2'] } }),
    ],
  });
  await eventually('plain-web', () => running('plain-web', 1), 60_000, 500);
  const [plainClient] = await eventually('plain-client', () => running('plain-client', 1), 60_000, 500);
  t.regex(await eventually('plain-web by name', () => fetchIn(plainClient!, 'http://plain-web/'), 30_000, 500), /^plain-web-/);
});

test.serial('a bridge (node-local) network joins tasks on one node only', async (t) => {
  const httpd = ['sh', '-c', 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'];
  const lan: Network = { apiVersion: 'tessera/v1', kind: 'Network', metadata: { name: 'lan', stack: STACK }, spec: { driver: 'bridge' } };
  await client.apply({
    objectsJson: [
      JSON.stringify(lan),
      serviceObject('lan-web', {
        command: httpd,
        replicas: 2,
        networks: [{ name: 'lan' }],
        placement: { constraints: ['node.role==worker'], maxReplicasPerNode: 1 },
      }),
      serviceObject('lan-client', { replicas: 1, networks: [{ name: 'lan' }], placement: { constraints: ['node.hostname==node-2'] } }),
    ],
  });
  const web = await eventually('2 lan-web replicas', () => running('lan-web', 2), 60_000, 500);
  const [lanClient] = await eventually('the lan client', () => running('lan-client', 1), 60_000, 500);
  const far = web.find((x) => x.nodeName === 'node-3')!;
  t.truthy(web.find((x) => x.nodeName === 'node-2'));
  t.truthy(far);
  // Each node's resolver names only its own replica on a node-local network.
  const lanAddressesSeenFrom = (task: Task) =>
    eventually(
      `tasks.lan-web from ${task.nodeName}`,
      async () => {
        const addresses = addressesIn(await inContainer(task, ['nslookup', 'tasks.lan-web']));
        return addresses.length === 1 ? addresses : undefined;
      },
      30_000,
      500,
    );
  const [near] = await lanAddressesSeenFrom(lanClient!);
  const [farAddress] = await lanAddressesSeenFrom(far);
  t.not(near, farAddress);
  // The replica on the client's node answers, by address and by name; the one on node-3 cannot be reached.
  t.regex(await eventually('the local replica', () => fetchIn(lanClient!, `http://${near}/`), 20_000, 500), /^lan-web-/);
  t.regex(await fetchIn(lanClient!, 'http://lan-web/'), /^lan-web-/);
  t.false(await canFetchIn(lanClient!, `http://${farAddress}/`), 'the replica on node-3 is out of reach from node-2');
});

test.serial('a worker whose tsd was killed and restarted programs the overlay again for new tasks', async (t) => {
  const node3 = cluster.nodes[2]!;
  process.kill(node3.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  await restartNetnsNode(cluster, clusterOptions, node3);
  await client.apply({ objectsJson: [serviceObject('late-client', { replicas: 1, placement: { constraints: ['node.hostname==node-3'] } })] });
  const [late] = await eventually('late-client on node-3', () => running('late-client', 1), 90_000, 500);
  t.regex(await eventually('plain-web by name from the restarted node', () => fetchIn(late!, 'http://plain-web/'), 30_000, 500), /^plain-web-/);
});
