// The Grafana dashboard (deploy/grafana/tessera-cluster.json) without a Grafana (none is
// installable here): its structure, every PromQL query in it parsed by Debian's promtool and
// evaluated by it on synthetic series shaped as tsd exposes them (each must return data), and
// every metric those queries (and the shipped rules) name is one tsd really registers — taken
// from the real registries a node and a manager build (a one-member Raft group for the store's),
// and documented in docs/prometheus.md. The series' values are made up: this shows that the
// queries select what exists, not that their figures are right.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';
import { parse, stringify } from 'yaml';

import { AgentMetrics } from '../../agent/metrics/agent-metrics.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { ContainerMetrics } from '../../agent/stats/container-metrics.js';
import { CONTAINER_METRICS } from '../../agent/stats/container-series.js';
import { textCollectors } from '../../common/metrics/text-collectors.js';
import { ControlPlaneMetrics } from '../../control-plane/metrics/control-plane-metrics.js';
import { DaemonMetrics } from '../../control-plane/metrics/daemon-metrics.js';
import { registerRaftMetrics } from '../../control-plane/metrics/raft-metrics.js';
import { startLocalGroup } from '../../control-plane/raft/host/local-group.js';
import { newNodeRegistry } from '../../daemon/metrics/node-registry.js';
import { REPO_ROOT } from '../helpers/import-graph.js';

const run = promisify(execFile);
const DASHBOARD = join(REPO_ROOT, 'deploy/grafana/tessera-cluster.json');
const RULES = join(REPO_ROOT, 'deploy/prometheus/tessera-rules.yml');

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  type: string;
  name: string;
  query: string | { query: string };
  allValue?: string;
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, rows' collapsed children included. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Where each query comes from, and its text: panel targets and the query variables' selectors. */
function queries(d: Dashboard): Array<{ where: string; expr: string }> {
  const out = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })));
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const text = typeof v.query === 'string' ? v.query : v.query.query;
    // label_values(SELECTOR, LABEL): the selector is PromQL; the function is Grafana's own.
    const m = /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(text);
    if (!m) throw new Error(`variable ${v.name}: ${text} is not label_values(selector, label)`);
    out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

/**
 * Grafana's variables replaced as Grafana would with a 1m step and, by default, "All" chosen (the
 * variables' allValue, .*); or with the values given (one node, stack, service picked).
 */
function substitute(expr: string, variables: readonly string[], chosen: Readonly<Record<string, string>> = {}): string {
  let out = expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replaceAll('$__range', '1h');
  for (const name of variables) {
    const value = chosen[name] ?? '.*';
    out = out.replaceAll(`\${${name}}`, value).replaceAll(`$${name}`, value);
  }
  return out;
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions (followed by
 * "("), keywords, label names (inside {} or a by/on list), strings or durations.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings (label values, label_replace arguments)
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice(m.index + word.length).trimStart();
    if (after.startsWith('(')) continue;
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

interface Family {
  type: string;
  labelNames: readonly string[];
}

/** The labels every container series carries (agent/stats/container-series.ts taskLabels), and the families' own. */
const CONTAINER_LABELS = ['name', 'image', 'node', 'stack', 'service', 'task', 'slot'];
const CONTAINER_EXTRA: Record<string, string> = {
  container_network_receive_bytes_total: 'interface',
  container_network_transmit_bytes_total: 'interface',
  container_fs_reads_bytes_total: 'device',
  container_fs_writes_bytes_total: 'device',
};

/**
 * The metric families tsd exposes (name → type and label names), from the real registries of a
 * node and of a manager on a Raft store.
 */
async function exportedFamilies(t: { teardown(f: () => unknown): void }): Promise<Map<string, Family>> {
  const node = newNodeRegistry();
  new AgentMetrics(node);
  // The container families exist whatever runs; with no container running they just have no series.
  const stateRoot = await mkdtemp(join(tmpdir(), 'tessera-dash-runtime-'));
  t.teardown(() => rm(stateRoot, { recursive: true, force: true }));
  new ContainerMetrics({ runtime: new NativeRuntime({ stateRoot }), running: () => [], node: 'n1', log: () => {} }).register(node);
  const manager = new DaemonMetrics(() => []);
  new ControlPlaneMetrics(manager.registry, () => []);
  const group = await startLocalGroup(1);
  t.teardown(() => group.stop());
  const store = registerRaftMetrics(manager.registry, group.stores[0]!, { probeEveryMs: 0 });
  t.teardown(() => store.stop());

  const families = new Map<string, Family>();
  for (const registry of [node, manager.registry]) {
    for (const metric of registry.getMetricsAsArray()) {
      // prom-client keeps a metric's label names on the object; its typings leave the field out.
      const own = (metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
      const extra = CONTAINER_EXTRA[metric.name];
      const labelNames = metric.name.startsWith('container_') ? [...CONTAINER_LABELS, ...(extra ? [extra] : [])] : own;
      families.set(metric.name, { type: String(metric.type), labelNames });
    }
  }
  // The container families are written as text beside the registry (common/metrics/text-collectors.ts).
  for (const collector of textCollectors(node)) {
    for (const name of collector.names) {
      const family = CONTAINER_METRICS.find((m) => m.name === name);
      const extra = CONTAINER_EXTRA[name];
      families.set(name, { type: family?.type ?? 'untyped', labelNames: [...CONTAINER_LABELS, ...(extra ? [extra] : [])] });
    }
  }
  return families;
}

/** The series names of those families (a histogram's _bucket, _sum and _count), and Prometheus's `up`. */
async function exportedNames(t: { teardown(f: () => unknown): void }): Promise<Set<string>> {
  const names = new Set<string>(['up']);
  for (const [name, family] of await exportedFamilies(t)) {
    if (family.type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    else if (family.type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(`${name}${suffix}`);
    else names.add(name);
  }
  return names;
}

/** Whether docs/prometheus.md documents a series name (a histogram by its base name; `tessera_process_*` as a family). */
function documented(doc: string, name: string): boolean {
  const base = name.replace(/_(bucket|sum|count)$/, '');
  if (doc.includes(`\`${name}\``) || doc.includes(`\`${base}\``) || doc.includes(`\`${name}{`) || doc.includes(`\`${base}{`)) return true;
  if (name === 'up') return doc.includes('`up{job="tessera-nodes"}`');
  return ['tessera_process_', 'tessera_nodejs_'].some((prefix) => name.startsWith(prefix) && doc.includes(`\`${prefix}*\``));
}

test('metricNames finds the selected metrics, not functions, labels or keywords', (t) => {
  t.deepEqual(
    metricNames('histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{job="x", le!="1"}[5m]))) / on (instance) group_left b > 0 or vector(0)'),
    ['a_bucket', 'b'],
  );
  t.deepEqual(metricNames('label_replace(x_total{a="b"} / y, "node", "$1", "instance", "(.*)")'), ['x_total', 'y']);
});

test('the dashboard: schema 38, a Prometheus datasource variable every query uses, panels on a 24-column grid without overlap', async (t) => {
  const d = await dashboard();
  t.is(d.schemaVersion, 38);
  t.is(d.uid, 'tessera-cluster');
  const ds = d.templating.list.find((v) => v.type === 'datasource');
  t.is(ds?.query, 'prometheus', 'a datasource variable of Prometheus data sources');
  const variables = d.templating.list.map((v) => v.name);
  t.deepEqual(variables, ['datasource', 'node', 'stack', 'service']);
  for (const v of d.templating.list.filter((v) => v.type === 'query')) t.is(v.allValue, '.*', `${v.name}: "All" is a regex matching everything`);

  const panels = allPanels(d);
  t.is(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  const cells = new Map<string, string>();
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos;
    t.true(x >= 0 && w > 0 && x + w <= 24, `${p.title}: inside the 24 columns`);
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        const other = cells.get(`${row}:${col}`);
        t.is(other, undefined, `${p.title} overlaps ${other ?? ''}`);
        cells.set(`${row}:${col}`, p.title);
      }
    }
    if (p.type === 'row') continue;
    t.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `${p.title}: the datasource variable`);
    t.true((p.targets ?? []).length > 0, `${p.title}: has a query`);
    for (const target of p.targets ?? []) t.deepEqual(target.datasource, { type: 'prometheus', uid: '${datasource}' }, `${p.title} ${target.refId}`);
  }
  // What the issue asks the overview to show.
  const titles = panels.map((p) => p.title);
  for (const wanted of [
    'Nodes up',
    'Raft leader',
    'Leader changes (1h)',
    'Proposals',
    'WAL fsync p99',
    'API requests by method',
    'API latency p99 by method',
    'Tasks by state',
    'Pending and unschedulable tasks',
    'CPU by service',
    'Memory working set by service',
    'Node restarts and down',
    'Image pulls',
  ])
    t.true(titles.includes(wanted), `a panel "${wanted}"`);
});

test('every query of the dashboard passes promtool (as recording rules), and every metric it names is registered by tsd and documented', async (t) => {
  const d = await dashboard();
  const variables = d.templating.list.map((v) => v.name);
  const all = queries(d).map((q) => ({ ...q, expr: substitute(q.expr, variables) }));
  t.true(all.length >= 40, `${all.length} queries`);
  for (const q of all) t.false(q.expr.includes('$'), `${q.where}: no Grafana variable left in ${q.expr}`);

  // One recording rule per query: promtool parses each expression (and refuses, e.g., a range where
  // an instant vector is needed, or an unknown function).
  const dir = await mkdtemp(join(tmpdir(), 'tessera-dash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'dashboard-queries.yml');
  await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules: all.map((q, i) => ({ record: `dashboard:query_${i}`, expr: q.expr })) }] }));
  const checked = await run('/usr/bin/promtool', ['check', 'rules', file], { timeout: 120_000 }).catch((e: Error & { stdout?: string; stderr?: string }) => {
    throw new Error(`promtool refused a dashboard query: ${e.stdout ?? ''}${e.stderr ?? ''}`);
  });
  t.regex(checked.stdout, new RegExp(`SUCCESS: ${all.length} rules found`));

  const exported = await exportedNames(t);
  const doc = await readFile(join(REPO_ROOT, 'docs/prometheus.md'), 'utf8');
  const used = new Set(all.flatMap((q) => metricNames(q.expr)));
  t.true(used.size >= 30, `${used.size} metrics used`);
  t.deepEqual(
    [...used].filter((name) => !exported.has(name)),
    [],
    'every metric the dashboard queries is registered by a node or a manager',
  );
  t.deepEqual(
    [...used].filter((name) => !documented(doc, name)),
    [],
    'and documented in docs/prometheus.md',
  );
});

/** Label values that let the dashboard's filters select something: an API error, a rollout not completed, an OOM kill. */
const FILTER_VALUES: Record<string, string> = { code: 'UNAVAILABLE', state: 'paused', reason: 'oom_killed' };

/**
 * Input series for `promtool test rules` shaped as tsd exposes them: the family's real label names
 * (with values), the labels prometheus.yml adds (job, instance = the node name, role), counters
 * growing by 1 every 15 s scrape and gauges at 1.
 */
function syntheticSeries(used: ReadonlySet<string>, families: ReadonlyMap<string, Family>): Array<{ series: string; values: string }> {
  const out: Array<{ series: string; values: string }> = [];
  const target = { job: 'tessera-nodes', instance: 'n1', role: 'manager' };
  const text = (name: string, labels: Record<string, string>): string =>
    `${name}{${Object.entries(labels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ')}}`;
  for (const name of used) {
    if (name === 'up') {
      out.push({ series: text('up', target), values: '1+0x80' });
      continue;
    }
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const family = families.get(name) ?? families.get(base);
    if (!family) throw new Error(`no family for ${name}`);
    const own = Object.fromEntries(family.labelNames.map((l) => [l, FILTER_VALUES[l] ?? (l === 'node' ? 'n1' : `${l}-1`)]));
    const labels = { ...own, ...target };
    if (name.endsWith('_bucket')) for (const le of ['0.1', '1', '+Inf']) out.push({ series: text(name, { ...labels, le }), values: '0+1x80' });
    else out.push({ series: text(name, labels), values: family.type === 'gauge' ? '1+0x80' : '0+1x80' });
  }
  return out;
}

test('every query of the dashboard returns data from series shaped as tsd exposes them (promtool test rules)', async (t) => {
  const d = await dashboard();
  const variables = d.templating.list.map((v) => v.name);
  // One node, stack and service picked (the synthetic series' values): a `=~".*"` would also match
  // a series that lacks the label, a real value only one that has it.
  const chosen = { node: 'n1', stack: 'stack-1', service: 'service-1' };
  const all = queries(d).map((q) => ({ ...q, expr: substitute(q.expr, variables, chosen) }));
  const families = await exportedFamilies(t);
  const used = new Set(all.flatMap((q) => metricNames(q.expr)));

  // Each query as an alert that fires when it returns at least one sample.
  const dir = await mkdtemp(join(tmpdir(), 'tessera-dash-eval-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const alertOf = (i: number): string => `DashboardQuery${i}`;
  await writeFile(
    join(dir, 'queries.yml'),
    stringify({ groups: [{ name: 'dashboard', rules: all.map((q, i) => ({ alert: alertOf(i), expr: `count(${q.expr}) > 0` })) }] }),
  );
  await writeFile(
    join(dir, 'queries.test.yml'),
    stringify({
      rule_files: ['queries.yml'],
      evaluation_interval: '15s',
      tests: [
        {
          interval: '15s',
          input_series: syntheticSeries(used, families),
          alert_rule_test: all.map((_, i) => ({ eval_time: '15m', alertname: alertOf(i), exp_alerts: [{ exp_labels: {} }] })),
        },
      ],
    }),
  );
  const result = await run('/usr/bin/promtool', ['test', 'rules', 'queries.test.yml'], { cwd: dir, timeout: 120_000 }).catch(
    (e: Error & { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? e.message }),
  );
  const output = `${result.stdout}${result.stderr}`;
  // Name the queries that returned nothing, not just their alert numbers.
  const empty = all.filter((_, i) => new RegExp(`alertname: ${alertOf(i)},`).test(output) || output.includes(`alertname=${alertOf(i)}`));
  t.deepEqual(
    empty.map((q) => `${q.where}: ${q.expr}`),
    [],
  );
  t.regex(output, /SUCCESS/, output);
});

test('every metric the shipped recording and alerting rules name is registered by tsd', async (t) => {
  const rules = parse(await readFile(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ record?: string; expr: string }> }> };
  const recorded = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
  const used = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => metricNames(r.expr))));
  const exported = await exportedNames(t);
  t.deepEqual(
    [...used].filter((name) => !exported.has(name) && !recorded.has(name)),
    [],
  );
  t.true(used.has('tessera_node_memory_available_bytes') && used.has('container_oom_events_total'));
});
