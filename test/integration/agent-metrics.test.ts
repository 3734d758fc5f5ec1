// The agent's task start and health check metrics from a real container start: a worker over the
// native runtime, a real bridge in the test's own netns, busybox from the local store. The start
// phases and the probe's result must land in the registry, and its text must pass promtool.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as client from 'prom-client';

import { AgentMetrics, START_PHASES } from '../../agent/metrics/agent-metrics.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { API_VERSION, type Task } from '../../common/resources/types.js';
import { eventually } from '../helpers/eventually.js';
import { startWorkerHost } from '../helpers/worker-host.js';

const run = promisify(execFile);

async function sample(registry: client.Registry, name: string, sampleName: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.find(
    (v) => ((v as { metricName?: string }).metricName ?? name) === sampleName && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  )?.value;
}

function healthyTask(imageRef: string): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: 'metrics.1.a' },
    spec: {
      serviceName: 'metrics',
      serviceStack: '',
      serviceGeneration: 1,
      slot: 1,
      spec: {
        image: imageRef,
        command: ['sleep', '600'],
        healthcheck: { test: ['CMD', 'true'], intervalMs: 500, timeoutMs: 5000, retries: 3 },
        stopGracePeriodMs: 1000,
      },
    },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state: 'assigned', timestamp: new Date().toISOString() },
  };
}

test('a real container start records every start phase, and its health probe its result; promtool accepts the text', async (t) => {
  const host = await startWorkerHost(t, { name: 'agmet', subnet: '10.219.11.0/24' });
  const registry = new client.Registry();
  const metrics = new AgentMetrics(registry);
  const worker = host.startWorker({
    runtime: new NativeRuntime({ stateRoot: host.paths.runtimeState, cgroupParent: host.cgroupParent }),
    log: (message) => t.log(message),
    metrics,
  });
  worker.reconcile([healthyTask(host.imageRef)]);
  await eventually(
    () => `the task to run (reports: ${JSON.stringify(host.reports)})`,
    async () => host.reports.some((r) => r.state === 'running' || r.state === 'failed' || r.state === 'rejected'),
    60_000,
    100,
  );
  t.false(
    host.reports.some((r) => r.state === 'failed' || r.state === 'rejected'),
    JSON.stringify(host.reports),
  );
  for (const phase of START_PHASES) {
    t.is(
      await sample(registry, 'tessera_agent_task_start_phase_duration_seconds', 'tessera_agent_task_start_phase_duration_seconds_count', { phase }),
      1,
      phase,
    );
  }
  const total = await sample(registry, 'tessera_agent_task_start_duration_seconds', 'tessera_agent_task_start_duration_seconds_sum');
  const spawn = await sample(registry, 'tessera_agent_task_start_phase_duration_seconds', 'tessera_agent_task_start_phase_duration_seconds_sum', {
    phase: 'spawn',
  });
  t.true((spawn ?? 0) > 0, `spawn took time (${spawn} s)`);
  t.true((total ?? 0) >= (spawn ?? 0), `the whole start (${total} s) holds its phases`);
  t.log(`start phases: total ${total?.toFixed(3)} s, spawn ${spawn?.toFixed(3)} s`);

  await eventually(
    'a health probe to run',
    async () => ((await sample(registry, 'tessera_agent_health_checks_total', 'tessera_agent_health_checks_total', { result: 'healthy' })) ?? 0) >= 1,
    60_000,
    100,
  );
  t.true(((await sample(registry, 'tessera_agent_health_check_duration_seconds', 'tessera_agent_health_check_duration_seconds_count')) ?? 0) >= 1);
  t.is(
    await sample(registry, 'tessera_agent_task_start_failures_total', 'tessera_agent_task_start_failures_total', { phase: 'spawn' }),
    undefined,
    'no failed start',
  );

  const checking = run('promtool', ['check', 'metrics']);
  checking.child.stdin?.end(await registry.metrics());
  const { stdout, stderr } = await checking.catch((e: Error & { stdout: string; stderr: string }) => e);
  t.is(`${stdout}${stderr}`.trim(), '');
});
