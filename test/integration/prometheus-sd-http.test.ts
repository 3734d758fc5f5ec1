// Prometheus HTTP service discovery as a manager serves it: the informers and the watched network
// allocation over a memory store (what the manager's own wiring reads), the routes served by a plain
// HTTP server on loopback standing in for the node's mutual-TLS metrics server (its TLS and caller
// checks are tested in node-metrics.test.ts), fetched as Prometheus fetches them. No daemon: the
// store and informers are the real ones; the node, service and task objects are written as the
// managers and agents would write them.
import { createServer, type Server } from 'node:http';

import test from 'ava';

import { API_VERSION, type Node, type Service, type Task } from '../../common/resources/types.js';
import { PrometheusSdRoutes, SD_NODES_PATH, SD_TASKS_PATH } from '../../control-plane/metrics/prometheus-sd-route.js';
import type { TargetGroup } from '../../control-plane/metrics/prometheus-sd.js';
import { NetworkStateWatcher, writeNetworkState } from '../../control-plane/network/allocation-store.js';
import { eventually } from '../helpers/eventually.js';
import { startControllerStore } from '../helpers/informers.js';

const NODE: Node = {
  apiVersion: API_VERSION,
  kind: 'Node',
  metadata: { name: 'n1' },
  spec: { availability: 'active', role: 'manager' },
  status: { state: 'ready', hostname: 'n1', address: '192.0.2.1', resources: { memoryBytes: 1 << 30, nanoCpus: 1e9 } },
};
const SERVICE: Service = {
  apiVersion: API_VERSION,
  kind: 'Service',
  metadata: { name: 'api', stack: 'shop', labels: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080' } },
  spec: { image: 'api' },
};
const BROKEN: Service = {
  apiVersion: API_VERSION,
  kind: 'Service',
  metadata: { name: 'broken', stack: 'shop', labels: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '99999' } },
  spec: { image: 'api' },
};

function runningTask(service: Service): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `${service.metadata.name}.1`, stack: 'shop' },
    spec: { serviceName: service.metadata.name, serviceStack: 'shop', serviceGeneration: 1, slot: 1, spec: service.spec },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state: 'running', timestamp: new Date().toISOString() },
  };
}

test('a manager-like server answers /sd/nodes and /sd/tasks as http_sd JSON from the store, and logs a skipped task once', async (t) => {
  const cs = await startControllerStore();
  const allocations = new NetworkStateWatcher(cs.store);
  await allocations.start();
  const logged: string[] = [];
  const sd = new PrometheusSdRoutes({
    nodes: () => cs.nodes.list(),
    services: () => cs.services.list(),
    tasks: () => cs.tasks.list(),
    networks: () => allocations.current,
    metricsPort: () => 7421,
    log: (line) => logged.push(line),
  });
  const routes = new Map(sd.routes());
  const server: Server = createServer((req, res) => {
    const route = routes.get((req.url ?? '').split('?')[0] ?? '');
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const address = server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const fetchGroups = async (path: string): Promise<TargetGroup[]> => {
      const res = await fetch(base + path, { headers: { 'X-Prometheus-Refresh-Interval-Seconds': '30' } });
      t.is(res.status, 200);
      t.regex(res.headers.get('content-type') ?? '', /^application\/json/);
      return (await res.json()) as TargetGroup[];
    };

    t.deepEqual(await fetchGroups(SD_NODES_PATH), [], 'an empty cluster is an empty list, still 200');
    t.deepEqual(await fetchGroups(`${SD_TASKS_PATH}?refresh=1`), []);

    for (const obj of [NODE, SERVICE, BROKEN, runningTask(SERVICE), runningTask(BROKEN)]) await cs.objects.create(obj);
    await writeNetworkState(
      cs.store,
      {
        networks: {
          'shop/default': {
            id: 'shop/default',
            stack: 'shop',
            name: 'default',
            kind: 'default',
            vni: 4097,
            subnet: '10.0.9.0/24',
            gateway: '10.0.9.1',
            internal: false,
            cursor: 3,
            nodes: { n1: '10.0.9.1' },
            vips: {},
            tasks: { 'shop/api.1': '10.0.9.2', 'shop/broken.1': '10.0.9.3' },
          },
        },
      },
      0,
    );

    const nodes = await eventually('the node in /sd/nodes', async () => {
      const groups = await fetchGroups(SD_NODES_PATH);
      return groups.length > 0 && groups;
    });
    t.deepEqual(nodes[0]?.targets, ['192.0.2.1:7421']);
    t.like(nodes[0]?.labels, { __meta_tessera_node_name: 'n1', __meta_tessera_node_role: 'manager', __meta_tessera_node_availability: 'active' });

    const tasks = await eventually('the task in /sd/tasks', async () => {
      const groups = await fetchGroups(SD_TASKS_PATH);
      return groups.length > 0 && groups;
    });
    t.is(tasks.length, 1, 'the service with a bad port is left out');
    t.deepEqual(tasks[0]?.targets, ['10.0.9.2:8080']);
    t.like(tasks[0]?.labels, {
      __metrics_path__: '/metrics',
      __meta_tessera_service_name: 'api',
      __meta_tessera_task_slot: '1',
      __meta_tessera_network_name: 'default',
    });
    await fetchGroups(SD_TASKS_PATH);
    const skips = logged.filter((line) => line.includes('broken.1'));
    t.is(skips.length, 1, 'logged once, not on every refresh');
    t.regex(
      skips[0] ?? '',
      /\/sd\/tasks: task broken\.1 \(stack shop\) left out: service broken: label prometheus\.io\/port must be a port number 1-65535, got "99999"/,
    );

    t.is((await fetch(base + SD_TASKS_PATH, { method: 'POST' })).status, 405);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    allocations.stop();
    cs.stop();
    await cs.store.close();
  }
});
