// The agent's DNS query counts from the real resolver answering real DNS messages (handed to it
// directly: no sockets needed to see how each was answered), the start phase timer, and the text
// of a registry with every agent metric, checked by Debian's promtool.
import test from 'ava';
import dnsPacket from 'dns-packet';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as client from 'prom-client';

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AgentMetrics, StartPhaseTimer, TASK_EXIT_REASONS, type StartPhase } from '../../agent/metrics/agent-metrics.js';
import { NameTable, ServiceResolver } from '../../agent/network/dns/index.js';
import { parseMeminfo } from '../../agent/stats/node-memory.js';
import { exitReason } from '../../agent/worker/task-runner.js';

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
  metrics.taskExited('oom_killed');
  metrics.watchOverlayPeers(() => ({ nodes: 2, endpoints: 5 }));
  t.is(await valueOf(registry, 'tessera_agent_overlay_peer_nodes'), 2);
  t.is(await valueOf(registry, 'tessera_agent_overlay_peer_endpoints'), 5);
  const checking = run('promtool', ['check', 'metrics']);
  checking.child.stdin?.end(await registry.metrics());
  const { stdout, stderr } = await checking.catch((e: Error & { stdout: string; stderr: string }) => e);
  t.is(`${stdout}${stderr}`.trim(), '');
});

test('task exits are counted by reason, every reason exported from the start', async (t) => {
  const registry = new client.Registry();
  const metrics = new AgentMetrics(registry);
  for (const reason of TASK_EXIT_REASONS) t.is(await valueOf(registry, 'tessera_agent_task_exits_total', { reason }), 0, reason);
  // The reasons as the task runner derives them from a container's exit.
  const reasons = [
    exitReason({ exitCode: 0, oomKilled: false }, false),
    exitReason({ exitCode: 137, oomKilled: true }, false),
    exitReason({ exitCode: 1, oomKilled: false }, false),
    exitReason({ exitCode: 143, oomKilled: false, signal: 'SIGTERM' }, true),
    exitReason({ exitCode: 137, oomKilled: true }, true),
  ];
  t.deepEqual(reasons, ['completed', 'oom_killed', 'failed', 'stopped', 'stopped']);
  for (const reason of reasons) metrics.taskExited(reason);
  t.is(await valueOf(registry, 'tessera_agent_task_exits_total', { reason: 'completed' }), 1);
  t.is(await valueOf(registry, 'tessera_agent_task_exits_total', { reason: 'oom_killed' }), 1);
  t.is(await valueOf(registry, 'tessera_agent_task_exits_total', { reason: 'failed' }), 1);
  t.is(await valueOf(registry, 'tessera_agent_task_exits_total', { reason: 'stopped' }), 2);
});

test("node memory: /proc/meminfo's MemTotal and MemAvailable in bytes; an unreadable file leaves the gauges out and says so", async (t) => {
  t.deepEqual(parseMeminfo('MemTotal:       2048 kB\nMemFree:         100 kB\nMemAvailable:    1024 kB\n'), {
    totalBytes: 2048 * 1024,
    availableBytes: 1024 * 1024,
  });
  t.is(parseMeminfo('MemTotal:       2048 kB\nMemFree:         100 kB\n'), undefined, 'kernels before 3.14 have no MemAvailable');

  // This machine's own /proc.
  const registry = new client.Registry();
  new AgentMetrics(registry);
  const total = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
  t.is(await valueOf(registry, 'tessera_node_memory_total_bytes'), total);
  const available = (await valueOf(registry, 'tessera_node_memory_available_bytes'))!;
  t.true(available > 0 && available <= total, `available ${available} of ${total}`);

  // A proc root without meminfo.
  const dir = await mkdtemp(join(tmpdir(), 'tessera-meminfo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logged: string[] = [];
  const missing = new client.Registry();
  new AgentMetrics(missing, { procRoot: dir, log: (m) => logged.push(m) });
  t.is(await valueOf(missing, 'tessera_node_memory_available_bytes'), undefined);
  t.is(await valueOf(missing, 'tessera_node_memory_total_bytes'), undefined);
  t.true(logged.length >= 1 && logged[0]!.includes('meminfo'), logged.join('; '));
  const lines = (await missing.metrics()).split('\n');
  t.false(
    lines.some((l) => l.startsWith('tessera_node_memory_')),
    'no sample in the exposition',
  );

  // A proc root with a chosen meminfo.
  await writeFile(join(dir, 'meminfo'), 'MemTotal:       4000 kB\nMemAvailable:     300 kB\n');
  const chosen = new client.Registry();
  new AgentMetrics(chosen, { procRoot: dir });
  t.is(await valueOf(chosen, 'tessera_node_memory_available_bytes'), 300 * 1024);
});
