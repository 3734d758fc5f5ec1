// The manager's routing state for tsctl exec (control-plane/dispatcher/node-exec.ts): execs go to
// the node's session, answers are taken only from that node, output is credited back only once
// passed on, stdin waits for the node's credit, a node that breaks the window or goes away ends
// its execs with a reason. The sessions are recorded send functions (what the dispatcher hands it).
import test from 'ava';

import { NodeExec, type ExecExitInfo, type NodeExecRequest } from '../../control-plane/dispatcher/node-exec.js';
import { NodeUnavailableError } from '../../control-plane/dispatcher/node-requests.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import type { AgentMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import { EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES } from '../../common/exec/exec-limits.js';

const request: NodeExecRequest = { taskName: 't.1.x', command: ['cat'], env: [], tty: false, stdin: true, rows: 0, cols: 0 };

function recorder() {
  const sent: ManagerMessage[] = [];
  return { sent, send: (m: ManagerMessage) => void sent.push(m) };
}

function handlers() {
  const seen = { started: 0, output: [] as Array<{ stream: string; data: string; passed: () => void }>, exits: [] as ExecExitInfo[] };
  return {
    seen,
    handlers: {
      onStarted: () => {
        seen.started++;
      },
      onOutput: (stream: 'stdout' | 'stderr' | 'tty', data: Buffer, passed: () => void) => void seen.output.push({ stream, data: data.toString(), passed }),
      onExit: (exit: ExecExitInfo) => void seen.exits.push(exit),
    },
  };
}

const answer = (m: Partial<AgentMessage__Output>) => m as AgentMessage__Output;

test('an exec opens on the node holding the task; answers from another node are dropped', (t) => {
  const nodeExec = new NodeExec();
  const n2 = recorder();
  const n3 = recorder();
  nodeExec.attach('node-2', n2.send);
  nodeExec.attach('node-3', n3.send);
  const { seen, handlers: h } = handlers();
  nodeExec.open('node-3', request, h);
  t.is(n2.sent.length, 0);
  const open = n3.sent[0]?.execOpen;
  t.like(open, { taskName: 't.1.x', command: ['cat'], stdin: true });
  const execId = Number(open?.execId);
  nodeExec.onMessage('node-2', answer({ execStarted: { execId } }));
  nodeExec.onMessage('node-2', answer({ execExited: { execId, code: 0, signal: '', error: '' } }));
  t.is(seen.started, 0);
  t.deepEqual(seen.exits, []);
  nodeExec.onMessage('node-3', answer({ execStarted: { execId } }));
  nodeExec.onMessage('node-3', answer({ execOutput: { execId, stream: 'stdout', data: Buffer.from('hi') } }));
  nodeExec.onMessage('node-3', answer({ execExited: { execId, code: 3, signal: '', error: '' } }));
  t.is(seen.started, 1);
  t.deepEqual(
    seen.output.map((o) => [o.stream, o.data]),
    [['stdout', 'hi']],
  );
  t.deepEqual(seen.exits, [{ code: 3, signal: '', error: '' }]);
  t.is(nodeExec.count, 0);
});

test('a node without a session is unavailable, with a reason', (t) => {
  const nodeExec = new NodeExec();
  t.throws(() => nodeExec.open('node-9', request, handlers().handlers), {
    instanceOf: NodeUnavailableError,
    message: /node node-9: no session with this manager/,
  });
});

test('output is credited back only once it was passed on, and only once', (t) => {
  const nodeExec = new NodeExec();
  const node = recorder();
  nodeExec.attach('node-3', node.send);
  const { seen, handlers: h } = handlers();
  nodeExec.open('node-3', request, h);
  const execId = Number(node.sent[0]?.execOpen?.execId);
  nodeExec.onMessage('node-3', answer({ execOutput: { execId, stream: 'stderr', data: Buffer.alloc(1000) } }));
  t.false(node.sent.some((m) => m.execOutputCredit));
  seen.output[0]!.passed();
  seen.output[0]!.passed();
  t.deepEqual(
    node.sent.filter((m) => m.execOutputCredit).map((m) => m.execOutputCredit),
    [{ execId, bytes: 1000 }],
  );
});

test('a node sending output past the window, or on an unknown stream, ends the exec and is told to stop', (t) => {
  const nodeExec = new NodeExec();
  const node = recorder();
  nodeExec.attach('node-3', node.send);
  const { seen, handlers: h } = handlers();
  nodeExec.open('node-3', request, h);
  const execId = Number(node.sent[0]?.execOpen?.execId);
  // Nothing passed on, so nothing credited: the node may not send more than the window.
  for (let sent = 0; sent < EXEC_WINDOW_BYTES; sent += MAX_EXEC_CHUNK_BYTES)
    nodeExec.onMessage('node-3', answer({ execOutput: { execId, stream: 'stdout', data: Buffer.alloc(MAX_EXEC_CHUNK_BYTES) } }));
  t.deepEqual(seen.exits, []);
  nodeExec.onMessage('node-3', answer({ execOutput: { execId, stream: 'stdout', data: Buffer.alloc(1) } }));
  t.is(seen.exits.length, 1);
  t.regex(seen.exits[0]!.error, /node node-3 broke the exec protocol: output beyond the flow-control window/);
  t.is(seen.exits[0]!.code, 125);
  t.deepEqual(node.sent.at(-1), { execCancel: { execId } });

  const second = handlers();
  nodeExec.open('node-3', request, second.handlers);
  const id2 = Number(node.sent.at(-1)?.execOpen?.execId);
  nodeExec.onMessage('node-3', answer({ execOutput: { execId: id2, stream: 'fd3', data: Buffer.from('x') } }));
  t.regex(second.seen.exits[0]?.error ?? '', /unknown stream "fd3"/);
});

test("stdin waits for the node's credit; credit beyond what was sent ends the exec", async (t) => {
  const nodeExec = new NodeExec();
  const node = recorder();
  nodeExec.attach('node-3', node.send);
  const { seen, handlers: h } = handlers();
  const channel = nodeExec.open('node-3', request, h);
  const execId = Number(node.sent[0]?.execOpen?.execId);
  let open = true;
  let chunks = 0;
  while (open) {
    open = channel.stdin(Buffer.alloc(MAX_EXEC_CHUNK_BYTES));
    chunks++;
  }
  t.is(chunks, EXEC_WINDOW_BYTES / MAX_EXEC_CHUNK_BYTES);
  let woken = false;
  const waiting = channel.whenStdinOpen().then(() => (woken = true));
  await Promise.resolve();
  t.false(woken);
  nodeExec.onMessage('node-3', answer({ execStdinCredit: { execId, bytes: MAX_EXEC_CHUNK_BYTES } }));
  await waiting;
  t.true(woken);
  nodeExec.onMessage('node-3', answer({ execStdinCredit: { execId, bytes: EXEC_WINDOW_BYTES } }));
  t.regex(seen.exits[0]?.error ?? '', /stdin credit: credit of 262144 bytes with 229376 outstanding/);
});

test('a session that ends, or a node marked down, ends its execs with the reason; a cancel sends one and no exit', (t) => {
  const nodeExec = new NodeExec();
  const node = recorder();
  nodeExec.attach('node-3', node.send);
  const a = handlers();
  const b = handlers();
  const c = handlers();
  nodeExec.open('node-3', request, a.handlers);
  nodeExec.open('node-3', request, b.handlers);
  const channelC = nodeExec.open('node-3', request, c.handlers);
  channelC.cancel();
  t.deepEqual(node.sent.at(-1), { execCancel: { execId: 3 } });
  nodeExec.nodeDown('node-3', 'the node is down (no heartbeat for 4000 ms)');
  t.deepEqual(a.seen.exits, [{ code: 125, signal: '', error: 'node node-3: the node is down (no heartbeat for 4000 ms)' }]);
  t.deepEqual(c.seen.exits, []);
  nodeExec.open('node-3', request, b.handlers);
  // An older session's end does not touch the newer one.
  nodeExec.detach('node-3', 'old', () => undefined);
  t.is(nodeExec.count, 1);
  nodeExec.detach('node-3', 'its session with this manager ended', node.send);
  t.regex(b.seen.exits.at(-1)?.error ?? '', /node node-3: its session with this manager ended/);
  t.is(nodeExec.count, 0);
});
