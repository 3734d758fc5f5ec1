import test from 'ava';
import { parse } from 'yaml';
import { renderTable, truncate } from '../../cli/output/table.js';
import { formatAge, formatAgo } from '../../cli/output/age.js';
import { formatObjects } from '../../cli/output/format.js';
import { describeService } from '../../cli/output/describe.js';
import { loadManifestText } from '../../cli/manifest/load.js';
import type { Node, Service, Task, TaskState } from '../../common/resources/types.js';

const now = new Date('2024-01-01T01:00:00Z');
const secondsAgo = (s: number) => new Date(now.getTime() - s * 1000).toISOString();

const service: Service = {
  apiVersion: 'tessera/v1',
  kind: 'Service',
  metadata: { name: 'hello', stack: 'hello', createdAt: secondsAgo(330), generation: 2 },
  spec: {
    image: 'tessera.local/busybox:latest',
    command: ['sh', '-c', 'echo "hi" && exec httpd -f'],
    env: { MODE: 'demo' },
    replicas: 3,
    ports: [
      { target: 80, published: 8080, protocol: 'tcp' },
      { target: 53, protocol: 'udp' },
    ],
    resources: { limits: { memory: 32 * 1024 * 1024, cpus: 0.5 } },
    restart: { condition: 'any', delayMs: 5000 },
  },
};

function task(slot: number, state: TaskState, ageSeconds: number, extra: Partial<Task['status']> = {}, desiredState: Task['desiredState'] = 'running'): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name: `hello.${slot}.${state}` },
    spec: { serviceName: 'hello', serviceStack: 'hello', serviceGeneration: 2, slot, spec: service.spec },
    nodeName: 'node-1',
    desiredState,
    status: { state, timestamp: secondsAgo(ageSeconds), address: `10.0.0.${slot}`, ...extra },
  };
}

const tasks = [
  task(1, 'running', 5),
  task(2, 'running', 65),
  task(3, 'failed', 120, { exitCode: 137, oomKilled: true, error: 'container killed: out of memory' }, 'shutdown'),
  task(3, 'starting', 1),
];

test('tables: uppercase headers, padded columns, no trailing spaces', (t) => {
  t.is(
    renderTable(
      ['name', 'value'],
      [
        ['a', '1'],
        ['longer', '22'],
      ],
    ),
    'NAME     VALUE\na        1\nlonger   22\n',
  );
  t.is(
    renderTable(
      ['a', 'b'],
      [
        ['x', ''],
        ['multi\nline', 'y'],
      ],
    ),
    'A            B\nx\nmulti line   y\n',
  );
  t.is(renderTable(['a'], []), 'A\n');
  t.is(truncate('abcdef', 4), 'abc…');
  t.is(truncate('abc', 4), 'abc');
});

test('ages in kubectl and docker styles', (t) => {
  t.is(formatAge(secondsAgo(45), now), '45s');
  t.is(formatAge(secondsAgo(200), now), '3m20s');
  t.is(formatAge(secondsAgo(45 * 60), now), '45m');
  t.is(formatAge(secondsAgo(3 * 3600 + 1200), now), '3h20m');
  t.is(formatAge(secondsAgo(30 * 3600), now), '30h');
  t.is(formatAge(secondsAgo(4 * 86400 + 5 * 3600), now), '4d5h');
  t.is(formatAge(undefined, now), '<unknown>');
  t.is(formatAgo(secondsAgo(0), now), 'less than a second ago');
  t.is(formatAgo(secondsAgo(1), now), '1 second ago');
  t.is(formatAgo(secondsAgo(5), now), '5 seconds ago');
  t.is(formatAgo(secondsAgo(65), now), 'about a minute ago');
  t.is(formatAgo(secondsAgo(600), now), '10 minutes ago');
  t.is(formatAgo(secondsAgo(3 * 86400), now), '3 days ago');
});

test('services table counts running tasks', (t) => {
  t.is(
    formatObjects([service], 'table', 'Service', { now, tasks }),
    [
      'NAME    STACK   IMAGE                          REPLICAS   PORTS                    AGE',
      'hello   hello   tessera.local/busybox:latest   2/3        *:8080->80/tcp, 53/udp   5m30s',
      '',
    ].join('\n'),
  );
  // Without tasks, the status the controller wrote is used; without either, running is unknown.
  t.regex(formatObjects([{ ...service, status: { runningTasks: 3, desiredTasks: 3 } }], 'table', 'Service', { now }), /\s3\/3\s/);
  t.regex(formatObjects([{ ...service, metadata: { name: 'x' } }], 'table', 'Service', { now }), /^x\s+-\s.*\?\/3/m);
});

test('tasks table: state with age, exit code, message', (t) => {
  const lines = formatObjects(tasks, 'table', 'Task', { now }).split('\n');
  t.regex(lines[0]!, /^NAME\s+SERVICE\s+SLOT\s+NODE\s+DESIRED\s+STATE\s+HEALTH\s+ADDRESS\s+EXIT\s+MESSAGE$/);
  t.regex(lines[1]!, /^hello\.1\.running\s+hello\s+1\s+node-1\s+running\s+running 5 seconds ago\s+-\s+10\.0\.0\.1\s+-$/);
  t.regex(lines[3]!, /\s+shutdown\s+failed 2 minutes ago\s+-\s+10\.0\.0\.3\s+137 \(OOM\)\s+container killed: out of memory$/);
  const healthy = task(1, 'running', 1);
  healthy.status.health = 'healthy';
  t.regex(formatObjects([healthy], 'table', 'Task', { now }).split('\n')[1]!, /\srunning \S+ \S+ ago\s+healthy\s/, 'the HEALTH column');
  const long = task(1, 'rejected', 1, { error: 'x'.repeat(100) });
  t.true(formatObjects([long], 'table', 'Task', { now }).includes(`${'x'.repeat(59)}…`));
  t.true(formatObjects([long], 'table', 'Task', { now, wide: true }).includes('x'.repeat(100)));
});

test('nodes table', (t) => {
  const node: Node = {
    apiVersion: 'tessera/v1',
    kind: 'Node',
    metadata: { name: 'node-1' },
    spec: { availability: 'active', role: 'manager' },
    status: { state: 'ready', hostname: 'h1', address: '10.1.0.1', resources: { memoryBytes: 8 * 1024 ** 3, nanoCpus: 4e9 } },
  };
  t.is(
    formatObjects([node], 'table', 'Node', { now }),
    ['NAME     ROLE      STATUS   AVAILABILITY   ADDRESS    MEMORY   CPUS', 'node-1   manager   ready    active         10.1.0.1   8Gi      4', ''].join('\n'),
  );
});

test('json and yaml output are List envelopes that apply -f accepts back', (t) => {
  const json = formatObjects([service], 'json', 'Service');
  t.deepEqual(JSON.parse(json), { apiVersion: 'tessera/v1', kind: 'List', items: [service] });
  const yamlText = formatObjects([service], 'yaml', 'Service');
  t.deepEqual(parse(yamlText), { apiVersion: 'tessera/v1', kind: 'List', items: [service] });
  t.deepEqual(loadManifestText(yamlText, 'roundtrip.yaml'), [service]);
  t.deepEqual(loadManifestText(json, 'roundtrip.json'), [service]);
  // tty and stdinOpen are shown and read back like every other field.
  const interactive: Service = { ...service, spec: { ...service.spec, tty: true, stdinOpen: true } };
  const shown = formatObjects([interactive], 'yaml', 'Service');
  t.regex(shown, /^ {6}tty: true$/m);
  t.regex(shown, /^ {6}stdinOpen: true$/m);
  t.deepEqual(loadManifestText(shown, 'interactive.yaml'), [interactive]);
});

test('describe service: spec, limits, restart policy and tasks with their history', (t) => {
  const text = describeService(service, [...tasks, { ...task(1, 'running', 5), spec: { ...tasks[0]!.spec, serviceName: 'other' } }], { now });
  t.regex(text, /^Name:\s+hello$/m);
  t.regex(text, /^Stack:\s+hello$/m);
  t.regex(text, /^Command:\s+sh -c 'echo "hi" && exec httpd -f'$/m);
  t.regex(text, /^Environment:\s+MODE=demo$/m);
  t.regex(text, /^Replicas:\s+3 desired, 2 running$/m);
  t.regex(text, /^Ports:\s+\*:8080->80\/tcp\n\s{19}53\/udp$/m);
  t.regex(text, /^Limits:\s+memory 32Mi, cpus 0\.5$/m);
  t.regex(text, /^Restart policy:\s+condition any, delay 5s$/m);
  t.regex(text, /^Created:\s+\S+ \(5m30s ago\)$/m);
  const taskLines = text
    .slice(text.indexOf('Tasks:\n') + 7)
    .trimEnd()
    .split('\n');
  t.is(taskLines.length, 5); // header + this service's 4 tasks; the other service's task is left out
  t.deepEqual(
    taskLines.slice(1).map((l) => l.trim().split(/\s+/)[0]),
    ['hello.1.running', 'hello.2.running', 'hello.3.starting', 'hello.3.failed'],
  );
  t.regex(taskLines[4]!, /137 \(OOM\)\s+container killed: out of memory$/);
  t.regex(describeService({ ...service, spec: { image: 'x' } }, [], { now }), /Tasks:\n {2}<none>\n$/);
});
