// Cluster events (tsctl events): what a store change makes, the manager's ring of recent events,
// the request checks, the recorder over a real memory store, and the CLI's time and line formats.
import test from 'ava';

import { eventsOf, subjectOf, type ClusterEvent } from '../../control-plane/events/cluster-events.js';
import { EventLog } from '../../control-plane/events/event-log.js';
import { EventRecorder } from '../../control-plane/events/event-recorder.js';
import { eventsQuery, isAfter } from '../../control-plane/api/events-stream.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { objectKey } from '../../control-plane/store/keys.js';
import { eventLine, parseEventTime } from '../../cli/commands/events.js';

const task = (state: string, extra: Record<string, unknown> = {}) =>
  subjectOf('task', 'shop', 'web.1.abc', {
    metadata: { name: 'web.1.abc', stack: 'shop', generation: 1 },
    spec: { serviceName: 'web' },
    nodeName: 'node-2',
    status: { state, timestamp: '2026-12-06T10:00:05.000Z', ...extra },
  });
const node = (state: string) => subjectOf('node', '', 'node-2', { metadata: { name: 'node-2' }, status: { state } });
const service = (generation: number, rollout?: string) =>
  subjectOf('service', 'shop', 'web', { metadata: { name: 'web', generation }, spec: {}, status: rollout ? { update: { state: rollout } } : {} });
const summary = (events: ClusterEvent[]) => events.map((e) => `${e.type} ${e.action} ${e.name}${e.attributes['from'] ? ` from=${e.attributes['from']}` : ''}`);

test('a task: created, then each state it enters, at the time the task says; removed', (t) => {
  t.deepEqual(summary(eventsOf(undefined, task('pending'), 1)), ['task create web.1.abc', 'task pending web.1.abc']);
  const running = eventsOf(task('starting'), task('running'), 1);
  t.deepEqual(summary(running), ['task running web.1.abc from=starting']);
  t.is(running[0]!.time, Date.parse('2026-12-06T10:00:05.000Z'));
  t.deepEqual(running[0]!.attributes, { node: 'node-2', service: 'web', from: 'starting' });
  t.deepEqual(eventsOf(task('running'), task('running', { health: 'healthy' }), 1), [], 'no event for a change that is not a state');
  const failed = eventsOf(task('running'), task('failed', { error: 'exit code 3' }), 1);
  t.is(failed[0]!.attributes['message'], 'exit code 3');
  t.deepEqual(summary(eventsOf(task('shutdown'), undefined, 7)), ['task remove web.1.abc']);
  t.is(eventsOf(task('shutdown'), undefined, 7)[0]!.time, 7, 'a removal is timed when seen');
});

test('a node goes up and down; a service is updated when its generation moves, and its rollout changes state', (t) => {
  t.deepEqual(summary(eventsOf(node('ready'), node('down'), 1)), ['node down node-2 from=ready']);
  t.deepEqual(summary(eventsOf(node('down'), node('ready'), 1)), ['node up node-2 from=down']);
  t.deepEqual(summary(eventsOf(undefined, service(1), 1)), ['service create web']);
  t.deepEqual(summary(eventsOf(service(1), service(1), 1)), [], 'a status write alone is no event');
  t.deepEqual(summary(eventsOf(service(1), service(2, 'updating'), 1)), ['service update web', 'service rollout-updating web']);
  t.deepEqual(summary(eventsOf(service(2, 'updating'), service(2, 'completed'), 1)), ['service rollout-completed web from=updating']);
  t.deepEqual(
    summary(eventsOf(undefined, subjectOf('secret', 'shop', 'db', 'not json'), 1)),
    ['secret create db'],
    'a value that is not an object still makes its event',
  );
});

test('the ring keeps the newest events, reads by time and filter, and follows new ones', (t) => {
  const log = new EventLog(3);
  const event = (time: number, type: string, name: string): ClusterEvent => ({ time, type, action: 'create', stack: 's', name, attributes: {} });
  for (let i = 1; i <= 5; i++) log.add(event(i, i % 2 ? 'task' : 'node', `n${i}`));
  t.deepEqual(
    log.read({ types: [] }, 0, 10).map((e) => e.name),
    ['n3', 'n4', 'n5'],
  );
  t.deepEqual(
    log.read({ types: ['task'] }, 0, 10).map((e) => e.name),
    ['n3', 'n5'],
  );
  t.deepEqual(
    log.read({ types: [], name: 'n4' }, 0, 10).map((e) => e.name),
    ['n4'],
  );
  t.deepEqual(
    log.read({ types: [] }, 4, 4).map((e) => e.name),
    ['n4'],
  );
  const followed: string[] = [];
  const stop = log.follow((e) => followed.push(e.name));
  log.add(event(6, 'task', 'n6'));
  stop();
  log.add(event(7, 'task', 'n7'));
  t.deepEqual(followed, ['n6']);
});

test('a request: filters checked, naming what is wrong; times ordered', (t) => {
  const ok = eventsQuery({ sinceMs: 5, untilMs: 0, follow: false, filters: ['type=task', 'type=node', 'stack=shop', 'name=web'] }, 100);
  t.deepEqual(ok, { filter: { types: ['task', 'node'], stack: 'shop', name: 'web' }, from: 5, until: 100, follow: false, after: { revision: 0, index: 0 } });
  t.is(eventsQuery({ sinceMs: 0, untilMs: 0, follow: true, filters: [] }, 100).until, Number.MAX_SAFE_INTEGER);
  t.throws(() => eventsQuery({ sinceMs: 0, untilMs: 0, follow: false, filters: ['type=pod'] }, 1), { message: /type="?pod"?: not a type; one of .*task/ });
  t.throws(() => eventsQuery({ sinceMs: 0, untilMs: 0, follow: false, filters: ['colour=red'] }, 1), { message: /unknown key "?colour"?/ });
  t.throws(() => eventsQuery({ sinceMs: 0, untilMs: 0, follow: false, filters: ['name='] }, 1), { message: /expected key=value/ });
  t.throws(() => eventsQuery({ sinceMs: 10, untilMs: 5, follow: false, filters: [] }, 1), { message: /until is before since/ });
  t.throws(() => eventsQuery({ sinceMs: 0, untilMs: 0, follow: false, filters: Array.from({ length: 33 }, () => 'type=task') }, 1), { message: /at most 32/ });
});

test('the recorder turns a real store’s changes into events, with the value before each change', async (t) => {
  const store = new MemoryStore();
  const log = new EventLog();
  const errors: string[] = [];
  const recorder = new EventRecorder(store, log, (m) => errors.push(m));
  await recorder.start();
  const key = objectKey('Task', 'shop', 'web.1.abc');
  const value = (state: string) =>
    JSON.stringify({
      kind: 'Task',
      metadata: { name: 'web.1.abc', stack: 'shop' },
      spec: { serviceName: 'web' },
      nodeName: 'node-1',
      status: { state, timestamp: new Date().toISOString() },
    });
  await store.put(key, value('pending'));
  await store.put(key, value('running'));
  await store.put('/tessera/settings/cluster', '{}');
  await store.delete(key);
  await new Promise((resolve) => setTimeout(resolve, 50));
  recorder.stop();
  t.deepEqual(summary(log.read({ types: [] }, 0, Number.MAX_SAFE_INTEGER)), [
    'task create web.1.abc',
    'task pending web.1.abc',
    'task running web.1.abc from=pending',
    'task remove web.1.abc',
  ]);
  // Each event names the store revision it came from and its place among that revision's events.
  const positions = log.read({ types: [] }, 0, Number.MAX_SAFE_INTEGER).map((e) => [e.revision, e.index]);
  const first = positions[0]![0]!;
  t.deepEqual(positions, [
    [first, 0],
    [first, 1],
    [first + 1, 0],
    [first + 3, 0],
  ]);
  const query = eventsQuery({ sinceMs: 0, untilMs: 0, follow: false, filters: [], afterRevision: first, afterIndex: 0 }, Date.now());
  t.deepEqual(
    log
      .read({ types: [] }, 0, Number.MAX_SAFE_INTEGER)
      .filter((e) => isAfter(e, query.after))
      .map((e) => e.action),
    ['pending', 'running', 'remove'],
    'a resumed stream starts after the last event delivered',
  );
  t.deepEqual(errors, []);
});

test('tsctl events: times as durations, RFC 3339 or epoch seconds; one line per event', (t) => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  t.is(parseEventTime('10m', now), now - 600_000);
  t.is(parseEventTime('1.5h', now), now - 5_400_000);
  t.is(parseEventTime('2026-12-06T10:00:00Z', now), Date.parse('2026-12-06T10:00:00Z'));
  t.is(parseEventTime('1765000000', now), 1_765_000_000_000);
  t.throws(() => parseEventTime('yesterday', now), { message: /expected a duration/ });
  t.is(
    eventLine({
      timeMs: now,
      type: 'task',
      action: 'failed',
      stack: 'shop',
      name: 'web.1.abc',
      attributes: { node: 'node-2', message: 'exit code 3' },
      notice: '',
      revision: 0,
      index: 0,
    }),
    '2026-12-06T12:00:00.000Z task failed shop/web.1.abc message="exit code 3" node=node-2',
  );
});
