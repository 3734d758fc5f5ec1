// The shipped Prometheus files (deploy/prometheus/) against Debian's promtool: the configuration
// parses with its certificate files present, the rules are valid, and their unit tests (each
// alert fired from synthetic series) pass. The configuration's SD URLs are held against the paths
// tsd serves.
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';
import { parse } from 'yaml';

import { SD_NODES_PATH, SD_TASKS_PATH } from '../../control-plane/metrics/prometheus-sd-route.js';
import { REPO_ROOT } from '../helpers/import-graph.js';
import { testPki } from '../helpers/test-pki.js';
import { joinPem } from '../../common/identity/x509.js';

const run = promisify(execFile);
const DIR = join(REPO_ROOT, 'deploy/prometheus');
const PROMTOOL = '/usr/bin/promtool';
const CERT_DIR = '/etc/prometheus/tessera';

async function promtool(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run(PROMTOOL, args, { cwd: DIR, timeout: 120_000 });
  return stdout + stderr;
}

test('prometheus.yml passes promtool check config with a real viewer certificate in place of the PEM files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-prom-'));
  try {
    // The scrape identity as `tsctl cluster user add prometheus --role viewer` gives it, written as PEM files.
    const { identity } = await testPki().then((pki) => pki.user('prometheus', 'viewer'));
    const certs = join(dir, 'tessera');
    await mkdir(certs);
    await writeFile(join(certs, 'ca.pem'), joinPem(identity.material.trustedRootPems));
    await writeFile(join(certs, 'cert.pem'), identity.material.certChainPem);
    await writeFile(join(certs, 'key.pem'), identity.material.keyPem, { mode: 0o600 });
    const config = await readFile(join(DIR, 'prometheus.yml'), 'utf8');
    t.true(config.includes(CERT_DIR), `the shipped config reads its certificates from ${CERT_DIR}`);
    await writeFile(join(dir, 'prometheus.yml'), config.replaceAll(CERT_DIR, certs));
    await copyFile(join(DIR, 'tessera-rules.yml'), join(dir, 'tessera-rules.yml'));
    const { stdout } = await run(PROMTOOL, ['check', 'config', join(dir, 'prometheus.yml')], { timeout: 120_000 });
    t.regex(stdout, /SUCCESS: .*prometheus\.yml is valid prometheus config file syntax/);
    t.regex(stdout, /SUCCESS: 13 rules found/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the configuration discovers nodes and tasks at the paths the managers serve, the nodes over mutual TLS', async (t) => {
  const config = parse(await readFile(join(DIR, 'prometheus.yml'), 'utf8')) as {
    scrape_configs: Array<{
      job_name: string;
      scheme?: string;
      tls_config?: Record<string, string>;
      http_sd_configs: Array<{ url: string; tls_config?: Record<string, string> }>;
    }>;
  };
  const jobs = new Map(config.scrape_configs.map((job) => [job.job_name, job]));
  const nodes = jobs.get('tessera-nodes');
  const tasks = jobs.get('tessera-tasks');
  t.is(nodes?.scheme, 'https');
  t.deepEqual(Object.keys(nodes?.tls_config ?? {}).sort(), ['ca_file', 'cert_file', 'key_file']);
  for (const [job, path] of [
    [nodes, SD_NODES_PATH],
    [tasks, SD_TASKS_PATH],
  ] as const) {
    t.true((job?.http_sd_configs.length ?? 0) > 0);
    for (const sd of job?.http_sd_configs ?? []) {
      t.true(sd.url.startsWith('https://') && new URL(sd.url).pathname === path, sd.url);
      t.truthy(sd.tls_config?.cert_file, `${sd.url} is read with the scrape certificate`);
    }
  }
});

test('tessera-rules.yml passes promtool check rules', async (t) => {
  t.regex(await promtool('check', 'rules', 'tessera-rules.yml'), /SUCCESS: 13 rules found/);
});

test('every alert fires in promtool test rules (tessera-rules.test.yml)', async (t) => {
  t.regex(await promtool('test', 'rules', 'tessera-rules.test.yml'), /SUCCESS/);
  type Labels = Record<string, string>;
  const rules = parse(await readFile(join(DIR, 'tessera-rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; labels?: Labels }> }> };
  const tests = parse(await readFile(join(DIR, 'tessera-rules.test.yml'), 'utf8')) as {
    tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: Array<{ exp_labels?: Labels }> }> }>;
  };
  // An alert name may have several rules (node memory pressure: low memory, OOM kills), told
  // apart by their `cause` label: each rule must fire in some case.
  const key = (name: string, labels: Labels | undefined): string => `${name}${labels?.['cause'] ? ` (cause ${labels['cause']})` : ''}`;
  const alerts = rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [key(r.alert, r.labels)] : [])));
  const fired = new Set(tests.tests.flatMap((c) => (c.alert_rule_test ?? []).flatMap((a) => a.exp_alerts.map((e) => key(a.alertname, e.exp_labels)))));
  t.deepEqual(
    alerts.filter((a) => !fired.has(a)),
    [],
    'every alert rule has a test case in which it fires',
  );
  t.is(alerts.length, 8);
  t.deepEqual(
    [...new Set(alerts.map((a) => a.split(' ')[0]))],
    [
      'TesseraNoLeader',
      'TesseraLeaderFlapping',
      'TesseraWalFsyncSlow',
      'TesseraNodeDown',
      'TesseraTaskRestartLoop',
      'TesseraRolloutFailed',
      'TesseraNodeMemoryPressure',
    ],
    "the issue's seven alerts",
  );
});
