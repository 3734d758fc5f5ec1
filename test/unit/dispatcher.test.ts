import test from 'ava';

import { AssignmentSet, SentAssignments, taskKey } from '../../common/dispatcher/assignments.js';
import { parseAssignedTask, parseReportedStatus } from '../../common/dispatcher/peer-validation.js';
import { applyStatusReport } from '../../control-plane/dispatcher/task-status.js';
import { API_VERSION, type Task } from '../../common/resources/types.js';

function task(name: string, version: string, nodeName = 'n1', state: Task['status']['state'] = 'assigned'): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, stack: 's', resourceVersion: version },
    spec: { serviceName: 'web', serviceStack: 's', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
    nodeName,
    desiredState: 'running',
    status: { state, timestamp: '2026-01-01T00:00:00Z' },
  };
}

test('the first delta is the full set, later ones only changes and removals', (t) => {
  const sent = new SentAssignments();
  const first = sent.next([task('a', '1'), task('b', '2')]);
  t.deepEqual(
    first.upserts.map((x) => x.metadata.name),
    ['a', 'b'],
  );
  t.deepEqual(first.removed, []);
  t.deepEqual(sent.next([task('a', '1'), task('b', '2')]), { upserts: [], removed: [] });
  const changed = sent.next([task('a', '3')]);
  t.deepEqual(
    changed.upserts.map((x) => x.metadata.resourceVersion),
    ['3'],
  );
  t.deepEqual(changed.removed, ['s/b']);
});

test('the agent rebuilds the set from a full message and deltas', (t) => {
  const set = new AssignmentSet();
  t.is(set.apply(true, [task('a', '1'), task('b', '1')], []).length, 2);
  t.deepEqual(
    set
      .apply(false, [task('c', '1')], ['s/a'])
      .map(taskKey)
      .sort(),
    ['s/b', 's/c'],
  );
  t.deepEqual(set.apply(true, [task('z', '1')], []).map(taskKey), ['s/z'], 'a full set replaces everything');
});

test('reported statuses are validated field by field', (t) => {
  t.deepEqual(parseReportedStatus('{"state":"running","pid":42,"address":"10.0.0.2"}', 'x'), { state: 'running', pid: 42, address: '10.0.0.2' });
  t.throws(() => parseReportedStatus('{"state":"flying"}', 'status of task s/a'), { message: /status of task s\/a: invalid status field state/ });
  t.throws(() => parseReportedStatus('{"state":"running","evil":1}', 'x'), { message: /invalid status field/ });
  t.throws(() => parseReportedStatus('{', 'x'), { message: /not valid JSON/ });
  t.throws(() => parseReportedStatus('{"state":"failed","exitCode":999}', 'x'), { message: /exitCode/ });
});

test('assignments from the manager must look like tasks', (t) => {
  t.is(parseAssignedTask(JSON.stringify(task('a', '1'))).metadata.name, 'a');
  t.throws(() => parseAssignedTask('{"kind":"Task"}'), { message: /assignment is not a task/ });
});

test('status reports only move a task forward, and only from its own node', (t) => {
  const now = new Date('2026-01-01T00:00:05Z');
  const running = applyStatusReport(task('a', '1'), 'n1', { state: 'running', pid: 7 }, now);
  t.is(running?.status.state, 'running');
  t.is(applyStatusReport(running!, 'n1', { state: 'starting' }, now), undefined, 'no going back');
  t.is(applyStatusReport(task('a', '1'), 'n2', { state: 'running' }, now), undefined, 'wrong node');
  const failed = applyStatusReport(running!, 'n1', { state: 'failed', exitCode: 1 }, now)!;
  t.is(applyStatusReport(failed, 'n1', { state: 'running' }, now), undefined, 'terminal is final');
});
