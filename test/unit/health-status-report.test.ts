// How the manager records what an agent reports about health: startedAt and healthChangedAt by
// its own clock, the health fields validated on the way in.
import test from 'ava';

import { applyStatusReport } from '../../control-plane/dispatcher/task-status.js';
import { parseReportedStatus } from '../../common/dispatcher/peer-validation.js';
import { API_VERSION, type Task } from '../../common/resources/types.js';

const task: Task = {
  apiVersion: API_VERSION,
  kind: 'Task',
  metadata: { name: 'web.1.a' },
  spec: { serviceName: 'web', serviceStack: '', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
  nodeName: 'n1',
  desiredState: 'running',
  status: { state: 'starting', timestamp: '2026-01-01T00:00:00.000Z' },
};
const at = (s: number) => new Date(Date.parse('2026-01-01T00:00:00Z') + s * 1000);

test('startedAt is written when the task becomes running, and kept after', (t) => {
  const running = applyStatusReport(task, 'n1', { state: 'running', health: 'starting' }, at(5))!;
  t.is(running.status.startedAt, at(5).toISOString());
  t.is(running.status.healthChangedAt, at(5).toISOString());
  const healthy = applyStatusReport(running, 'n1', { state: 'running', health: 'healthy', failingStreak: 0 }, at(8))!;
  t.is(healthy.status.startedAt, at(5).toISOString(), 'not moved by later reports');
  t.is(healthy.status.healthChangedAt, at(8).toISOString());
  const streak = applyStatusReport(healthy, 'n1', { state: 'running', health: 'healthy', failingStreak: 1 }, at(9))!;
  t.is(streak.status.healthChangedAt, at(8).toISOString(), 'same health: the time it changed stays');
  const ended = applyStatusReport(streak, 'n1', { state: 'failed', exitCode: 1 }, at(10))!;
  t.is(ended.status.startedAt, at(5).toISOString());
  t.is(ended.status.health, 'healthy', 'the last health stays on the ended task');
});

test('health fields from an agent are validated; manager-written times are not accepted from it', (t) => {
  const ok = parseReportedStatus(
    JSON.stringify({ state: 'running', health: 'unhealthy', failingStreak: 3, healthLog: [{ start: 'a', end: 'b', exitCode: -1, output: 'x' }] }),
    'w',
  );
  t.is(ok.health, 'unhealthy');
  t.throws(() => parseReportedStatus(JSON.stringify({ state: 'running', health: 'sick' }), 'w'), { message: /health/ });
  t.throws(() => parseReportedStatus(JSON.stringify({ state: 'running', startedAt: 'x' }), 'w'), { message: /startedAt|Unrecognized/ });
  t.throws(
    () =>
      parseReportedStatus(
        JSON.stringify({ state: 'running', healthLog: Array.from({ length: 6 }, () => ({ start: 'a', end: 'b', exitCode: 0, output: '' })) }),
        'w',
      ),
    { message: /healthLog/ },
  );
});
