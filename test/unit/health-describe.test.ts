// How health shows in `tsctl describe task` and `tsctl get tasks`.
import test from 'ava';

import { describeTask } from '../../cli/output/describe-task.js';
import { formatObjects } from '../../cli/output/format.js';
import type { Task } from '../../common/resources/types.js';

const now = new Date('2026-01-01T00:01:00Z');

const task: Task = {
  apiVersion: 'tessera/v1',
  kind: 'Task',
  metadata: { name: 'web.1.abc', stack: 's' },
  spec: { serviceName: 'web', serviceStack: 's', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
  nodeName: 'n1',
  desiredState: 'running',
  status: {
    state: 'running',
    timestamp: '2026-01-01T00:00:50Z',
    startedAt: '2026-01-01T00:00:00Z',
    health: 'unhealthy',
    healthChangedAt: '2026-01-01T00:00:50Z',
    failingStreak: 3,
    healthLog: [
      { start: '2026-01-01T00:00:30Z', end: '2026-01-01T00:00:30Z', exitCode: 1, output: 'no /tmp/ok\nat all\n' },
      { start: '2026-01-01T00:00:40Z', end: '2026-01-01T00:00:41Z', exitCode: -1, output: 'Health check exceeded timeout (1000 ms)' },
      { start: '2026-01-01T00:00:50Z', end: '2026-01-01T00:00:50Z', exitCode: 0, output: '' },
    ],
  },
};

test('describe task shows health, the failing streak and the last probes with their output', (t) => {
  const out = describeTask(task, now);
  t.regex(out, /^Health:\s+unhealthy 10 seconds ago, 3 failed probes in a row$/m);
  t.regex(out, /^Started:\s+2026-01-01T00:00:00Z/m);
  t.regex(
    out,
    /^Last health probes:\n {2}2026-01-01T00:00:30Z {2}failed \(exit 1\): no \/tmp\/ok \| at all\n {2}2026-01-01T00:00:41Z {2}failed \(no exit code\): Health check exceeded timeout \(1000 ms\)\n {2}2026-01-01T00:00:50Z {2}ok$/m,
  );
});

test('a task without a health check shows none of it', (t) => {
  const plain: Task = { ...task, status: { state: 'running', timestamp: '2026-01-01T00:00:50Z' } };
  t.notRegex(describeTask(plain, now), /Health/);
  t.regex(formatObjects([plain], 'table', 'Task', { now }), /HEALTH/);
  t.regex(formatObjects([task], 'table', 'Task', { now }).split('\n')[1]!, /\sunhealthy\s/);
});
