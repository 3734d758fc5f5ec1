// `npm run bench:cluster`: scheduler throughput at scale (pure, 1,000 simulated nodes and 10,000
// tasks with every filter on), and the time from `apply` of 100 replicas to all of them running on
// a real 3-node cluster of network namespaces. Prints a table. Needs root for the cluster part.
// (Overlay throughput vs raw veth is `npm run bench:overlay`.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ApiClient } from '../../cli/client.js';
import { schedule } from '../../control-plane/scheduler/schedule.js';
import { API_VERSION, type Node, type Service, type Task } from '../../common/resources/types.js';
import { createNetnsCluster, destroyNetnsCluster } from '../../cli/local-cluster/netns-cluster.js';
import { startUnderlayRegistry } from '../helpers/underlay-registry.js';
import { median } from './stats.js';

function schedulerBench(): { placementsPerSecond: number[]; unplaced: number } {
  const zones = ['a', 'b', 'c', 'd'];
  const nodes: Node[] = Array.from({ length: 1000 }, (_, i) => ({
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name: `n${String(i).padStart(4, '0')}` },
    spec: {
      availability: i % 50 === 0 ? 'drain' : 'active',
      role: i < 3 ? 'manager' : 'worker',
      labels: { zone: zones[i % 4]!, disk: i % 3 === 0 ? 'ssd' : 'hdd' },
    },
    status: { state: i % 97 === 0 ? 'down' : 'ready', hostname: `n${i}`, resources: { memoryBytes: 16 * 2 ** 30, nanoCpus: 8e9 } },
  }));
  const pending: Task[] = Array.from({ length: 10_000 }, (_, i) => ({
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `svc${i % 100}.${i}.x`, stack: 'b' },
    spec: {
      serviceName: `svc${i % 100}`,
      serviceStack: 'b',
      serviceGeneration: 1,
      slot: i,
      spec: {
        image: 'x',
        resources: { reservations: { memory: 64 * 2 ** 20, cpus: 0.05 } },
        // Every filter on: constraints, preferences (spread over zones, then disks), max replicas
        // per node, and host-mode ports (a tenth of the services publish one).
        placement: {
          constraints: i % 2 === 0 ? ['node.labels.disk!=tape', 'node.role==worker'] : ['node.labels.zone!=d'],
          ...((i % 100) % 3 === 0 ? { preferences: [{ spread: 'node.labels.zone' }, { spread: 'node.labels.disk' }] } : {}),
          maxReplicasPerNode: 2,
        },
        ...(i % 10 === 0 ? { ports: [{ target: 80, published: 9000 + (i % 100), mode: 'host' as const }] } : {}),
      },
    },
    desiredState: 'running',
    status: { state: 'new', timestamp: new Date().toISOString() },
  }));
  const rates: number[] = [];
  let unplaced = 0;
  for (let round = 0; round < 5; round++) {
    const started = process.hrtime.bigint();
    const result = schedule({ nodes, tasks: [], pending });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    rates.push(result.placements.length / seconds);
    unplaced = result.unplaced.length;
  }
  return { placementsPerSecond: rates, unplaced };
}

async function applyBench(rounds: number): Promise<number[]> {
  const workDir = await mkdtemp(join(tmpdir(), 'tessera-bench-cluster-'));
  const octet = 150 + Math.floor(Math.random() * 50);
  const registryHost = `172.31.${octet}.254:5000`;
  const cluster = await createNetnsCluster({
    prefix: `bc${Math.floor(Math.random() * 36 ** 3).toString(36)}`,
    nodes: 3,
    baseDir: join(workDir, 'c'),
    underlayOctet: octet,
    hostBridge: false,
    insecureRegistries: [registryHost],
  });
  const registry = await startUnderlayRegistry(cluster, octet, workDir);
  const client = new ApiClient(cluster.apiSocket);
  const times: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const name = `hundred${round}`;
      const service: Service = {
        apiVersion: API_VERSION,
        kind: 'Service',
        metadata: { name, stack: 'bench' },
        spec: { image: registry.image, command: ['sleep', '100000'], replicas: 100, stopGracePeriodMs: 100 },
      };
      const started = Date.now();
      await client.apply({ objectsJson: [JSON.stringify(service)] });
      for (;;) {
        const tasks = (await client.list({ kind: 'Task', stack: 'bench', service: name })).objectsJson.map((j) => JSON.parse(j) as Task);
        if (tasks.filter((t) => t.status.state === 'running').length === 100) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      times.push(Date.now() - started);
      await client.delete({ refs: [{ kind: 'Service', stack: 'bench', name }] });
      for (;;) {
        const tasks = (await client.list({ kind: 'Task', stack: 'bench', service: name })).objectsJson.map((j) => JSON.parse(j) as Task);
        if (tasks.every((t) => ['shutdown', 'complete', 'failed'].includes(t.status.state))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    client.close();
    await destroyNetnsCluster(cluster);
    registry.stop();
    await rm(workDir, { recursive: true, force: true });
  }
  return times;
}

const sched = schedulerBench();
const apply = await applyBench(Number(process.env.BENCH_ROUNDS ?? 3));
const rows: Array<[string, string, string, string]> = [
  [
    'scheduler placements/s (1,000 nodes, 10,000 tasks, all filters)',
    Math.round(median(sched.placementsPerSecond)).toLocaleString('en'),
    Math.round(Math.min(...sched.placementsPerSecond)).toLocaleString('en'),
    '>= 5,000/s',
  ],
  ['apply 100 replicas → all running, 3-node netns cluster (ms)', String(median(apply)), String(Math.max(...apply)), '-'],
];
const widths = [0, 1, 2, 3].map((i) => Math.max(...[['measure', 'median', 'worst', 'goal'], ...rows].map((r) => r[i]!.length)));
for (const row of [['measure', 'median', 'worst', 'goal'], ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  '));
console.log(`(unplaced in the scheduler run: ${sched.unplaced}; apply rounds: ${apply.join(', ')} ms)`);
