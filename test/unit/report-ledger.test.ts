// The agent's ledger of its last report per task: after a manager fail-over, the reports the old
// leader took down with it are found from the new session's full assignment set and sent again.
import test from 'ava';

import { ReportLedger } from '../../agent/session/report-ledger.js';
import { API_VERSION, type Task, type TaskState } from '../../common/resources/types.js';

function task(name: string, state: TaskState): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, stack: 's' },
    spec: { serviceName: 'web', serviceStack: 's', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state, timestamp: new Date().toISOString() },
  };
}

const update = (name: string, state: TaskState) => ({ taskStack: 's', taskName: name, statusJson: JSON.stringify({ state }) });

test('the last report of a task the store shows behind it is sent again; others are not', (t) => {
  const ledger = new ReportLedger();
  ledger.noted(task('a', 'assigned'), 'running', update('a', 'running'));
  ledger.noted(task('b', 'assigned'), 'running', update('b', 'running'));
  ledger.noted(task('c', 'running'), 'shutdown', update('c', 'shutdown'));
  ledger.noted(task('d', 'running'), 'running', update('d', 'running'));
  const again = ledger.behind([task('a', 'starting'), task('b', 'running'), task('c', 'running'), task('d', 'shutdown')]);
  t.deepEqual(
    again.map((u) => u.taskName),
    ['a', 'c'],
    'a is still starting in the store, c still running after its shutdown was reported; b is current and d ended',
  );
});

test('tasks no longer assigned are forgotten', (t) => {
  const ledger = new ReportLedger();
  ledger.noted(task('a', 'assigned'), 'running', update('a', 'running'));
  ledger.noted(task('b', 'assigned'), 'running', update('b', 'running'));
  ledger.forget(['s/b']);
  t.deepEqual(ledger.behind([task('b', 'assigned')]), [], 'b was forgotten on its removal');
  // The full set without a: forgotten too.
  t.deepEqual(ledger.behind([]), []);
  t.deepEqual(ledger.behind([task('a', 'assigned')]), []);
});
