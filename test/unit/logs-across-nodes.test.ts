// tsctl logs across nodes: log lines as timed entries, the time window, the merge by time, a
// node's answers to a manager's requests (real files, real FileLogSource), the manager's side of
// those requests (routing, a node answering only its own, a session ending mid-request), and the
// API's stream over local and remote nodes with a partial result for a node that cannot answer.
import test from 'ava';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FileLogSource, inWindow, logEntry } from '../../agent/worker/log-source.js';
import { logPathFor } from '../../agent/worker/task-runner.js';
import { LogRequestServer, logRequestProblem } from '../../agent/session/log-requests.js';
import { NodeLogs } from '../../control-plane/dispatcher/node-logs.js';
import { NodeUnavailableError } from '../../control-plane/dispatcher/node-requests.js';
import { mergeByTime, streamLogs } from '../../control-plane/api/logs-stream.js';
import { logLineText } from '../../cli/commands/logs.js';
import type { LogEntry } from '../../common/logs/log-source.js';
import type { Task } from '../../common/resources/types.js';
import type { LogChunk } from '../../proto/gen/tessera/dispatcher/v1/LogChunk.js';
import type { LogLine } from '../../proto/gen/tessera/api/v1/LogLine.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';

const shimLine = (time: string, text: string, stream = 'stdout') => `${JSON.stringify({ time, stream, log: `${text}\n` })}\n`;

async function logsDir(t: { teardown(fn: () => Promise<void>): void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-logs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [task, text] of Object.entries(files)) await writeFile(logPathFor(dir, task), text);
  return dir;
}

const task = (name: string, nodeName: string): Task =>
  ({
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name, stack: 's' },
    spec: { serviceName: 'web', serviceStack: 's', serviceGeneration: 1, slot: 1, spec: { image: 'x' } },
    nodeName,
    desiredState: 'running',
    status: { state: 'running', timestamp: new Date(0).toISOString() },
  }) as Task;

test('a shim line is a timed entry; other lines are kept as they are; the window bounds timed lines only', (t) => {
  t.deepEqual(logEntry('a', shimLine('2026-12-06T10:00:00.000000001Z', 'hi', 'stderr').trim()), {
    task: 'a',
    timeMs: Date.parse('2026-12-06T10:00:00Z'),
    stream: 'stderr',
    text: 'hi',
  });
  t.deepEqual(logEntry('a', 'raw text'), { task: 'a', timeMs: 0, stream: 'stdout', text: 'raw text' });
  const at = (timeMs: number): LogEntry => ({ task: 'a', timeMs, stream: 'stdout', text: '' });
  t.true(inWindow(at(5), { sinceMs: 5, untilMs: 5 }));
  t.false(inWindow(at(4), { sinceMs: 5, untilMs: 0 }));
  t.false(inWindow(at(6), { sinceMs: 0, untilMs: 5 }));
  t.true(inWindow(at(0), { sinceMs: 5, untilMs: 5 }), 'a line without a time is not dropped');
});

test('merge by time: timed lines in order, untimed ones stay after the line before them, ties keep arrival order', (t) => {
  const e = (task: string, timeMs: number): LogEntry => ({ task, timeMs, stream: 'stdout', text: `${task}${timeMs}` });
  t.deepEqual(
    mergeByTime([e('a', 3), e('a', 0), e('b', 1), e('b', 3), e('c', 2)]).map((x) => x.text),
    ['b1', 'c2', 'a3', 'a0', 'b3'],
  );
});

test("a node's answers: batches, caught-up after the backlog, done at the end; tail and since apply per task; bad requests refused", async (t) => {
  const dir = await logsDir(t, {
    'web.1': shimLine('2026-12-06T10:00:01Z', 'one') + shimLine('2026-12-06T10:00:03Z', 'three'),
    'web.2': shimLine('2026-12-06T10:00:02Z', 'two') + shimLine('2026-12-06T09:00:00Z', 'old'),
  });
  const server = new LogRequestServer(new FileLogSource(dir), () => undefined);
  const chunks: LogChunk[] = [];
  await new Promise<void>((resolve) =>
    server.start({ requestId: 7, taskNames: ['web.1', 'web.2'], follow: false, tail: 1, sinceMs: Date.parse('2026-12-06T10:00:00Z'), untilMs: 0 }, (chunk) => {
      chunks.push(chunk);
      if (chunk.done) resolve();
    }),
  );
  const texts = chunks.flatMap((c) => (c.entries ?? []).map((e) => e.text ?? '')).sort((a, b) => a.localeCompare(b));
  t.deepEqual(texts, ['three', 'two'], 'the last line of each task after since');
  t.deepEqual(chunks.at(-1), { requestId: 7, done: true, error: '' });
  t.regex(
    logRequestProblem({ requestId: 1, taskNames: Array.from({ length: 1001 }, () => 'x'), follow: false, tail: 0, sinceMs: 0, untilMs: 0 }) ?? '',
    /at most 1000/,
  );
  const refused: LogChunk[] = [];
  server.start({ requestId: 8, taskNames: [''], follow: false, tail: 0, sinceMs: 0, untilMs: 0 }, (c) => refused.push(c));
  t.deepEqual(refused, [{ requestId: 8, done: true, error: 'a task name in the log request is empty or too long' }]);

  // Follow: caught up after the backlog, then new lines, until cancelled.
  const followed: LogChunk[] = [];
  server.start({ requestId: 9, taskNames: ['web.1'], follow: true, tail: 0, sinceMs: 0, untilMs: 0 }, (c) => followed.push(c));
  await waitFor(() => followed.some((c) => c.caughtUp));
  await appendFile(logPathFor(dir, 'web.1'), shimLine('2026-12-06T10:00:04Z', 'four'));
  await waitFor(() => followed.some((c) => c.entries?.some((e) => e.text === 'four')));
  server.cancel(9);
  t.deepEqual(
    followed.flatMap((c) => (c.entries ?? []).map((e) => e.text)),
    ['one', 'three', 'four'],
  );
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!condition()) throw new Error('timed out');
}

test("the manager's requests: routed to the node's session, answered only by that node, failed when its session ends", async (t) => {
  const nodeLogs = new NodeLogs();
  const sent: ManagerMessage[] = [];
  const send = (m: ManagerMessage) => sent.push(m);
  await t.throwsAsync(
    nodeLogs.request(
      'node-2',
      { taskNames: ['web.1'], follow: false, tail: 0, sinceMs: 0, untilMs: 0 },
      () => undefined,
      () => undefined,
      new AbortController().signal,
    ),
    { instanceOf: NodeUnavailableError, message: /node node-2: no session/ },
  );
  nodeLogs.attach('node-2', send);
  const got: string[] = [];
  const done = nodeLogs.request(
    'node-2',
    { taskNames: ['web.1'], follow: false, tail: 0, sinceMs: 0, untilMs: 0 },
    (e) => got.push(...e.map((x) => x.text)),
    () => undefined,
    new AbortController().signal,
  );
  const requestId = sent[0]!.logRequest!.requestId!;
  nodeLogs.onChunk('node-3', {
    requestId: Number(requestId),
    entries: [{ task: 'web.1', timeMs: 1, stream: 'stdout', text: 'forged' }],
    caughtUp: false,
    done: true,
    error: '',
  });
  nodeLogs.onChunk('node-2', {
    requestId: Number(requestId),
    entries: [
      { task: 'web.1', timeMs: 1, stream: 'stdout', text: 'real' },
      { task: 'other.1', timeMs: 1, stream: 'stdout', text: 'not asked for' },
    ],
    caughtUp: false,
    done: true,
    error: '',
  });
  await done;
  t.deepEqual(got, ['real'], "another node's answer and tasks not asked for are dropped");

  const running = nodeLogs.request(
    'node-2',
    { taskNames: ['web.1'], follow: true, tail: 0, sinceMs: 0, untilMs: 0 },
    () => undefined,
    () => undefined,
    new AbortController().signal,
  );
  nodeLogs.detach('node-2', 'its session with this manager ended', send);
  await t.throwsAsync(running, { message: 'node node-2: its session with this manager ended' });
});

test('the API stream: local and remote nodes merged by time; a node that cannot answer is a notice, the rest still comes', async (t) => {
  const dir = await logsDir(t, { 'web.1': shimLine('2026-12-06T10:00:01Z', 'local one') + shimLine('2026-12-06T10:00:03Z', 'local three') });
  const nodeLogs = new NodeLogs();
  nodeLogs.attach('node-2', (m) => {
    const id = Number(m.logRequest?.requestId);
    if (!id) return;
    setImmediate(() =>
      nodeLogs.onChunk('node-2', {
        requestId: id,
        entries: [{ task: 'web.2', timeMs: Date.parse('2026-12-06T10:00:02Z'), stream: 'stdout', text: 'remote two' }],
        caughtUp: false,
        done: true,
        error: '',
      }),
    );
  });
  const lines: LogLine[] = [];
  await streamLogs(
    { local: new FileLogSource(dir), selfNode: 'node-1', nodeLogs },
    [task('web.1', 'node-1'), task('web.2', 'node-2'), task('web.3', 'node-3')],
    { follow: false, tail: 0, sinceMs: 0, untilMs: 0 },
    (line) => lines.push(line),
    new AbortController().signal,
  );
  t.deepEqual(
    lines.map((l) => l.notice || `${l.node} ${l.task} ${l.line}`),
    [
      "node node-3: no session with this manager (the node is down, or connected to another manager); its tasks' lines are missing",
      'node-1 web.1 local one',
      'node-2 web.2 remote two',
      'node-1 web.1 local three',
    ],
  );
  t.is(
    logLineText(
      { task: 'web.1', line: 'x', timeMs: Date.parse('2026-12-06T10:00:01Z'), stream: 'stdout', node: 'n', notice: '' },
      { prefix: true, timestamps: true },
    ),
    '2026-12-06T10:00:01.000Z web.1 | x',
  );
});
