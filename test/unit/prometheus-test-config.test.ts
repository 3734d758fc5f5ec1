// The e2e test's Prometheus configuration (test/helpers/prometheus.ts, deriveTestConfig) is the
// shipped deploy/prometheus/prometheus.yml with only the managers, the PEM directory and the
// intervals changed: held here against the shipped file, and refused when it lacks what it replaces.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import test from 'ava';
import { parse } from 'yaml';

import { REPO_ROOT } from '../helpers/import-graph.js';
import { deriveTestConfig, SHIPPED_CERT_DIR } from '../helpers/prometheus.js';

const CHANGES = {
  managers: ['172.31.9.1', '172.31.9.2', '172.31.9.3'],
  pemDir: '/tmp/x/tessera',
  scrapeInterval: '1s',
  evaluationInterval: '1s',
  refreshInterval: '2s',
};

test('the shipped configuration with the managers, certificates and intervals replaced, nothing else', async (t) => {
  const shipped = await readFile(join(REPO_ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8');
  const derived = deriveTestConfig(shipped, CHANGES);
  t.false(derived.includes('MANAGER'));
  t.false(derived.includes(SHIPPED_CERT_DIR));
  const config = parse(derived) as {
    global: Record<string, string>;
    scrape_configs: Array<{ job_name: string; tls_config?: Record<string, string>; http_sd_configs: Array<{ url: string; refresh_interval: string }> }>;
  };
  t.deepEqual(config.global, { scrape_interval: '1s', evaluation_interval: '1s' });
  for (const job of config.scrape_configs) {
    t.deepEqual(
      job.http_sd_configs.map((sd) => sd.url.replace(/\/sd\/\w+$/, '')),
      CHANGES.managers.map((m) => `https://${m}:7421`),
    );
    t.true(job.http_sd_configs.every((sd) => sd.refresh_interval === '2s'));
  }
  t.is(config.scrape_configs[0]!.tls_config!.key_file, '/tmp/x/tessera/key.pem');
  // Undo the replacements: the rest is the shipped text, byte for byte.
  const back = derived
    .replaceAll('/tmp/x/tessera/', `${SHIPPED_CERT_DIR}/`)
    .replace(/scrape_interval: 1s/, 'scrape_interval: 15s')
    .replace(/evaluation_interval: 1s/, 'evaluation_interval: 15s')
    .replaceAll('refresh_interval: 2s', 'refresh_interval: 30s')
    .replace(/172\.31\.9\.(\d)/g, 'MANAGER$1');
  t.is(back, shipped);
});

test('a shipped file without what the test replaces, or with more managers, is refused', (t) => {
  t.throws(() => deriveTestConfig('global:\n  scrape_interval: 30s\n', CHANGES), { message: /no "MANAGER3" to replace/ });
  t.throws(() => deriveTestConfig('MANAGER1 MANAGER2 MANAGER3 MANAGER4', CHANGES), { message: /more managers than the 3 given/ });
});
