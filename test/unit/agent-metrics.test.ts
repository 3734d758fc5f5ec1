// The agent's DNS query counts from the real resolver answering real DNS messages (handed to it
// directly: no sockets needed to see how each was answered), the start phase timer, and the text
// of a registry with every agent metric, checked by Debian's promtool.
import test from 'ava';
import dnsPacket from 'dns-packet';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as client from 'prom-client';

import { AgentMetrics, StartPhaseTimer, type StartPhase } from '../../agent/metrics/agent-metrics.js';
import { NameTable, ServiceResolver } from '../../agent/network/dns/index.js';

const run = promisify(execFile);

async function valueOf(registry: client.Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))?.value;
}

function query(name: string): Buffer {
  return dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
}

test('the overlay resolver counts queries by how it answered them', async (t) => {
  const registry = new client.Registry();
  const metrics = new AgentMetrics(registry);
  // Port 9 on loopback (discard) answers no DNS: forwarding fails and the client gets SERVFAIL.
  const resolver = new ServiceResolver({ upstreams: [{ address: '127.0.0.1', port: 9 }], forwardTimeoutMs: 200, metrics });
  t.teardown(() => resolver.close());
  const tables = [new NameTable({ services: [{ names: ['web'], endpointMode: 'dnsrr', tasks: ['10.0.0.11'] }], aliases: [] })];

  t.truthy(await resolver.handle(tables, query('web'), 'udp'));
  t.truthy(await resolver.handle(tables, query('web'), 'tcp'));
  t.truthy(await resolver.handle(tables, query('example.test'), 'udp'));
  t.truthy(await resolver.handle(tables, Buffer.from([0x12, 0x34, 0xff]), 'udp'));

  t.is(await valueOf(registry, 'tessera_agent_dns_queries_total', { transport: 'udp', result: 'answered' }), 1);
  t.is(await valueOf(registry, 'tessera_agent_dns_queries_total', { transport: 'tcp', result: 'answered' }), 1);
  t.is(await valueOf(registry, 'tessera_agent_dns_queries_total', { transport: 'udp', result: 'servfail' }), 1);
  t.is(await valueOf(registry, 'tessera_agent_dns_queries_total', { transport: 'udp', result: 'malformed' }), 1);
});

test('the start phase timer charges time to the phase being left, and a failure to the phase it happened in', async (t) => {
  const started: Array<Record<StartPhase, number>> = [];
  const failed: StartPhase[] = [];
  const observer = {
    taskStarted: (p: Readonly<Record<StartPhase, number>>) => void started.push({ ...p }),
    taskStartFailed: (p: StartPhase) => void failed.push(p),
  };
  const busy = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  const before = performance.now();
  const ok = new StartPhaseTimer(observer);
  ok.enter('image');
  busy(5);
  ok.enter(undefined); // a status report: charged to none
  busy(20);
  ok.enter('network');
  busy(5);
  ok.enter('spawn');
  busy(5);
  ok.started();
  const wall = (performance.now() - before) / 1000;
  ok.failed(); // after the start: nothing
  t.is(started.length, 1);
  const phases = started[0]!;
  t.true(phases.image >= 0.005, `image ${phases.image}`);
  // The 20 ms report is in the wall time but in no phase (an ordering of clocks, not a speed).
  const charged = phases.image + phases.rootfs + phases.network + phases.spawn;
  t.true(charged <= wall - 0.02 + 1e-6, `charged ${charged} s of ${wall} s`);
  t.is(phases.rootfs, 0);
  t.true(phases.network >= 0.005 && phases.spawn >= 0.005);
  t.deepEqual(failed, []);

  const bad = new StartPhaseTimer(observer);
  bad.enter('rootfs');
  bad.failed();
  t.deepEqual(failed, ['rootfs']);
});

test('every agent metric, moved once, passes promtool check metrics', async (t) => {
  const registry = new client.Registry();
  const metrics = new AgentMetrics(registry);
  metrics.taskStarted({ image: 0.1, rootfs: 0.2, network: 0.05, spawn: 0.3 });
  metrics.taskStartFailed('image');
  metrics.downloaded('registry', 1234);
  metrics.pulled('registry', true, 1.5);
  metrics.pulled('peer', false, 0.2);
  metrics.probed('healthy', 0.01);
  metrics.probed('timeout', 1);
  metrics.query('udp', 'forwarded');
  metrics.watchOverlayPeers(() => ({ nodes: 2, endpoints: 5 }));
  t.is(await valueOf(registry, 'tessera_agent_overlay_peer_nodes'), 2);
  t.is(await valueOf(registry, 'tessera_agent_overlay_peer_endpoints'), 5);
  const checking = run('promtool', ['check', 'metrics']);
  checking.child.stdin?.end(await registry.metrics());
  const { stdout, stderr } = await checking.catch((e: Error & { stdout: string; stderr: string }) => e);
  t.is(`${stdout}${stderr}`.trim(), '');
});
