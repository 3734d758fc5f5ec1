// The pieces of the hollow-node harness (test/scale/) that decide what the scale test and benchmark
// conclude: the overlap check behind "no slot ran twice", and the hollow worker's handling of an
// assignment set (the reports a real TaskRunner makes, in its order; stop on shutdown or removal).
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';

import { API_VERSION, type Task, type TaskState, type TaskStatus } from '../../common/resources/types.js';
import { slotOverlaps, type TaskRun } from '../scale/hollow-view.js';
import { HollowWorker, type HollowEvent } from '../scale/hollow-worker.js';
import { decodeEvents, encodeEvents, parseStartMessage, seededRandom } from '../scale/fleet-protocol.js';

const run = (task: string, slot: string, start: number, end?: number): TaskRun => ({ task, slot, node: 'n', start, end });

test('slotOverlaps: back-to-back runs of a slot are fine; overlapping ones and a second open run are found', (t) => {
  t.deepEqual(slotOverlaps([run('a', 's.1', 0, 10), run('b', 's.1', 10, 20), run('c', 's.2', 5)]), []);
  const found = slotOverlaps([run('a', 's.1', 0, 10), run('b', 's.1', 9, 20)]);
  t.deepEqual(
    found.map((o) => [o.first.task, o.second.task]),
    [['a', 'b']],
  );
  // Two that never ended (both still running).
  t.is(slotOverlaps([run('a', 's.1', 0), run('b', 's.1', 50)]).length, 1);
  // A long run that covers two later ones overlaps both.
  t.is(slotOverlaps([run('a', 's.1', 0, 100), run('b', 's.1', 10, 20), run('c', 's.1', 30, 40)]).length, 2);
});

function task(name: string, slot: number, state: TaskState, desiredState: Task['desiredState'] = 'running'): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, stack: 'st' },
    spec: { serviceName: 'web', serviceStack: 'st', serviceGeneration: 1, slot, spec: { image: 'x' } },
    nodeName: 'n1',
    desiredState,
    status: { state, timestamp: new Date().toISOString() },
  };
}

function harness(failureRate = 0) {
  const reports: Array<[string, TaskState]> = [];
  const events: HollowEvent[] = [];
  const worker = new HollowWorker(
    'n1',
    (t: Task, status: Partial<TaskStatus> & { state: TaskState }) => {
      reports.push([t.metadata.name, status.state]);
      return Promise.resolve();
    },
    { startLatencyMs: 5, jitter: 0, failureRate, random: seededRandom(7) },
    (e) => events.push(e),
    () => undefined,
  );
  return { worker, reports, events };
}

test('HollowWorker: reports a started task as a TaskRunner does, and stops it when it is shut down or unassigned', async (t) => {
  const { worker, reports, events } = harness();
  worker.reconcile([task('web.1.a', 1, 'assigned'), task('web.2.b', 2, 'assigned')]);
  await sleep(30);
  t.deepEqual(
    reports.filter(([n]) => n === 'web.1.a').map(([, s]) => s),
    ['accepted', 'preparing', 'starting', 'running'],
  );
  t.is(worker.runningCount(), 2);
  // The same set again (the manager's later view) starts nothing twice.
  worker.reconcile([task('web.1.a', 1, 'running'), task('web.2.b', 2, 'running')]);
  t.is(reports.filter(([, s]) => s === 'accepted').length, 2);
  worker.reconcile([task('web.1.a', 1, 'running', 'shutdown')]);
  t.is(worker.runningCount(), 0, 'web.1.a shut down, web.2.b no longer assigned');
  t.deepEqual(
    reports.filter(([, s]) => s === 'shutdown').map(([n]) => n),
    ['web.1.a', 'web.2.b'],
  );
  t.deepEqual(
    events.filter((e) => e.kind === 'end').map((e) => e.slot),
    ['st/web.1', 'st/web.2'],
  );
  // An ended task is never launched again, even if it shows up as assigned.
  worker.reconcile([task('web.1.a', 1, 'assigned')]);
  await sleep(20);
  t.is(worker.runningCount(), 0);
});

test('HollowWorker: a task shut down before its simulated start never runs', async (t) => {
  const { worker, reports, events } = harness();
  worker.reconcile([task('web.1.a', 1, 'assigned')]);
  worker.reconcile([task('web.1.a', 1, 'starting', 'shutdown')]);
  await sleep(20);
  t.false(events.some((e) => e.kind === 'run'));
  t.deepEqual(reports.at(-1), ['web.1.a', 'shutdown']);
});

test('HollowWorker: failures at the configured rate are reported failed', async (t) => {
  const { worker, reports } = harness(1);
  worker.reconcile([task('web.1.a', 1, 'assigned')]);
  await sleep(20);
  t.deepEqual(reports.at(-1), ['web.1.a', 'failed']);
  t.is(worker.runningCount(), 0);
});

test('fleet protocol: events survive encoding; a start message is checked', (t) => {
  const events: HollowEvent[] = [{ at: 1.5, kind: 'run', task: 't', slot: 's/x.1', node: 'n' }];
  t.deepEqual(decodeEvents(encodeEvents(events)), events);
  const good = {
    type: 'start',
    managers: ['10.0.0.1:7420'],
    token: 'TSJT-1-x-y',
    namePrefix: 'h',
    count: 10,
    addressPrefix: '10.240',
    concurrency: 4,
    sim: { startLatencyMs: 100, jitter: 0.1, failureRate: 0, seed: 1 },
  };
  t.is(parseStartMessage(good).count, 10);
  t.throws(() => parseStartMessage({ ...good, count: 0 }), { message: /count must be an integer/ });
  t.throws(() => parseStartMessage({ ...good, sim: { ...good.sim, failureRate: 2 } }), { message: /failureRate/ });
  t.throws(() => parseStartMessage({ ...good, managers: [] }), { message: /managers/ });
  t.throws(() => parseStartMessage({ ...good, addressPrefix: '10.300' }), { message: /addressPrefix/ });
});
