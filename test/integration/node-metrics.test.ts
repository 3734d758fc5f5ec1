// A node's /metrics as tsd serves it (daemon/metrics/), with a real container: a busybox container
// run by the native runtime under a memory limit, with two veth ends made inside its own network
// namespace, published by ContainerMetrics in cAdvisor's names; scraped over real mutual TLS on
// loopback with certificates from a real test CA, as Prometheus does (a viewer's PEM files,
// verifying the node's certificate by its IP address). The output passes `promtool check metrics`.
import test from 'ava';
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ContainerMetrics, type RunningTaskContainer } from '../../agent/stats/container-metrics.js';
import type { Task } from '../../common/resources/types.js';
import { joinPem } from '../../common/identity/x509.js';
import type { TlsIdentity } from '../../common/transport/tls-identity.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { MetricsServer } from '../../daemon/metrics/metrics-server.js';
import { newNodeRegistry } from '../../daemon/metrics/node-registry.js';
import { testPki } from '../helpers/test-pki.js';
import { RuntimeFixture } from '../helpers/runtime-fixture.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface Answer {
  status: number;
  body: string;
}

/** GET over HTTPS presenting `client` (or no certificate), trusting the cluster's roots and checking the server's IP SAN. */
function scrape(port: number, path: string, roots: readonly string[], client: TlsIdentity | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        ca: joinPem(roots),
        ...(client ? { cert: client.material.certChainPem, key: client.material.keyPem } : {}),
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function plainGet(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function taskFor(name: string, slot: number): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name, stack: 'shop' },
    spec: {
      serviceName: 'web',
      serviceStack: 'shop',
      serviceGeneration: 1,
      slot,
      spec: { image: 'busybox:test', containerLabels: { 'com.example/tier': 'front' } },
    },
    desiredState: 'running',
    status: { state: 'running', timestamp: new Date().toISOString() },
  } as Task;
}

/** The value of the one series of `name` whose label set contains every pair in `labels`. */
function seriesValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

test.serial("a real container's cAdvisor series over mutual TLS; who is refused; removed tasks disappear; promtool is clean", async (t) => {
  const fixture = await RuntimeFixture.create();
  const work = await mkdtemp(join(tmpdir(), 'tessera-node-metrics-'));
  const pki = await testPki();
  const otherPki = await testPki();
  const revoked = new Set<string>();
  let revocationsKnown = true;
  const running: RunningTaskContainer[] = [];
  const logs: string[] = [];
  const registry = newNodeRegistry();
  const server = new MetricsServer({
    identity: (await pki.node('node-1', 'worker', { ips: ['127.0.0.1'] })).identity,
    trust: () => ({ clusterId: pki.clusterId, isRevoked: (serial) => (revocationsKnown ? revoked.has(serial) : undefined) }),
    registries: () => [registry],
    log: (m) => logs.push(m),
  });
  t.teardown(async () => {
    await server.close();
    const left = await fixture.cleanup();
    await rm(work, { recursive: true, force: true });
    if (left.cgroups.length + left.mounts.length > 0) t.log(`removed leftovers: ${JSON.stringify(left)}`);
  });
  new ContainerMetrics({ runtime: fixture.runtime, running: () => running, node: 'node-1', log: (m) => logs.push(m) }).register(registry);
  const port = await server.listenTls('127.0.0.1', 0);
  const plainPort = await server.listenPlain('127.0.0.1', 0);
  server.addRoute('/extra', (_req, res, caller) => void res.writeHead(200).end(`hello ${caller.cn}\n`));

  // A busy container (its CPU counter moves) under a 64 MiB limit, with eth0/eth1 inside its netns.
  const startedAt = Date.now() / 1000;
  const id = await fixture.create({ args: ['sh', '-c', 'while :; do :; done'], memoryLimit: 64 * MiB });
  await fixture.runtime.start(id);
  const pid = (await fixture.runtime.state(id))!.pid;
  await run('nsenter', ['-t', String(pid), '-n', 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
  const task = taskFor('shop.web.1.t1', 1);
  running.push({ task, containerId: id });

  const viewer = (await pki.user('prometheus', 'viewer')).identity;
  const roots = [pki.ca.certPem];
  const labels = {
    name: id,
    image: 'busybox:test',
    container_label_com_example_tier: 'front',
    node: 'node-1',
    stack: 'shop',
    service: 'web',
    task: 'shop.web.1.t1',
    slot: '1',
  };
  const body = await eventually(
    'the busy container to have used CPU',
    async () => {
      const answer = await scrape(port, '/metrics', roots, viewer);
      t.is(answer.status, 200, answer.body);
      return (seriesValue(answer.body, 'container_cpu_usage_seconds_total', labels) ?? 0) > 0.05 ? answer.body : undefined;
    },
    30_000,
  );
  t.is(seriesValue(body, 'container_spec_memory_limit_bytes', labels), 64 * MiB);
  t.true(seriesValue(body, 'container_memory_usage_bytes', labels)! > 0);
  const workingSet = seriesValue(body, 'container_memory_working_set_bytes', labels)!;
  t.true(workingSet > 0 && workingSet <= seriesValue(body, 'container_memory_usage_bytes', labels)!);
  t.is(seriesValue(body, 'container_oom_events_total', labels), 0);
  t.true(seriesValue(body, 'container_processes', labels)! >= 1);
  const start = seriesValue(body, 'container_start_time_seconds', labels)!;
  t.true(Math.abs(start - startedAt) < 60, `start time ${start} near ${startedAt}`);
  t.not(seriesValue(body, 'container_network_receive_bytes_total', { ...labels, interface: 'eth0' }), undefined);
  t.not(seriesValue(body, 'container_network_transmit_bytes_total', { ...labels, interface: 'eth1' }), undefined);
  t.is(seriesValue(body, 'container_network_receive_bytes_total', { ...labels, interface: 'lo' }), undefined, 'loopback left out');
  // What the kernel has decides what is there: the runtime's own reading says whether this host counts throttling and RSS.
  const stats = await fixture.runtime.stats!(id);
  t.is(seriesValue(body, 'container_cpu_cfs_throttled_periods_total', labels) !== undefined, stats.cpu.throttledPeriods !== undefined, stats.cgroupVersion);
  t.is(seriesValue(body, 'container_memory_rss', labels) !== undefined, stats.memory.rssBytes !== undefined, stats.cgroupVersion);
  t.regex(body, /^tessera_process_cpu_seconds_total /m, "the process's own metrics too");

  const file = join(work, 'metrics.txt');
  await writeFile(file, body);
  const promtool = await run('sh', ['-c', `promtool check metrics < ${file}`]).catch((e: Error & { stdout: string; stderr: string }) => e);
  t.is(`${promtool.stdout}${promtool.stderr}`.trim(), '', 'promtool finds no problems');

  // Who may read: a node of this cluster too; routes beside /metrics to the same callers.
  const worker = (await pki.node('node-2', 'worker')).identity;
  t.is((await scrape(port, '/metrics', roots, worker)).status, 200);
  t.deepEqual(await scrape(port, '/extra', roots, viewer), { status: 200, body: 'hello prometheus\n' });
  // Refused at the handshake: no certificate, another cluster's node.
  await t.throwsAsync(scrape(port, '/metrics', roots, undefined), undefined, 'no client certificate');
  const stranger = (await otherPki.node('node-1', 'worker')).identity;
  await t.throwsAsync(scrape(port, '/metrics', roots, stranger), undefined, "another cluster's node certificate");
  // Plain HTTP to the TLS port gets no metrics.
  const plainToTls = await plainGet(port, '/metrics').catch((err: Error) => ({ status: 0, body: err.message }));
  t.not(plainToTls.status, 200);
  // Revoked, and revocations not yet known: refused with the reason.
  revoked.add(parseIdentity(viewer.material.certChainPem).serial);
  const refused = await scrape(port, '/metrics', roots, viewer);
  t.is(refused.status, 401);
  t.regex(refused.body, /revoked/);
  revoked.clear();
  revocationsKnown = false;
  t.is((await scrape(port, '/metrics', roots, viewer)).status, 503);
  revocationsKnown = true;

  // --metrics-insecure: /metrics in plain HTTP, nothing else.
  const plain = await plainGet(plainPort, '/metrics');
  t.is(plain.status, 200);
  t.not(seriesValue(plain.body, 'container_cpu_usage_seconds_total', labels), undefined);
  t.is((await plainGet(plainPort, '/extra')).status, 404);

  // The task goes: its series go with it.
  running.length = 0;
  await fixture.runtime.kill(id, 'SIGKILL');
  await fixture.runtime.wait(id);
  await fixture.runtime.delete(id);
  await new Promise((resolve) => setTimeout(resolve, 600));
  const after = await scrape(port, '/metrics', roots, viewer);
  t.is(after.status, 200);
  t.false(after.body.includes('task="shop.web.1.t1"'), 'no series of the removed task');
  t.deepEqual(logs, []);
});
