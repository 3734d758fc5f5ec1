// A real Prometheus (Debian's /usr/bin/prometheus, 2.42) scraping a 3-node netns cluster of three
// managers with the SHIPPED configuration and rules (deploy/prometheus/): every node's tsd over
// mutual TLS with a viewer certificate from `tsctl cluster user add --pem-dir`, nodes and tasks
// found through the managers' HTTP service discovery, an opted-in task's own endpoint at its
// overlay address. The test copy of prometheus.yml changes only the MANAGERn addresses, the PEM
// files' directory and (to keep the test short) the scrape, evaluation and SD refresh intervals
// (test/helpers/prometheus.ts, deriveTestConfig); tessera-rules.yml is used unchanged.
//
// Where Prometheus runs: inside the network namespace of a task ("promhost", a busybox `sleep` of
// the same stack, so on the same overlay network as the tasks it scrapes), by `nsenter --net`. It
// sees the network exactly as a Prometheus service of that stack would (overlay addresses, and the
// managers' underlay addresses through the node's NAT), while the binary, its configuration, the
// certificates and its data stay host files in the test's directory: no image holding a 50 MB Go
// binary to build and push, no secrets or mounts to stand in for, and the process is the test's own,
// stopped by its PID. Its API is asked with curl on that namespace's loopback.
//
// Checked: up == 1 for every node (job tessera-nodes); a busy task's CPU rate; a task filling
// 48 MiB of /dev/shm by its working set; tessera_server_has_leader on every manager; the opted-in
// task's own metric with the stack/service/task/node labels of the relabelling; the restart-loop
// alert of tessera-rules.yml pending or firing for a crash-looping service; and, last, after kill -9
// of the leader's tsd, the survivors' tessera_server_leader_changes_seen_total grown.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { Service, Task } from '../../common/resources/types.js';
import { createNetnsCluster, destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { copyLogs, saveClusterLogs } from '../helpers/cluster-logs.js';
import { eventually } from '../helpers/eventually.js';
import { deriveTestConfig, startPrometheus, type PromSample, type RunningPrometheus } from '../helpers/prometheus.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const STACK = 'pm';
const SHIPPED_DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const TSCTL = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const PROM_PORT = 9090;
/** The opted-in task's own metric, served as a static file by busybox httpd. */
const APP_METRIC = 'e2e_app_requests_total';
const APP_PORT = 8080;

let cluster: NetnsClusterState | undefined;
let client: ApiClient | undefined;
let registry: UnderlayRegistry | undefined;
let prometheus: RunningPrometheus | undefined;
let workDir: string;
let image: string;
let failed = false;
const octet = 100 + Math.floor(Math.random() * 100);

function service(name: string, spec: Partial<Service['spec']>, labels?: Record<string, string>): string {
  const object: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: STACK, ...(labels ? { labels } : {}) },
    spec: { image, command: ['sleep', '100000'], stopGracePeriodMs: 300, ...spec },
  };
  return JSON.stringify(object);
}

const on = (node: string) => ({ constraints: [`node.hostname==${node}`] });

async function tasks(): Promise<Task[]> {
  return (await client!.list({ kind: 'Task', stack: STACK })).objectsJson.map((j) => JSON.parse(j) as Task);
}

async function runningTask(serviceName: string): Promise<Task | undefined> {
  return (await tasks()).find((x) => x.spec.serviceName === serviceName && x.desiredState === 'running' && x.status.state === 'running');
}

const prom = (): RunningPrometheus => {
  if (!prometheus) throw new Error('prometheus did not start');
  return prometheus;
};

/** The query's samples once `accept` takes them (and at least one came back). */
async function whenQuery(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs = 60_000): Promise<PromSample[]> {
  let last: PromSample[] = [];
  return eventually(
    () => `${expr} (last: ${JSON.stringify(last.map((s) => [s.metric, s.value[1]]))})`,
    async () => {
      last = await prom().query(expr);
      return last.length > 0 && accept(last) ? last : undefined;
    },
    timeoutMs,
    1000,
  );
}

const valueOf = (sample: PromSample): number => Number(sample.value[1]);
const byInstance = (samples: PromSample[]): Map<string, number> => new Map(samples.map((s) => [s.metric.instance ?? '', valueOf(s)]));

test.before(async (t) => {
  t.timeout(4 * 60_000);
  failed = true; // until the set-up is through
  workDir = await mkdtemp(join(tmpdir(), 'tessera-prom-e2e-'));
  const prefix = `pr${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  cluster = await createNetnsCluster({
    prefix,
    nodes: 3,
    managers: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    // Long: the killed leader's node is not marked down (and its tasks not moved) while we look.
    nodeDownAfterMs: 120_000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
  });
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  image = registry.image;

  // The scrape identity as docs/prometheus.md makes it.
  const pemDir = join(workDir, 'prometheus', 'tessera');
  await run(
    process.execPath,
    [
      TSCTL,
      '--server',
      cluster.apiSocket,
      'cluster',
      'user',
      'add',
      'prometheus',
      '--role',
      'viewer',
      '--output',
      join(workDir, 'prometheus.tessera.json'),
      '--pem-dir',
      pemDir,
    ],
    { timeout: 60_000 },
  );

  await client.apply({
    objectsJson: [
      // Prometheus runs in this task's network namespace (see the header).
      service('promhost', { placement: on('node-3') }),
      service('burn', { command: ['sh', '-c', 'while :; do :; done'], resources: { limits: { cpus: 0.3 } }, placement: on('node-2') }),
      service('idle', { placement: on('node-2') }),
      service('mem', {
        command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 && exec sleep 100000'],
        resources: { limits: { memory: 256 * MiB } },
        placement: on('node-1'),
      }),
      service(
        'app',
        {
          command: [
            'sh',
            '-c',
            `mkdir -p /www && printf '# HELP ${APP_METRIC} Requests.\\n# TYPE ${APP_METRIC} counter\\n${APP_METRIC} 42\\n' > /www/metrics && exec httpd -f -p ${APP_PORT} -h /www`,
          ],
          placement: on('node-2'),
        },
        { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(APP_PORT), 'prometheus.io/path': '/metrics' },
      ),
      // Lives 3 s (three scrapes), fails, and is restarted after a short back-off: a crash loop.
      service('crash', {
        command: ['sh', '-c', 'sleep 3; exit 1'],
        restart: { condition: 'any', delayMs: 200, maxDelayMs: 1000 },
        placement: on('node-1'),
      }),
    ],
  });
  const host = await eventually(
    'the long-running tasks to run',
    async () => {
      const wanted = ['promhost', 'burn', 'idle', 'mem', 'app'];
      const found = await Promise.all(wanted.map(runningTask));
      return found.every((x) => x !== undefined) ? found[0] : undefined;
    },
    120_000,
  );
  if (host.status.pid === undefined) throw new Error('promhost runs without a pid');

  const promDir = join(workDir, 'prometheus');
  await mkdir(join(promDir, 'data'), { recursive: true });
  const shipped = await readFile(join(SHIPPED_DIR, 'prometheus.yml'), 'utf8');
  const managers = cluster.nodes.filter((n) => n.role === 'manager').map((n) => n.underlayAddress);
  const config = deriveTestConfig(shipped, { managers, pemDir, scrapeInterval: '1s', evaluationInterval: '1s', refreshInterval: '2s' });
  await writeFile(join(promDir, 'prometheus.yml'), config);
  // rule_files names it relative to the configuration: beside it, unchanged.
  await copyFile(join(SHIPPED_DIR, 'tessera-rules.yml'), join(promDir, 'tessera-rules.yml'));
  const check = await run('promtool', ['check', 'config', join(promDir, 'prometheus.yml')], { timeout: 60_000 });
  t.log(check.stdout.trim());
  prometheus = await startPrometheus({
    netnsOfPid: host.status.pid,
    configFile: join(promDir, 'prometheus.yml'),
    dataDir: join(promDir, 'data'),
    logPath: join(workDir, 'prometheus.log'),
    port: PROM_PORT,
  });
  failed = false;
});

test.afterEach.always((t) => {
  if (!t.passed) failed = true;
});

test.after.always(async () => {
  await prometheus?.stop();
  client?.close();
  const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
  if (keep && cluster) {
    await saveClusterLogs(cluster, keep);
    await copyLogs(keep, [{ path: join(workDir, 'prometheus.log'), name: 'prometheus.log' }]);
  } else if (failed && workDir) {
    const log = await readFile(join(workDir, 'prometheus.log'), 'utf8').catch((e: Error) => e.message);
    process.stderr.write(`prometheus e2e failed; the end of Prometheus's log:\n${log.split('\n').slice(-60).join('\n')}\n`);
  }
  if (cluster) await destroyNetnsCluster(cluster);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('every node is up in job tessera-nodes, found through the managers’ /sd/nodes over mutual TLS', async (t) => {
  const up = await whenQuery('up{job="tessera-nodes"}', (s) => s.length === 3 && s.every((x) => valueOf(x) === 1));
  t.deepEqual([...byInstance(up).keys()].sort(), ['node-1', 'node-2', 'node-3'], 'instance is the node name (relabelled)');
  t.true(
    up.every((s) => s.metric.role === 'manager'),
    'role from __meta_tessera_node_role',
  );
  const targets = (await prom().activeTargets()).filter((x) => x.scrapePool === 'tessera-nodes');
  t.log(targets.map((x) => `${x.labels.instance} ${x.scrapeUrl} ${x.health}`).join('\n'));
  // Three SD configs give the same three targets: Prometheus keeps one of each.
  t.is(targets.length, 3);
  for (const target of targets) {
    const node = cluster!.nodes.find((n) => n.name === target.labels.instance)!;
    t.is(target.scrapeUrl, `https://${node.underlayAddress}:7421/metrics`);
    t.is(target.health, 'up');
  }
});

test.serial('Raft: every manager has a leader, exactly one is it', async (t) => {
  const hasLeader = await whenQuery('tessera_server_has_leader{job="tessera-nodes"}', (s) => s.length === 3 && s.every((x) => valueOf(x) === 1));
  t.is(hasLeader.length, 3);
  const isLeader = await whenQuery('tessera_server_is_leader{job="tessera-nodes"} == 1', (s) => s.length === 1);
  t.log(`leader: ${isLeader[0]!.metric.instance}`);
});

test.serial('container metrics: a busy task’s CPU rate, a memory filler’s working set', async (t) => {
  const burn = await whenQuery('rate(container_cpu_usage_seconds_total{job="tessera-nodes", stack="pm", service="burn"}[10s])', (s) => valueOf(s[0]!) > 0);
  const idle = await whenQuery('rate(container_cpu_usage_seconds_total{job="tessera-nodes", stack="pm", service="idle"}[10s])', () => true);
  t.log(`burn ${valueOf(burn[0]!).toFixed(3)} cores (limit 0.3), idle ${valueOf(idle[0]!).toFixed(4)}`);
  t.is(burn[0]!.metric.node, 'node-2');
  t.is(burn[0]!.metric.instance, 'node-2', 'scraped from its own node');
  t.true(valueOf(burn[0]!) > 0.02, 'the burner uses CPU');
  t.true(valueOf(burn[0]!) > valueOf(idle[0]!) * 4, 'far more than a sleeping task');
  // 48 MiB of /dev/shm is the task's memory (shared memory is not inactive file cache): at least
  // that, and not much more (busybox sh, dd's buffer, page tables).
  const mem = await whenQuery('container_memory_working_set_bytes{job="tessera-nodes", stack="pm", service="mem"}', (s) => valueOf(s[0]!) >= 48 * MiB);
  const bytes = valueOf(mem[0]!);
  t.log(`mem working set ${(bytes / MiB).toFixed(1)} MiB`);
  t.true(bytes >= 48 * MiB && bytes <= 64 * MiB, `${bytes} bytes`);
  t.is(mem[0]!.metric.node, 'node-1');
  const limit = await whenQuery('container_spec_memory_limit_bytes{job="tessera-nodes", stack="pm", service="mem"}', () => true);
  t.is(valueOf(limit[0]!), 256 * MiB);
});

test.serial('an opted-in task’s own endpoint is scraped at its overlay address, with the relabelled labels', async (t) => {
  const app = (await runningTask('app'))!;
  const up = await whenQuery('up{job="tessera-tasks"}', (s) => s.some((x) => x.metric.service === 'app' && valueOf(x) === 1));
  t.is(up.length, 1, 'only the opted-in service is a target');
  const own = await whenQuery(`${APP_METRIC}{job="tessera-tasks"}`, (s) => s.length === 1);
  const labels = own[0]!.metric;
  t.is(valueOf(own[0]!), 42);
  t.like(labels, { stack: STACK, service: 'app', task: app.metadata.name, node: 'node-2', slot: String(app.spec.slot) });
  const target = (await prom().activeTargets()).find((x) => x.scrapePool === 'tessera-tasks')!;
  t.log(`${target.scrapeUrl} ${target.health} ${target.lastError}`);
  t.is(target.health, 'up');
  t.regex(target.scrapeUrl, new RegExp(`^http://[0-9.]+:${APP_PORT}/metrics$`));
  // The task's address on its stack's overlay network, not a node's underlay address.
  t.like(target.discoveredLabels, { __meta_tessera_stack: STACK, __meta_tessera_service_name: 'app', __meta_tessera_node_name: 'node-2' });
  t.truthy(target.discoveredLabels.__meta_tessera_network_name);
  t.false(target.scrapeUrl.startsWith(`http://172.31.${octet}.`), target.scrapeUrl);
});

test.serial('a crash-looping service raises TesseraTaskRestartLoop (pending or firing)', async (t) => {
  t.timeout(3 * 60_000);
  // The rule has no `for:`, so it fires as soon as its expression holds; pending would do as well:
  // either state proves the expression matched the service controller's real restart counts.
  const alert = await eventually(
    'TesseraTaskRestartLoop for pm/crash',
    async () =>
      (await prom().alerts()).find(
        (a) => a.labels.alertname === 'TesseraTaskRestartLoop' && a.labels.service === 'crash' && (a.state === 'pending' || a.state === 'firing'),
      ),
    120_000,
    1000,
  );
  t.log(`${alert.state}: ${alert.annotations.summary ?? ''}`);
  t.like(alert.labels, { stack: STACK, service: 'crash', severity: 'warning' });
  t.true(Number(alert.value) > 3);
  const none = (await prom().alerts()).filter((a) => a.labels.alertname === 'TesseraTaskRestartLoop' && a.labels.service !== 'crash');
  t.deepEqual(none, [], 'no other service is in a loop');
});

test.serial('kill -9 of the leader’s tsd: the survivors count a leader change', async (t) => {
  const leaderSample = await whenQuery('tessera_server_is_leader{job="tessera-nodes"} == 1', (s) => s.length === 1);
  const leader = cluster!.nodes.find((n) => n.name === leaderSample[0]!.metric.instance)!;
  const survivors = cluster!.nodes.filter((n) => n !== leader).map((n) => n.name);
  const before = byInstance(await whenQuery('tessera_server_leader_changes_seen_total{job="tessera-nodes"}', (s) => s.length === 3));
  t.log(`leader ${leader.name}; changes seen before: ${JSON.stringify([...before])}`);
  // The cluster state holds the PID of the tsd this test started.
  process.kill(leader.pid, 'SIGKILL');
  const after = await whenQuery(
    'tessera_server_leader_changes_seen_total{job="tessera-nodes"}',
    (s) => survivors.every((name) => (byInstance(s).get(name) ?? 0) > (before.get(name) ?? Infinity)),
    60_000,
  );
  t.log(`after: ${JSON.stringify([...byInstance(after)])}`);
  const newLeader = await whenQuery('tessera_server_is_leader{job="tessera-nodes"} == 1 and on(instance) up == 1', (s) => s.length === 1);
  t.not(newLeader[0]!.metric.instance, leader.name);
  await whenQuery(`up{job="tessera-nodes", instance="${leader.name}"}`, (s) => valueOf(s[0]!) === 0);
  const hasLeader = await whenQuery(
    'tessera_server_has_leader{job="tessera-nodes"} and on(instance) up == 1',
    (s) => s.length === 2 && s.every((x) => valueOf(x) === 1),
  );
  t.deepEqual([...byInstance(hasLeader).keys()].sort(), survivors.sort());
});
