// Image pull metrics from real pulls: Debian's docker-registry on loopback holds busybox; the
// store pulls it (bytes, a success, its duration), finds it stored the next time (no pull), and
// fails to pull a tag the registry does not have (a failure).
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from 'prom-client';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { AgentMetrics } from '../../agent/metrics/agent-metrics.js';
import { buildBusyboxImage } from '../helpers/busybox-image.js';
import { pushImage, startRegistry } from '../helpers/registry.js';

async function sample(registry: client.Registry, name: string, sampleName: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.find(
    (v) => ((v as { metricName?: string }).metricName ?? name) === sampleName && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  )?.value;
}

test('a registry pull counts its bytes, its result and its time; a stored image is no pull; a missing tag is a failure', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'tessera-pull-metrics-'));
  const registry = await startRegistry();
  t.teardown(async () => {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  });
  const busybox = await buildBusyboxImage(join(work, 'busybox'));
  await pushImage(busybox.ociLayoutDir, registry.host, 'metrics/busybox:v1');
  const prom = new client.Registry();
  const metrics = new AgentMetrics(prom);
  const root = join(work, 'store');
  const store = new LocalImageStore({ root, credentialsFile: join(work, 'no-credentials.json'), insecureRegistries: [registry.host], metrics });

  await store.ensure(`${registry.host}/metrics/busybox:v1`);
  const pulls = () => sample(prom, 'tessera_agent_image_pulls_total', 'tessera_agent_image_pulls_total', { source: 'registry', result: 'success' });
  t.is(await pulls(), 1);
  const bytes = await sample(prom, 'tessera_agent_image_pull_bytes_total', 'tessera_agent_image_pull_bytes_total', { source: 'registry' });
  t.true((bytes ?? 0) > 100_000, `busybox's blobs were downloaded (${bytes} bytes)`);
  t.is(await sample(prom, 'tessera_agent_image_pull_duration_seconds', 'tessera_agent_image_pull_duration_seconds_count', { source: 'registry' }), 1);

  await store.ensure(`${registry.host}/metrics/busybox:v1`);
  t.is(await pulls(), 1, 'a stored image is not pulled again');

  await t.throwsAsync(store.ensure(`${registry.host}/metrics/busybox:absent`));
  t.is(await sample(prom, 'tessera_agent_image_pulls_total', 'tessera_agent_image_pulls_total', { source: 'registry', result: 'failure' }), 1);
  t.is(await sample(prom, 'tessera_agent_image_pull_duration_seconds', 'tessera_agent_image_pull_duration_seconds_count', { source: 'registry' }), 2);
});
