// tsctl exec's pure parts (issue 16): what a request may ask for, the byte windows of its flow
// control, the environment merge, the exit codes, tsctl's own checks and the operator rule.
import test from 'ava';

import {
  cannotRunCode,
  EXEC_WINDOW_BYTES,
  execRequestProblem,
  MAX_EXEC_ARGS,
  MAX_EXEC_CHUNK_BYTES,
  MAX_EXEC_COMMAND_BYTES,
  MAX_EXEC_ENV,
  mergeEnv,
  terminalSizeProblem,
} from '../../common/exec/exec-limits.js';
import { CreditWindow, ReceiveWindow } from '../../common/exec/credit-window.js';
import { parseExecStart } from '../../control-plane/api/exec-stream.js';
import { ApiError } from '../../control-plane/api/errors.js';
import { authorizeExec } from '../../control-plane/auth/exec-authorization.js';
import type { Caller } from '../../control-plane/auth/caller.js';
import type { ServiceSpec, Task } from '../../common/resources/types.js';
import { execUsageProblem, outcomeOfExit } from '../../cli/commands/exec.js';
import { splitChunk } from '../../agent/session/exec-requests.js';

const ok: { task: string; command: string[]; env: string[]; rows: number; cols: number } = {
  task: 'shop_web.1.ab12',
  command: ['sh', '-c', 'true'],
  env: [],
  rows: 0,
  cols: 0,
};

test('a well-formed request passes; each bad field is named', (t) => {
  t.is(execRequestProblem(ok), undefined);
  t.is(execRequestProblem({ ...ok, env: ['A=1', 'B='], rows: 24, cols: 80 }), undefined);
  const cases: Array<[Partial<typeof ok> & Record<string, unknown>, RegExp]> = [
    [{ task: '' }, /no task named/],
    [{ task: 'x'.repeat(254) }, /task name is longer than 253 bytes/],
    [{ command: [] }, /no command given/],
    [{ command: [''] }, /no command given/],
    [{ command: Array.from({ length: MAX_EXEC_ARGS + 1 }, () => 'a') }, /1025 arguments; at most 1024/],
    [{ command: ['sh', 'x'.repeat(MAX_EXEC_COMMAND_BYTES)] }, /the command is 65538 bytes; at most 65536/],
    [{ command: ['sh', 'a\0b'] }, /argument 1 contains a NUL byte/],
    [{ env: Array.from({ length: MAX_EXEC_ENV + 1 }, (_, i) => `V${i}=1`) }, /257 environment entries/],
    [{ env: ['A=1', 'NOVALUE'] }, /env\[1\] must be NAME=value/],
    [{ env: ['=1'] }, /env\[0\] must be NAME=value/],
    [{ env: ['A=\0'] }, /env\[0\] contains a NUL byte/],
    [{ env: [`A=${'x'.repeat(70_000)}`] }, /the environment is 70002 bytes/],
    [{ rows: 65_536 }, /terminal rows must be 0..65535/],
    [{ cols: -1 }, /terminal cols must be 0..65535/],
    [{ cols: 1.5 }, /terminal cols/],
  ];
  for (const [change, expected] of cases)
    t.regex(execRequestProblem({ ...ok, ...change } as typeof ok) ?? 'passed', expected, JSON.stringify(change).slice(0, 80));
  t.is(terminalSizeProblem(40, 120), undefined);
  t.regex(terminalSizeProblem(70_000, 1) ?? '', /rows/);
});

test("extra variables replace the container's of the same name and keep the rest", (t) => {
  t.deepEqual(mergeEnv(['PATH=/bin', 'HOME=/root', 'A=old'], ['A=new', 'B=x=y']), ['PATH=/bin', 'HOME=/root', 'A=new', 'B=x=y']);
  t.deepEqual(mergeEnv(['PATH=/bin'], []), ['PATH=/bin']);
});

test('a program that is missing is 127; one that cannot be run is 126', (t) => {
  t.is(cannotRunCode('ENOENT'), 127);
  t.is(cannotRunCode('ENOTDIR'), 127);
  t.is(cannotRunCode('EACCES'), 126);
  t.is(cannotRunCode('ENOEXEC'), 126);
  t.is(cannotRunCode(undefined), 126);
});

test('the sender stops at the window and goes on with credit; credit beyond what was sent is refused', (t) => {
  const window = new CreditWindow(100);
  t.true(window.open);
  window.sent(60);
  t.true(window.open);
  window.sent(60);
  t.false(window.open);
  window.credit(30);
  t.true(window.open);
  t.is(window.outstanding, 90);
  t.throws(() => window.credit(91), { message: /credit of 91 bytes with 90 outstanding/ });
  t.throws(() => window.credit(-1));
  t.throws(() => window.credit(0.5));
});

test('the receiver refuses chunks over the limit and a sender past the window', (t) => {
  const window = new ReceiveWindow(EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES);
  t.regex(window.take(MAX_EXEC_CHUNK_BYTES + 1) ?? '', /a chunk of 32769 bytes; at most 32768/);
  // A sender that sends only while its window is open may overshoot by less than a chunk.
  let sent = 0;
  while (sent < EXEC_WINDOW_BYTES) {
    t.is(window.take(MAX_EXEC_CHUNK_BYTES - 1), undefined);
    sent += MAX_EXEC_CHUNK_BYTES - 1;
  }
  t.regex(window.take(1) ?? '', /sent without credit; the window is 262144/);
  // Credit that brings it under the window lets the next chunk in; a release is never more than held.
  t.is(window.release(sent - EXEC_WINDOW_BYTES + 1), sent - EXEC_WINDOW_BYTES + 1);
  t.is(window.take(1), undefined);
  t.is(window.release(10 * EXEC_WINDOW_BYTES), EXEC_WINDOW_BYTES);
  t.is(window.outstanding, 0);
});

test('output is cut into chunks no larger than the limit', (t) => {
  const data = Buffer.alloc(MAX_EXEC_CHUNK_BYTES * 2 + 5, 7);
  const pieces = splitChunk(data, MAX_EXEC_CHUNK_BYTES);
  t.deepEqual(
    pieces.map((p) => p.length),
    [MAX_EXEC_CHUNK_BYTES, MAX_EXEC_CHUNK_BYTES, 5],
  );
  t.true(Buffer.concat(pieces).equals(data));
  t.deepEqual(splitChunk(Buffer.alloc(0), 10), []);
});

test('the API turns a bad start message into INVALID_ARGUMENT naming the field', (t) => {
  const start = { stack: 'shop', task: 'shop_web.1.x', command: ['ls'], tty: true, stdin: true, rows: 24, cols: 80, env: ['A=1'] };
  t.deepEqual(parseExecStart(start), { taskName: 'shop_web.1.x', command: ['ls'], env: ['A=1'], tty: true, stdin: true, rows: 24, cols: 80 });
  const err = t.throws(() => parseExecStart({ ...start, command: [] }));
  t.true(err instanceof ApiError);
  t.is((err as ApiError).code, 3);
  t.regex(err.message, /no command given/);
});

test("tsctl: the exit code is the command's; an error without a code is 125; -t needs a terminal", (t) => {
  t.deepEqual(outcomeOfExit({ code: 3, signal: '', error: '' }), { code: 3 });
  t.deepEqual(outcomeOfExit({ code: 137, signal: 'SIGKILL', error: '' }), { code: 137 });
  t.deepEqual(outcomeOfExit({ code: 127, signal: '', error: 'exec failed: ENOENT' }), { code: 127, message: 'exec failed: ENOENT' });
  t.deepEqual(outcomeOfExit({ code: 0, signal: '', error: 'node node-3: down' }), { code: 125, message: 'node node-3: down' });
  t.deepEqual(outcomeOfExit({ code: -1, signal: '', error: '' }), { code: 125 });
  t.deepEqual(outcomeOfExit({ code: 300, signal: '', error: '' }), { code: 125 });
  t.is(execUsageProblem({ tty: true, stdinIsTTY: false, task: 't', command: ['sh'], env: [] }), 'the input device is not a TTY');
  t.is(execUsageProblem({ tty: true, stdinIsTTY: true, task: 't', command: ['sh'], env: [] }), undefined);
  t.is(execUsageProblem({ tty: false, stdinIsTTY: false, task: 't', command: ['sh'], env: [] }), undefined);
  t.regex(execUsageProblem({ tty: false, stdinIsTTY: false, task: 't', command: ['sh'], env: ['X'] }) ?? '', /env\[0\]/);
});

function taskOf(spec: Partial<ServiceSpec>): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name: 'shop_web.1.ab12', stack: 'shop' },
    spec: { serviceName: 'web', serviceStack: 'shop', serviceGeneration: 1, slot: 1, spec: { image: 'busybox', ...spec } },
    nodeName: 'node-2',
    desiredState: 'running',
    status: { state: 'running', timestamp: new Date(0).toISOString() },
  };
}

test('operators may exec only into services admitted at baseline; admins, root and a forwarding manager into any', (t) => {
  const operator: Caller = { kind: 'user', name: 'carol', role: 'operator', serial: '02' };
  const admin: Caller = { kind: 'user', name: 'alice', role: 'admin', serial: '01' };
  const viewer: Caller = { kind: 'user', name: 'bob', role: 'viewer', serial: '03' };
  const manager: Caller = { kind: 'node', nodeId: 'node-2', role: 'manager', serial: '04' };
  const plain = taskOf({});
  const privileged = taskOf({ capAdd: ['ALL'] });
  t.deepEqual(authorizeExec(operator, plain), { allowed: true });
  const refused = authorizeExec(operator, privileged);
  t.false(refused.allowed);
  if (!refused.allowed) {
    t.regex(refused.reason, /^user:carol \(operator\) may not exec into task shop_web\.1\.ab12: its service runs above admission level baseline/);
    t.regex(refused.reason, /capAdd\[0\]: ALL/);
  }
  for (const caller of [admin, manager, { kind: 'local-root' } as Caller]) t.deepEqual(authorizeExec(caller, privileged), { allowed: true });
  t.false(authorizeExec(viewer, plain).allowed);
});
