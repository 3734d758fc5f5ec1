// The pure cluster network allocator and the per-node view the dispatcher sends.
import test from 'ava';

import { allocateNetworks, DEFAULT_POOL } from '../../control-plane/network/allocate.js';
import { NodeViewBuilder } from '../../control-plane/network/node-view.js';
import { emptyNetworkState, type ClusterNetworkState } from '../../control-plane/network/types.js';
import type { Network, Node, Service, ServiceSpec, Task, TaskState } from '../../common/resources/types.js';

function node(name: string, address: string, localSubnet?: string): Node {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Node',
    metadata: { name, stack: '' },
    spec: { availability: 'active', role: 'worker' },
    status: { state: 'ready', hostname: name, address, resources: { memoryBytes: 1e9, nanoCpus: 1e9 }, ...(localSubnet ? { localSubnet } : {}) },
  };
}

function service(stack: string, name: string, spec: Partial<ServiceSpec> = {}): Service {
  return { apiVersion: 'tessera/v1', kind: 'Service', metadata: { name, stack }, spec: { image: 'busybox', ...spec } };
}

function task(svc: Service, slot: number, nodeName: string | undefined, state: TaskState = 'running'): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name: `${svc.metadata.name}.${slot}.x${slot}`, stack: svc.metadata.stack ?? '' },
    spec: { serviceName: svc.metadata.name, serviceStack: svc.metadata.stack ?? '', serviceGeneration: 1, slot, spec: svc.spec },
    ...(nodeName ? { nodeName } : {}),
    desiredState: 'running',
    status: { state, timestamp: '2026-01-01T00:00:00Z' },
  };
}

function network(stack: string, name: string, subnets?: string[]): Network {
  return { apiVersion: 'tessera/v1', kind: 'Network', metadata: { name, stack }, spec: { driver: 'overlay', ...(subnets ? { subnets } : {}) } };
}

const nodes = [node('n1', '172.31.1.1', '10.0.1.0/24'), node('n2', '172.31.1.2'), node('n3', '172.31.1.3')];

test('ingress and stack default networks get distinct subnets and VNIs; addresses for nodes, VIPs and tasks', (t) => {
  const web = service('shop', 'web', { ports: [{ target: 80, published: 8080 }] });
  const db = service('shop', 'db', { endpointMode: 'dnsrr' });
  const tasks = [task(web, 1, 'n1'), task(web, 2, 'n2'), task(db, 1, 'n3')];
  const { state, problems } = allocateNetworks({
    previous: emptyNetworkState(),
    networks: [],
    services: [web, db],
    tasks,
    nodes,
    pool: { ...DEFAULT_POOL, reserved: ['10.0.1.0/24'] },
  });
  t.deepEqual(problems, []);
  t.deepEqual(Object.keys(state.networks).sort(), ['ingress', 'shop/default']);
  const ingress = state.networks['ingress']!;
  const def = state.networks['shop/default']!;
  t.is(ingress.subnet, '10.0.0.0/24');
  t.is(def.subnet, '10.0.2.0/24', 'skips the reserved node-local subnet');
  t.not(ingress.vni, def.vni);
  t.true(ingress.vni >= 4096 && def.vni >= 4096);
  t.deepEqual(Object.keys(ingress.nodes).sort(), ['n1', 'n2', 'n3']);
  t.deepEqual(Object.keys(def.vips), ['shop/web'], 'dnsrr services get no VIP');
  t.deepEqual(Object.keys(def.tasks).sort(), tasks.map((x) => `shop/${x.metadata.name}`).sort());
  t.deepEqual(Object.keys(ingress.tasks).sort(), ['shop/web.1.x1', 'shop/web.2.x2']);
  const all = [ingress, def].flatMap((n) => [n.gateway, ...Object.values(n.nodes), ...Object.values(n.vips), ...Object.values(n.tasks)]);
  t.is(new Set(all).size, all.length, 'no address is handed out twice');

  // Level-triggered: the same input gives the same state; an ended task's address is released
  // and not reused at once.
  const again = allocateNetworks({ previous: state, networks: [], services: [web, db], tasks, nodes, pool: DEFAULT_POOL });
  t.deepEqual(again.state, state);
  const ended = [task(web, 1, 'n1', 'failed'), task(web, 2, 'n2'), task(db, 1, 'n3'), task(web, 3, undefined, 'new')];
  const next = allocateNetworks({ previous: state, networks: [], services: [web, db], tasks: ended, nodes, pool: DEFAULT_POOL }).state;
  const freed = def.tasks['shop/web.1.x1'];
  t.false('shop/web.1.x1' in next.networks['shop/default']!.tasks);
  t.not(next.networks['shop/default']!.tasks['shop/web.3.x3'], freed);
  t.is(next.networks['shop/default']!.tasks['shop/web.2.x2'], def.tasks['shop/web.2.x2'], 'kept addresses never move');
});

test('declared networks: explicit subnets, overlap and unknown names are reported, nothing else disturbed', (t) => {
  const a = network('s', 'front', ['10.50.0.0/24']);
  const b = network('s', 'wide', ['10.50.0.128/25']);
  const svc = service('s', 'api', { networks: [{ name: 'front' }, { name: 'nope' }] });
  const { state, problems } = allocateNetworks({
    previous: emptyNetworkState(),
    networks: [a, b],
    services: [svc],
    tasks: [task(svc, 1, 'n2')],
    nodes,
    pool: DEFAULT_POOL,
  });
  t.is(state.networks['s/front']!.subnet, '10.50.0.0/24');
  t.false('s/wide' in state.networks);
  t.true(problems.some((p) => /s\/wide: subnet 10.50.0.128\/25 overlaps 10.50.0.0\/24/.test(p)));
  t.true(problems.some((p) => /network "nope" is not defined in stack "s"/.test(p)));
  t.false('s/default' in state.networks, 'a service with networks does not join the default network');
});

test('node view: peers are the other members with their endpoints; DNS, VIPs, mesh and task attachments', (t) => {
  const web = service('shop', 'web', { replicas: 2, ports: [{ target: 80, published: 8080 }] });
  const client = service('shop', 'client');
  const other = service('iso', 'lonely');
  const tasks = [task(web, 1, 'n1'), task(web, 2, 'n2'), task(client, 1, 'n3'), task(other, 1, 'n3')];
  const services = [web, client, other];
  const { state } = allocateNetworks({ previous: emptyNetworkState(), networks: [], services, tasks, nodes, pool: DEFAULT_POOL });
  const builder = new NodeViewBuilder({ state, networks: [], services, tasks, nodes });
  const v3 = builder.build('n3');
  t.deepEqual(
    v3.networks.map((n) => n.id),
    ['ingress', 'iso/default', 'shop/default'],
  );
  const shop = v3.networks.find((n) => n.id === 'shop/default')!;
  t.deepEqual(
    shop.peers.map((p) => p.nodeUnderlayAddress),
    ['172.31.1.1', '172.31.1.2'],
  );
  t.is(shop.peers[0]!.endpoints.length, 2, 'node address + one task');
  const webDns = shop.dns.services.find((s) => s.names.includes('web'))!;
  t.deepEqual(webDns.names, ['web', 'shop_web']);
  t.is(webDns.vip, state.networks['shop/default']!.vips['shop/web']);
  t.is(webDns.tasks.length, 2);
  t.is(shop.vips.find((v) => v.key === 'shop/web@shop/default')!.backends.length, 2);
  t.false(
    v3.networks.find((n) => n.id === 'iso/default')!.dns.services.some((s) => s.names.includes('web')),
    'isolated stacks do not see each other',
  );
  t.deepEqual(v3.published, [
    { key: 'shop/web', ports: [{ published: 8080, target: 80, protocol: 'tcp' }], backends: Object.values(state.networks['ingress']!.tasks).sort() },
  ]);
  t.deepEqual(Object.keys(v3.tasks).sort(), ['iso/lonely.1.x1', 'shop/client.1.x1']);
  const v1 = builder.build('n1');
  t.deepEqual(
    v1.tasks['shop/web.1.x1']!.map((a) => a.networkId),
    ['shop/default', 'ingress'],
  );
  t.false(
    v1.networks.some((n) => n.id === 'iso/default'),
    'a node without tasks of a network does not get it',
  );
});

test('a previous state is kept as is for networks still wanted', (t) => {
  const previous: ClusterNetworkState = {
    networks: {
      ingress: {
        id: 'ingress',
        stack: '',
        name: 'ingress',
        kind: 'ingress',
        vni: 5000,
        subnet: '10.9.0.0/24',
        gateway: '10.9.0.1',
        internal: false,
        cursor: 1,
        nodes: {},
        vips: {},
        tasks: {},
      },
    },
  };
  const { state } = allocateNetworks({ previous, networks: [], services: [], tasks: [], nodes, pool: DEFAULT_POOL });
  t.is(state.networks['ingress']!.vni, 5000);
  t.is(state.networks['ingress']!.subnet, '10.9.0.0/24');
  t.is(Object.keys(state.networks['ingress']!.nodes).length, 3);
});

test("a bridge (node-local) network: no VXLAN peers, and names and VIPs answer with the node's own tasks only", (t) => {
  const local: Network = { apiVersion: 'tessera/v1', kind: 'Network', metadata: { name: 'lan', stack: 'shop' }, spec: { driver: 'bridge' } };
  const web = service('shop', 'web', { replicas: 3, networks: [{ name: 'lan' }] });
  const tasks = [task(web, 1, 'n1'), task(web, 2, 'n1'), task(web, 3, 'n2')];
  const { state } = allocateNetworks({ previous: emptyNetworkState(), networks: [local], services: [web], tasks, nodes, pool: DEFAULT_POOL });
  t.true(state.networks['shop/lan']!.local);
  const builder = new NodeViewBuilder({ state, networks: [local], services: [web], tasks, nodes });
  const lan1 = builder.build('n1').networks.find((n) => n.id === 'shop/lan')!;
  const lan2 = builder.build('n2').networks.find((n) => n.id === 'shop/lan')!;
  t.deepEqual(lan1.peers, []);
  t.deepEqual(lan2.peers, []);
  const addressOf = (slot: number) => state.networks['shop/lan']!.tasks[`shop/web.${slot}.x${slot}`]!;
  t.deepEqual(lan1.dns.services.find((s) => s.names.includes('web'))!.tasks, [addressOf(1), addressOf(2)].sort());
  t.deepEqual(lan2.vips.find((v) => v.key === 'shop/web@shop/lan')!.backends, [addressOf(3)]);
  // Addresses stay unique across nodes (one allocation), so a task that moves keeps no stale twin.
  t.is(new Set([1, 2, 3].map(addressOf)).size, 3);
});

test('only tasks that may take traffic are VIP backends and DNS answers: a health-checked task must be healthy', (t) => {
  const web = service('shop', 'web', { replicas: 3 });
  const tasks = [task(web, 1, 'n1'), task(web, 2, 'n2'), task(web, 3, 'n3')];
  tasks[0]!.status.health = 'healthy';
  tasks[1]!.status.health = 'starting';
  tasks[2]!.status.health = 'unhealthy';
  const { state } = allocateNetworks({ previous: emptyNetworkState(), networks: [], services: [web], tasks, nodes, pool: DEFAULT_POOL });
  const view = new NodeViewBuilder({ state, networks: [], services: [web], tasks, nodes }).build('n1');
  const shop = view.networks.find((n) => n.id === 'shop/default')!;
  const healthy = state.networks['shop/default']!.tasks['shop/web.1.x1'];
  t.deepEqual(shop.vips.find((v) => v.key === 'shop/web@shop/default')!.backends, [healthy]);
  t.deepEqual(shop.dns.services.find((s) => s.names.includes('web'))!.tasks, [healthy]);
});
