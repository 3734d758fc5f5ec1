// tsctl top on the manager: what it believes of a node's answer (only its own tasks, each once,
// sane figures, bounded sizes), asking nodes over their sessions with a bounded wait, rows and
// per-node totals with notices for the nodes that did not answer, and the CLI's tables. NodeTop
// is the real class; the sessions are functions standing in for the dispatcher's streams (the
// e2e test test/e2e/top-across-nodes.test.ts runs the real ones).
import test from 'ava';

import { acceptTopAnswer, NodeTop } from '../../control-plane/dispatcher/node-top.js';
import { NodeUnavailableError } from '../../control-plane/dispatcher/node-requests.js';
import { gatherTop, tasksToAsk, topResponse } from '../../control-plane/api/top.js';
import { formatDecimalBytes, formatNodeTable, formatTaskTable } from '../../cli/commands/top.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import type { TaskUsage__Output } from '../../proto/gen/tessera/dispatcher/v1/TaskUsage.js';
import type { TopAnswer__Output } from '../../proto/gen/tessera/dispatcher/v1/TopAnswer.js';
import type { Node, Task, TaskState } from '../../common/resources/types.js';

function usage(task: string, over: Partial<TaskUsage__Output> = {}): TaskUsage__Output {
  return {
    task,
    cpuPercent: 12.5,
    cpuUsageNanos: 1e9,
    memoryUsageBytes: 1024,
    memoryLimitBytes: 0,
    networkRxBytes: 1,
    networkTxBytes: 2,
    blockReadBytes: 3,
    blockWriteBytes: 4,
    pids: 1,
    error: '',
    ...over,
  };
}

function answer(requestId: number, tasks: TaskUsage__Output[], error = ''): TopAnswer__Output {
  return { requestId, tasks, error, sampleMs: 1000, cgroupVersion: 'v1' };
}

function task(name: string, nodeName: string, state: TaskState = 'running'): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name, stack: 'st' },
    spec: { serviceName: name.split('.')[0]!, serviceStack: 'st', slot: 1, serviceGeneration: 1, spec: { image: 'x' } },
    desiredState: 'running',
    nodeName,
    status: { state, timestamp: '2026-01-01T00:00:00Z' },
  } as Task;
}

function node(name: string, state: 'ready' | 'down' = 'ready'): Node {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Node',
    metadata: { name },
    spec: { role: 'worker', availability: 'active', labels: {} },
    status: { state, hostname: name, address: '10.0.0.1', resources: { memoryBytes: 4 * 1024 ** 3, nanoCpus: 2e9 } },
  } as Node;
}

test('an answer is believed only for the tasks asked, each once, with numbers in range', (t) => {
  const asked = new Set(['a.1', 'a.2', 'a.3', 'a.4', 'a.5']);
  const got = acceptTopAnswer(
    'node-2',
    asked,
    answer(1, [
      usage('a.1'),
      usage('a.1', { cpuPercent: 999 }),
      usage('not-mine.1'),
      usage('a.2', { cpuPercent: Number.NaN }),
      usage('a.3', { error: 'container a.3 is stopped' }),
    ]),
  );
  t.deepEqual(
    got.tasks.map((u) => [u.task, u.cpuPercent]),
    [['a.1', 12.5]],
    'the first entry of a.1; the foreign task dropped',
  );
  t.deepEqual(got.missing, [
    { task: 'a.2', why: 'the node sent figures that are not numbers of the right range' },
    { task: 'a.3', why: 'container a.3 is stopped' },
    { task: 'a.4', why: 'the node did not answer for it' },
    { task: 'a.5', why: 'the node did not answer for it' },
  ]);
  t.is(got.cgroupVersion, 'v1');
  t.throws(() => acceptTopAnswer('node-2', new Set(['a.1']), answer(1, [usage('a.1'), usage('b.1')])), {
    instanceOf: NodeUnavailableError,
    message: 'node node-2: sent 2 task entries for 1 tasks asked',
  });
  t.throws(() => acceptTopAnswer('node-2', asked, answer(1, [], 'x'.repeat(10_000))), { message: /^node node-2: x{300}$/ });
  const negative = acceptTopAnswer('node-2', new Set(['a.1']), answer(1, [usage('a.1', { pids: -1 })]));
  t.is(negative.tasks.length, 0);
});

test('NodeTop asks over the session, routes the answer to the asker, and never waits past its time', async (t) => {
  const top = new NodeTop();
  await t.throwsAsync(top.request('node-2', ['a.1'], 1000), { instanceOf: NodeUnavailableError, message: /node node-2: no session with this manager/ });

  const sent: ManagerMessage[] = [];
  top.attach('node-2', (m) => sent.push(m));
  top.attach('node-3', () => undefined);
  const asking = top.request('node-2', ['a.1'], 5000);
  const request = sent[0]?.topRequest;
  t.deepEqual(request?.taskNames, ['a.1']);
  const id = Number(request?.requestId);
  top.onAnswer('node-3', answer(id, [usage('a.1', { cpuPercent: 77 })])); // another node cannot answer for node-2
  top.onAnswer('node-2', answer(id, [usage('a.1')]));
  t.is((await asking).tasks[0]?.cpuPercent, 12.5);

  const silent = top.request('node-3', ['b.1'], 50);
  await t.throwsAsync(silent, { message: 'node node-3: did not answer within 0.05 s' });

  const cut = top.request('node-2', ['a.1'], 5000);
  top.detach('node-2', 'its session with this manager ended');
  await t.throwsAsync(cut, { message: 'node node-2: its session with this manager ended' });
});

test('Top asks each node with running tasks once; one that does not answer is a notice and the others are rows', async (t) => {
  const tasks = [task('web.1', 'node-1'), task('web.2', 'node-2'), task('web.3', 'node-3'), task('old.1', 'node-1', 'shutdown')];
  const nodes = [node('node-1'), node('node-2'), node('node-3', 'down')];
  t.deepEqual(
    [...tasksToAsk(tasks, '')].map(([n, ts]) => [n, ts.map((x) => x.metadata.name)]),
    [
      ['node-1', ['web.1']],
      ['node-2', ['web.2']],
      ['node-3', ['web.3']],
    ],
  );
  const top = new NodeTop();
  const asked: string[] = [];
  for (const name of ['node-1', 'node-2']) {
    top.attach(name, (m) => {
      const req = m.topRequest!;
      asked.push(name);
      // Answers as an agent would, on a later turn; node-2 stays silent.
      if (name === 'node-1')
        setImmediate(() =>
          top.onAnswer(
            name,
            answer(
              Number(req.requestId),
              req.taskNames!.map((n) => usage(n)),
            ),
          ),
        );
    });
  }
  const response = await gatherTop(top, tasks, nodes, { byNode: false, node: '' }, 100);
  t.deepEqual(asked.sort(), ['node-1', 'node-2']);
  t.deepEqual(
    response.tasks?.map((r) => [r.task, r.node, r.service, r.stack]),
    [['web.1', 'node-1', 'web', 'st']],
  );
  t.deepEqual(response.notices, [
    'node node-2: did not answer within 0.1 s; its tasks are not shown',
    'node node-3: no session with this manager (the node is down, or connected to another manager); its tasks are not shown',
  ]);

  const byNode = await gatherTop(top, tasks, nodes, { byNode: true, node: 'node-1' }, 100);
  t.deepEqual(byNode.notices, []);
  t.deepEqual(byNode.nodes, [
    {
      node: 'node-1',
      state: 'ready',
      tasks: 1,
      cpuPercent: 12.5,
      memoryUsageBytes: 1024,
      networkRxBytes: 1,
      networkTxBytes: 2,
      blockReadBytes: 3,
      blockWriteBytes: 4,
      pids: 1,
      nanoCpus: 2e9,
      memoryBytes: 4 * 1024 ** 3,
    },
  ]);
});

test('node totals sum the node’s rows; a node without tasks is listed with zeros', (t) => {
  const tasks = [task('a.1', 'node-1'), task('a.2', 'node-1')];
  const response = topResponse(
    tasks,
    [node('node-1'), node('node-2')],
    [
      {
        node: 'node-1',
        usage: {
          node: 'node-1',
          tasks: [usage('a.1'), usage('a.2', { cpuPercent: 50, pids: 3 })].map(({ error: _e, ...u }) => u),
          missing: [],
          cgroupVersion: 'v2',
        },
      },
    ],
    { byNode: true, node: '' },
  );
  t.deepEqual(
    response.nodes?.map((n) => [n.node, n.tasks, n.cpuPercent, n.pids]),
    [
      ['node-1', 2, 62.5, 4],
      ['node-2', 0, 0, 0],
    ],
  );
});

test('tables: human units, memory against its limit, empty limit said', (t) => {
  t.is(formatDecimalBytes(0), '0 B');
  t.is(formatDecimalBytes(999), '999 B');
  t.is(formatDecimalBytes(1500), '1.5 kB');
  t.is(formatDecimalBytes(20_000_000), '20.0 MB');
  const row = {
    task: 'web.1',
    stack: 'st',
    service: 'web',
    node: 'node-1',
    cpuPercent: 99.5,
    cpuUsageNanos: 1,
    memoryUsageBytes: 32 * 1024 * 1024,
    memoryLimitBytes: 64 * 1024 * 1024,
    networkRxBytes: 1500,
    networkTxBytes: 0,
    blockReadBytes: 0,
    blockWriteBytes: 2_000_000,
    pids: 3,
  };
  const table = formatTaskTable([row, { ...row, task: 'web.2', memoryLimitBytes: 0 }]).split('\n');
  t.regex(table[0]!, /^TASK\s+NODE\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O \(RX \/ TX\)\s+BLOCK I\/O \(READ \/ WRITE\)\s+PIDS$/);
  t.regex(table[1]!, /^web\.1\s+node-1\s+99\.50%\s+32\.0 MiB \/ 64\.0 MiB\s+50\.00%\s+1\.5 kB \/ 0 B\s+0 B \/ 2\.0 MB\s+3$/);
  t.regex(table[2]!, /32\.0 MiB \/ no limit\s+-\s/);
  const nodes = formatNodeTable([
    {
      node: 'node-1',
      state: 'ready',
      tasks: 2,
      cpuPercent: 150,
      nanoCpus: 2e9,
      memoryUsageBytes: 1024 ** 3,
      memoryBytes: 4 * 1024 ** 3,
      networkRxBytes: 0,
      networkTxBytes: 0,
      blockReadBytes: 0,
      blockWriteBytes: 0,
      pids: 5,
    },
  ]).split('\n');
  t.regex(nodes[1]!, /^node-1\s+ready\s+2\s+150\.00%\s+2\s+1\.0 GiB \/ 4\.0 GiB\s+25\.00%/);
});
