// The Prometheus HTTP SD builders: which nodes and tasks become targets, with which labels, and
// what is left out (with a reason) when a service's opt-in labels are wrong or a limit is reached.
import test from 'ava';

import { API_VERSION, type Node, type Service, type ServiceSpec, type Task } from '../../common/resources/types.js';
import {
  DEFAULT_SD_LIMITS,
  nodeTargetGroups,
  parseScrapeOptIn,
  sanitizeLabelName,
  taskTargetGroups,
  type TaskSdInput,
} from '../../control-plane/metrics/prometheus-sd.js';
import type { ClusterNetworkState, NetworkAllocation } from '../../control-plane/network/types.js';

function node(name: string, address: string | undefined, extra: Partial<Node['spec']> = {}): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'worker', ...extra },
    status: { state: 'ready', hostname: `${name}.lan`, resources: { memoryBytes: 1, nanoCpus: 1 }, ...(address ? { address } : {}) },
  };
}

function service(name: string, labels: Record<string, string>, spec: Partial<ServiceSpec> = {}, stack = 'shop'): Service {
  return { apiVersion: API_VERSION, kind: 'Service', metadata: { name, stack, labels }, spec: { image: 'app', ...spec } };
}

function task(svc: Service, slot: number, state: Task['status']['state'] = 'running', nodeName = 'n1'): Task {
  const stack = svc.metadata.stack ?? '';
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `${svc.metadata.name}.${slot}`, stack },
    spec: { serviceName: svc.metadata.name, serviceStack: stack, serviceGeneration: 1, slot, spec: svc.spec },
    nodeName,
    desiredState: 'running',
    status: { state, timestamp: '2026-01-01T00:00:00Z', containerId: `c-${slot}` },
  };
}

function network(id: string, name: string, kind: NetworkAllocation['kind'], tasks: Record<string, string>): NetworkAllocation {
  return { id, stack: 'shop', name, kind, vni: 4096, subnet: '10.0.1.0/24', gateway: '10.0.1.1', internal: false, cursor: 0, nodes: {}, vips: {}, tasks };
}

const OPT_IN = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9100' };

function input(services: Service[], tasks: Task[], networks: ClusterNetworkState, extra: Partial<TaskSdInput> = {}): TaskSdInput {
  return { services, tasks, nodes: [node('n1', '192.168.5.1', { role: 'manager' })], networks, ...extra };
}

test('opt-in: only "true" opts in; the port is required and checked; the path defaults to /metrics and is checked', (t) => {
  t.deepEqual(parseScrapeOptIn(undefined), { scrape: false });
  t.deepEqual(parseScrapeOptIn({ 'prometheus.io/scrape': 'yes', 'prometheus.io/port': '80' }), { scrape: false });
  t.deepEqual(parseScrapeOptIn(OPT_IN), { scrape: true, port: 9100, path: '/metrics' });
  t.deepEqual(parseScrapeOptIn({ ...OPT_IN, 'prometheus.io/path': '/app/metrics' }), { scrape: true, port: 9100, path: '/app/metrics' });
  for (const port of ['0', '65536', '-1', '80a', ' 80', '1e3', '']) {
    const parsed = parseScrapeOptIn({ ...OPT_IN, 'prometheus.io/port': port });
    t.true('error' in parsed && parsed.error.includes('prometheus.io/port'), `port ${JSON.stringify(port)}`);
  }
  t.regex((parseScrapeOptIn({ 'prometheus.io/scrape': 'true' }) as { error: string }).error, /prometheus\.io\/port is missing/);
  for (const path of ['metrics', '/a b', '/m?x=1', '/m#f', `/${'a'.repeat(300)}`, '/\n']) {
    const parsed = parseScrapeOptIn({ ...OPT_IN, 'prometheus.io/path': path });
    t.true('error' in parsed && parsed.error.includes('prometheus.io/path'), `path ${JSON.stringify(path)}`);
  }
});

test('label names are sanitized as dockerswarm_sd does', (t) => {
  t.is(sanitizeLabelName('prometheus.io/scrape'), 'prometheus_io_scrape');
  t.is(sanitizeLabelName('com.example-team'), 'com_example_team');
});

test('nodes: one group per node with an address, labelled with name, role, availability, state and address', (t) => {
  const { groups, skipped } = nodeTargetGroups(
    [node('n2', '10.0.0.2', { availability: 'drain', labels: { zone: 'a' } }), node('n1', '10.0.0.1', { role: 'manager' }), node('n3', undefined)],
    7421,
  );
  t.deepEqual(groups, [
    {
      targets: ['10.0.0.1:7421'],
      labels: {
        __meta_tessera_node_name: 'n1',
        __meta_tessera_node_hostname: 'n1.lan',
        __meta_tessera_node_role: 'manager',
        __meta_tessera_node_availability: 'active',
        __meta_tessera_node_state: 'ready',
        __meta_tessera_node_address: '10.0.0.1',
      },
    },
    {
      targets: ['10.0.0.2:7421'],
      labels: {
        __meta_tessera_node_name: 'n2',
        __meta_tessera_node_hostname: 'n2.lan',
        __meta_tessera_node_role: 'worker',
        __meta_tessera_node_availability: 'drain',
        __meta_tessera_node_state: 'ready',
        __meta_tessera_node_address: '10.0.0.2',
        __meta_tessera_node_label_zone: 'a',
      },
    },
  ]);
  t.deepEqual(skipped, [{ what: 'node n3', reason: 'it has not reported an address yet' }]);
  t.deepEqual(nodeTargetGroups([node('v6', 'fd00::1')], 7421).groups[0]!.targets, ['[fd00::1]:7421']);
});

test('tasks: a running task of an opted-in service is a target at its first overlay address, with dockerswarm-like labels', (t) => {
  const web = service(
    'web',
    { ...OPT_IN, 'prometheus.io/path': '/m', team: 'a', 'com.example/x': 'y' },
    { networks: [{ name: 'back' }, { name: 'front' }], ports: [{ target: 80, published: 8080 }] },
  );
  const quiet = service('quiet', {});
  const networks: ClusterNetworkState = {
    networks: {
      ingress: network('ingress', 'ingress', 'ingress', { 'shop/web.1': '10.255.0.5' }),
      'shop/front': network('shop/front', 'front', 'declared', { 'shop/web.1': '10.0.2.5' }),
      'shop/back': network('shop/back', 'back', 'declared', { 'shop/web.1': '10.0.3.5' }),
      'shop/default': network('shop/default', 'default', 'default', { 'shop/quiet.1': '10.0.4.5' }),
    },
  };
  const { groups, skipped } = taskTargetGroups(input([web, quiet], [task(web, 1), task(web, 2, 'preparing'), task(quiet, 1)], networks));
  t.deepEqual(skipped, []);
  t.is(groups.length, 1);
  // back is declared first: the first overlay in attachment order, not ingress, not alphabetical.
  t.deepEqual(groups[0]!.targets, ['10.0.3.5:9100']);
  t.like(groups[0]!.labels, {
    __metrics_path__: '/m',
    __meta_tessera_task_name: 'web.1',
    __meta_tessera_task_slot: '1',
    __meta_tessera_task_state: 'running',
    __meta_tessera_task_desired_state: 'running',
    __meta_tessera_task_container_id: 'c-1',
    __meta_tessera_stack: 'shop',
    __meta_tessera_service_name: 'web',
    __meta_tessera_service_mode: 'replicated',
    __meta_tessera_network_id: 'shop/back',
    __meta_tessera_network_name: 'back',
    __meta_tessera_node_name: 'n1',
    __meta_tessera_node_role: 'manager',
    __meta_tessera_node_address: '192.168.5.1',
    __meta_tessera_service_label_team: 'a',
    __meta_tessera_service_label_com_example_x: 'y',
    __meta_tessera_service_label_prometheus_io_port: '9100',
  });
});

test('tasks: bad opt-in values and missing overlay addresses leave the task out with a reason', (t) => {
  const badPort = service('badport', { 'prometheus.io/scrape': 'true', 'prometheus.io/port': 'http' });
  const badPath = service('badpath', { ...OPT_IN, 'prometheus.io/path': 'no-slash' });
  const unplaced = service('unplaced', OPT_IN);
  const { groups, skipped } = taskTargetGroups(input([badPort, badPath, unplaced], [task(badPort, 1), task(badPath, 1), task(unplaced, 1)], { networks: {} }));
  t.deepEqual(groups, []);
  t.deepEqual(
    skipped.map((s) => s.what),
    ['task badpath.1 (stack shop)', 'task badport.1 (stack shop)', 'task unplaced.1 (stack shop)'],
  );
  t.regex(skipped[0]!.reason, /service badpath: label prometheus.io\/path must be an absolute URL path.*"no-slash"/);
  t.regex(skipped[1]!.reason, /service badport: label prometheus.io\/port must be a port number 1-65535, got "http"/);
  t.regex(skipped[2]!.reason, /no overlay network address/);
});

test('tasks: the number of targets, service labels and label value sizes are bounded', (t) => {
  const many: Record<string, string> = { ...OPT_IN, 'a-long': 'x'.repeat(DEFAULT_SD_LIMITS.maxLabelValueLength + 1) };
  for (let i = 0; i < 100; i++) many[`l${String(i).padStart(3, '0')}`] = 'v';
  const svc = service('web', many);
  const tasks = [1, 2, 3, 4].map((slot) => task(svc, slot));
  const addresses = Object.fromEntries(tasks.map((tk, i) => [`shop/${tk.metadata.name}`, `10.0.1.${i + 2}`]));
  const limits = { maxTargets: 3, maxServiceLabels: 10, maxLabelValueLength: DEFAULT_SD_LIMITS.maxLabelValueLength };
  const { groups, skipped } = taskTargetGroups(
    input([svc], tasks, { networks: { 'shop/default': network('shop/default', 'default', 'default', addresses) } }, { limits }),
  );
  t.is(groups.length, 3);
  t.deepEqual(skipped, [{ what: 'task web.4 (stack shop)', reason: 'the response already holds 3 targets (the limit)' }]);
  const serviceLabels = Object.keys(groups[0]!.labels).filter((k) => k.startsWith('__meta_tessera_service_label_'));
  t.is(serviceLabels.length, 9, 'ten labels taken in sorted order, the over-long one among them dropped');
  t.false(serviceLabels.includes('__meta_tessera_service_label_a_long'));
});

test('tasks: only running tasks that should run, of services that still exist', (t) => {
  const svc = service('web', OPT_IN);
  const stopping = { ...task(svc, 2), desiredState: 'shutdown' as const };
  const orphan = task(service('gone', OPT_IN), 1);
  const networks: ClusterNetworkState = {
    networks: {
      'shop/default': network('shop/default', 'default', 'default', { 'shop/web.1': '10.0.1.2', 'shop/web.2': '10.0.1.3', 'shop/gone.1': '10.0.1.4' }),
    },
  };
  const { groups } = taskTargetGroups(input([svc], [task(svc, 1), stopping, orphan], networks));
  t.deepEqual(
    groups.map((g) => g.targets[0]),
    ['10.0.1.2:9100'],
  );
});
