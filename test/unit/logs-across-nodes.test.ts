// tsctl logs across nodes: log lines as timed entries, the time window, the merge by time, a
// node's answers to a manager's requests (real files, real FileLogSource), the manager's side of
// those requests (routing, a node answering only its own, a session ending mid-request), and the
// API's stream over local and remote nodes with a partial result for a node that cannot answer.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FileLogSource, inWindow, logEntry } from '../../agent/worker/log-source.js';
import { logPathFor } from '../../agent/worker/task-runner.js';
import { LogRequestServer, logRequestProblem } from '../../agent/session/log-requests.js';
import { NodeLogs } from '../../control-plane/dispatcher/node-logs.js';
import { NodeUnavailableError } from '../../control-plane/dispatcher/node-requests.js';
import { mergeByTime, resumedLogPositions, streamLogs } from '../../control-plane/api/logs-stream.js';
import { ApiError } from '../../control-plane/api/errors.js';
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
    sequence: 0,
  });
  t.deepEqual(
    logEntry('a', 'raw text', 4),
    { task: 'a', timeMs: 0, stream: 'stdout', text: 'raw text', sequence: 4 },
    'a line without seq counts by its place',
  );
  t.is(logEntry('a', '{"time":"2026-12-06T10:00:00Z","stream":"stdout","seq":17,"log":"x\\n"}', 3).sequence, 17, "the shim's seq wins");
  t.is(
    logEntry('a', '{"time":"2026-12-06T10:00:00Z","stream":"stdout","seq":-1,"log":"x"}', 3).sequence,
    3,
    'a seq that is not a positive integer is not used',
  );
  const at = (timeMs: number): LogEntry => ({ task: 'a', timeMs, stream: 'stdout', text: '', sequence: 0 });
  t.true(inWindow(at(5), { sinceMs: 5, untilMs: 5 }));
  t.false(inWindow(at(4), { sinceMs: 5, untilMs: 0 }));
  t.false(inWindow(at(6), { sinceMs: 0, untilMs: 5 }));
  t.true(inWindow(at(0), { sinceMs: 5, untilMs: 5 }), 'a line without a time is not dropped');
});

test('merge by time: timed lines in order, untimed ones stay after the line before them, ties keep arrival order', (t) => {
  const e = (task: string, timeMs: number): LogEntry => ({ task, timeMs, stream: 'stdout', text: `${task}${timeMs}`, sequence: 0 });
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
    server.start(
      { requestId: 7, taskNames: ['web.1', 'web.2'], follow: false, tail: 1, sinceMs: Date.parse('2026-12-06T10:00:00Z'), untilMs: 0, afterSequence: {} },
      (chunk) => {
        chunks.push(chunk);
        if (chunk.done) resolve();
      },
    ),
  );
  const texts = chunks.flatMap((c) => (c.entries ?? []).map((e) => e.text ?? '')).sort((a, b) => a.localeCompare(b));
  t.deepEqual(texts, ['three', 'two'], 'the last line of each task after since');
  t.deepEqual(chunks.at(-1), { requestId: 7, done: true, error: '' });
  t.regex(
    logRequestProblem({
      requestId: 1,
      taskNames: Array.from({ length: 1001 }, () => 'x'),
      follow: false,
      tail: 0,
      sinceMs: 0,
      untilMs: 0,
      afterSequence: {},
    }) ?? '',
    /at most 1000/,
  );
  const refused: LogChunk[] = [];
  server.start({ requestId: 8, taskNames: [''], follow: false, tail: 0, sinceMs: 0, untilMs: 0, afterSequence: {} }, (c) => refused.push(c));
  t.deepEqual(refused, [{ requestId: 8, done: true, error: 'a task name in the log request is empty or too long' }]);

  // Follow: caught up after the backlog, then new lines, until cancelled.
  const followed: LogChunk[] = [];
  server.start({ requestId: 9, taskNames: ['web.1'], follow: true, tail: 0, sinceMs: 0, untilMs: 0, afterSequence: {} }, (c) => followed.push(c));
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
    entries: [{ task: 'web.1', timeMs: 1, stream: 'stdout', text: 'forged', sequence: 1 }],
    caughtUp: false,
    done: true,
    error: '',
  });
  nodeLogs.onChunk('node-2', {
    requestId: Number(requestId),
    entries: [
      { task: 'web.1', timeMs: 1, stream: 'stdout', text: 'real', sequence: 1 },
      { task: 'other.1', timeMs: 1, stream: 'stdout', text: 'not asked for', sequence: 1 },
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
        entries: [{ task: 'web.2', timeMs: Date.parse('2026-12-06T10:00:02Z'), stream: 'stdout', text: 'remote two', sequence: 1 }],
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
      { task: 'web.1', line: 'x', timeMs: Date.parse('2026-12-06T10:00:01Z'), stream: 'stdout', node: 'n', notice: '', sequence: 1, caughtUp: false },
      { prefix: true, timestamps: true },
    ),
    '2026-12-06T10:00:01.000Z web.1 | x',
  );
});

const numbered = (seq: number, text: string) => `${JSON.stringify({ time: `2026-12-06T10:00:0${seq}Z`, stream: 'stdout', seq, log: `${text}\n` })}\n`;

test("a resumed request gets each task's lines after its sequence, whatever the tail; other tasks get the tail", async (t) => {
  const dir = await logsDir(t, {
    'web.1': numbered(1, 'a1') + numbered(2, 'a2') + numbered(3, 'a3'),
    'web.2': numbered(1, 'b1') + numbered(2, 'b2'),
    // An older shim's lines carry no seq: they count by their place in the file.
    'web.3': shimLine('2026-12-06T10:00:01Z', 'c1') + shimLine('2026-12-06T10:00:02Z', 'c2'),
  });
  const got: LogEntry[] = [];
  const query = { follow: false, tail: 1, sinceMs: 0, untilMs: 0, afterSequence: new Map([['web.1', 1]]), signal: new AbortController().signal };
  await new FileLogSource(dir).stream(['web.1', 'web.2', 'web.3'], query, (e) => got.push(...e));
  t.deepEqual(
    got.map((e) => `${e.text}@${e.sequence}`).sort((a, b) => a.localeCompare(b)),
    ['a2@2', 'a3@3', 'b2@2', 'c2@2'],
  );
  t.deepEqual(resumedLogPositions({ 'web.1': 3 }), new Map([['web.1', 3]]));
  t.throws(() => resumedLogPositions({ '': 3 }), { message: /resumed task name is empty/ });
  t.throws(() => resumedLogPositions({ x: 1.5 }), { message: /not a whole number/ });
  t.regex(
    logRequestProblem({ requestId: 1, taskNames: ['x'], follow: false, tail: 0, sinceMs: 0, untilMs: 0, afterSequence: { x: -1 } }) ?? '',
    /not a whole number/,
  );
});

test('with follow, the leader asks a node without a session again once it is back, from the last line of each task; a manager that does not lead ends the call UNAVAILABLE', async (t) => {
  const nodeLogs = new NodeLogs();
  const asked: Array<Record<string, number>> = [];
  // node-2's agent: the first time it answers a1, a2 and its session ends; the second time it
  // sends what the request asks for (after a2: a3), caught up, then stays.
  const agent = (m: ManagerMessage) => {
    const request = m.logRequest;
    if (!request) return;
    const id = Number(request.requestId);
    const after = { ...(request.afterSequence as Record<string, number>) };
    asked.push(after);
    const lines = [1, 2, 3].filter((n) => n > (after['web.2'] ?? 0)).slice(0, asked.length === 1 ? 2 : 3);
    setImmediate(() => {
      nodeLogs.onChunk('node-2', {
        requestId: id,
        entries: lines.map((n) => ({ task: 'web.2', timeMs: n, stream: 'stdout', text: `a${n}`, sequence: n })),
        caughtUp: true,
        done: false,
        error: '',
      });
      if (asked.length === 1) setImmediate(() => nodeLogs.detach('node-2', 'its session with this manager ended', agent));
    });
  };
  nodeLogs.attach('node-2', agent);
  const lines: LogLine[] = [];
  const abort = new AbortController();
  const done = streamLogs(
    { local: new FileLogSource(await logsDir(t, {})), selfNode: 'node-1', nodeLogs, holdsNodeSessions: () => true },
    [task('web.2', 'node-2')],
    { follow: true, tail: 0, sinceMs: 0, untilMs: 0, reportCaughtUp: true },
    (line) => {
      lines.push(line);
      if (line.line === 'a3') abort.abort();
    },
    abort.signal,
  );
  await waitFor(() => lines.some((l) => l.notice));
  nodeLogs.attach('node-2', agent); // the agent reconnected
  await done;
  t.deepEqual(
    lines.map((l) => (l.caughtUp ? 'caught up' : l.notice ? 'notice' : `${l.line}@${Number(l.sequence)}`)),
    ['a1@1', 'a2@2', 'caught up', 'notice', 'a3@3'],
  );
  t.deepEqual(asked, [{}, { 'web.2': 2 }]);

  const follower = streamLogs(
    { local: new FileLogSource(await logsDir(t, {})), selfNode: 'node-1', nodeLogs: new NodeLogs(), holdsNodeSessions: () => false },
    [task('web.2', 'node-2')],
    { follow: true, tail: 0, sinceMs: 0, untilMs: 0 },
    () => undefined,
    new AbortController().signal,
  );
  const err = await t.throwsAsync(follower, { instanceOf: ApiError });
  t.is(err.code, grpc.status.UNAVAILABLE);
  t.regex(err.message, /no longer leads; ask another manager/);
});
