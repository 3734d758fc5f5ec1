// The container families' exposition text (agent/stats/container-text.ts) against the series
// containerSamples() gives for the same readings: parsed back from the text, every family has
// its HELP and TYPE once and exactly those samples (names, labels with escaping, values), and
// common/metrics/text-collectors.ts serves it after a prom-client registry. Pure: readings are
// built from sample cgroup text, no container runs.
import test from 'ava';
import * as client from 'prom-client';

import { statsFromV2Files } from '../../agent/runtime/cgroups/stats-files.js';
import { CONTAINER_METRICS, containerSamples, type SeriesLabels } from '../../agent/stats/container-series.js';
import { containerFamiliesText, escapeLabelValue, labelText, type ContainerSeriesInput } from '../../agent/stats/container-text.js';
import { parseNetDev } from '../../agent/stats/net-dev.js';
import type { ContainerReading } from '../../agent/stats/usage.js';
import { addTextCollector, exposition } from '../../common/metrics/text-collectors.js';

const STATS = statsFromV2Files(
  new Map([
    ['memory.current', '44040192\n'],
    ['memory.max', '67108864\n'],
    ['memory.stat', 'anon 33554432\nfile 8388608\ninactive_file 6291456\n'],
    ['memory.events', 'oom_kill 3\n'],
    ['cpu.stat', 'usage_usec 2500001\nnr_periods 120\nnr_throttled 17\n'],
    ['pids.current', '4\n'],
    ['io.stat', '254:0 rbytes=4096 wbytes=16777216\n8:0 rbytes=1 wbytes=2\n'],
  ]),
);
const NET_DEV = `Inter-|   Receive |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
`;
const READING: ContainerReading = { atMs: 0, stats: STATS, interfaces: parseNetDev(NET_DEV) };

// Two containers; the second's labels hold every character the text format escapes.
const CONTAINERS: ContainerSeriesInput[] = [
  { labels: { container_label_tier: 'web', name: 'c1', image: 'nginx:1.25', task: 'shop.web.1' }, reading: READING, startSeconds: 1_700_000_000.25 },
  {
    labels: { container_label_note: 'a "quoted"\\path\nnext line', name: 'c2', image: 'r/x:1', task: 'shop.db.1' },
    reading: { atMs: 0, stats: STATS },
    startSeconds: undefined,
  },
];

interface Parsed {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Map<string, Array<{ labels: SeriesLabels; value: number }>>;
}

/** A reader of the text format written for this test (label values with \\, \" and \n escapes). */
function parseExposition(text: string): Parsed {
  const out: Parsed = { help: new Map(), type: new Map(), samples: new Map() };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const map = meta[1] === 'HELP' ? out.help : out.type;
      if (map.has(meta[2]!)) throw new Error(`${meta[1]} of ${meta[2]} twice`);
      map.set(meta[2]!, meta[3]!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels: SeriesLabels = {};
    const body = sample[2] ?? '';
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
    let match: RegExpExecArray | null;
    while (pair.lastIndex < body.length && (match = pair.exec(body)) !== null) {
      labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    if (pair.lastIndex !== body.length && body !== '') throw new Error(`bad labels: ${body}`);
    const list = out.samples.get(sample[1]!) ?? [];
    list.push({ labels, value: Number(sample[3]) });
    out.samples.set(sample[1]!, list);
  }
  return out;
}

test('escaping: backslash, double quote and line feed, as the text format and prom-client write them', (t) => {
  t.is(escapeLabelValue('plain'), 'plain');
  t.is(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  t.is(labelText({ a: 'x', b: 'say "hi"' }), 'a="x",b="say \\"hi\\""');
  t.is(labelText({}), '');
});

test('the text holds every family once, with exactly the samples containerSamples gives, labels unescaped back', (t) => {
  const parsed = parseExposition(containerFamiliesText(CONTAINERS));
  for (const family of CONTAINER_METRICS) {
    t.is(parsed.help.get(family.name), family.help, family.name);
    t.is(parsed.type.get(family.name), family.type, family.name);
  }
  t.is(parsed.help.size, CONTAINER_METRICS.length);
  const expected = new Map<string, Array<{ labels: SeriesLabels; value: number }>>();
  for (const { labels, reading, startSeconds } of CONTAINERS) {
    for (const [name, samples] of containerSamples(labels, reading, startSeconds)) expected.set(name, [...(expected.get(name) ?? []), ...samples]);
  }
  t.deepEqual(parsed.samples, expected);
  t.is(parsed.samples.get('container_start_time_seconds')?.length, 1, 'a container without a start time has no such series');
  t.is(parsed.samples.get('container_network_receive_bytes_total')?.length, 1, 'loopback left out; a reading without interfaces has none');
  t.is(parsed.samples.get('container_fs_reads_bytes_total')?.[1]?.labels['device'], '8:0');
  t.is(parsed.samples.get('container_cpu_usage_seconds_total')?.[0]?.value, 2.500001);
});

test('with no container, each family still has its HELP and TYPE and no sample', (t) => {
  const parsed = parseExposition(containerFamiliesText([]));
  t.is(parsed.type.size, CONTAINER_METRICS.length);
  t.is(parsed.samples.size, 0);
});

test('exposition: the same text prom-client writes for the same series, after the registry’s own families', async (t) => {
  // The reference: the same samples as prom-client gauges/counters (how they were served before).
  const reference = new client.Registry();
  const own = new client.Gauge({ name: 'tessera_up', help: 'Up.', registers: [reference] });
  own.set(1);
  for (const family of CONTAINER_METRICS) {
    const values = CONTAINERS.flatMap(({ labels, reading, startSeconds }) => containerSamples(labels, reading, startSeconds).get(family.name) ?? []);
    const Kind = family.type === 'counter' ? client.Counter : client.Gauge;
    const metric = new Kind({ name: family.name, help: family.help, registers: [reference] });
    const base = metric.get.bind(metric);
    metric.get = async () => ({ ...(await base()), values });
  }

  const registry = new client.Registry();
  new client.Gauge({ name: 'tessera_up', help: 'Up.', registers: [registry] }).set(1);
  addTextCollector(registry, { names: CONTAINER_METRICS.map((f) => f.name), text: async () => containerFamiliesText(CONTAINERS) });
  const served = await exposition([registry]);
  t.is(served.body, await reference.metrics());
  t.is(served.contentType, reference.contentType);
});

test('exposition: a text family named like a registered metric is refused, as merging two registries refuses it', async (t) => {
  const registry = new client.Registry();
  new client.Gauge({ name: 'container_processes', help: 'x', registers: [registry] });
  addTextCollector(registry, { names: ['container_processes'], text: async () => '' });
  await t.throwsAsync(exposition([registry]), { message: /container_processes has already been registered/ });
});
