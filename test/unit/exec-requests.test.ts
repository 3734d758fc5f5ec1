// The agent's side of tsctl exec (agent/session/exec-requests.ts) with real processes: the
// container exec is replaced by a host process started the same way for the purpose (own process
// group, three pipes), since entering a container needs a running one (the e2e test does that).
// Output, exit code, the output window holding a fast writer back until credit comes, stdin with
// its credit and its end, a manager overrunning the stdin window, a cancel killing the process,
// and a command that cannot be run.
import test from 'ava';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

import { ExecRequestServer, type ExecTask } from '../../agent/session/exec-requests.js';
import type { AgentMessage } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ExecOpen__Output } from '../../proto/gen/tessera/dispatcher/v1/ExecOpen.js';
import type { ExecProcess } from '../../agent/runtime/types.js';
import { EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES } from '../../common/exec/exec-limits.js';

/** Host processes in their own process group, as the addon's exec makes them (setsid). */
const hostExec: ExecTask = (_task, options) => {
  const child = spawn(options.args[0]!, options.args.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined);
  return new Promise<ExecProcess>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`exec failed: ${err.message}`, { cause: err })));
    child.once('spawn', () =>
      resolve({
        pid: child.pid!,
        stdin: child.stdin,
        stdout: child.stdout,
        stderr: child.stderr,
        exit: new Promise((done) => child.once('exit', (code, signal) => done({ exitCode: code ?? 128 + 9, oomKilled: false, ...(signal ? { signal } : {}) }))),
      }),
    );
  });
};

function open(execId: number, command: string[], stdin = false): ExecOpen__Output {
  return { execId, taskName: 't.1.x', command, env: [], tty: false, stdin, rows: 0, cols: 0 };
}

function session() {
  const sent: AgentMessage[] = [];
  let onSend = () => undefined as void;
  return {
    sent,
    send: (m: AgentMessage) => {
      sent.push(m);
      onSend();
    },
    until: (check: () => boolean) =>
      new Promise<void>((resolve) => {
        if (check()) return resolve();
        onSend = () => {
          if (check()) resolve();
        };
      }),
  };
}

const output = (sent: AgentMessage[], stream: string) =>
  Buffer.concat(sent.filter((m) => m.execOutput?.stream === stream).map((m) => Buffer.from(m.execOutput!.data!)));

test('output on stdout and stderr apart, then the exit code', async (t) => {
  const server = new ExecRequestServer(hostExec, () => undefined);
  const s = session();
  server.open(open(1, ['sh', '-c', 'echo out; echo err >&2; exit 4']), s.send);
  await s.until(() => s.sent.some((m) => m.execExited));
  t.deepEqual(s.sent[0], { execStarted: { execId: 1 } });
  t.is(output(s.sent, 'stdout').toString(), 'out\n');
  t.is(output(s.sent, 'stderr').toString(), 'err\n');
  t.deepEqual(s.sent.at(-1), { execExited: { execId: 1, code: 4, signal: '', error: '' } });
  t.is(server.count, 0);
});

test('a fast writer is held to the window until credit comes, then all of it arrives', async (t) => {
  const server = new ExecRequestServer(hostExec, () => undefined);
  const s = session();
  const total = 4 * EXEC_WINDOW_BYTES;
  server.open(open(2, ['head', '-c', String(total), '/dev/zero']), s.send);
  const inFlight = () => output(s.sent, 'stdout').length;
  await s.until(() => inFlight() >= EXEC_WINDOW_BYTES);
  // Time for a sender that ignored the window to overrun it (it would, at pipe speed).
  await sleep(300);
  t.true(inFlight() < EXEC_WINDOW_BYTES + MAX_EXEC_CHUNK_BYTES, `${inFlight()} bytes sent without credit`);
  t.false(s.sent.some((m) => m.execExited));
  let credited = 0;
  const creditAll = () => {
    const got = inFlight();
    if (got > credited) server.credit({ execId: 2, bytes: got - credited });
    credited = got;
  };
  creditAll();
  const timer = setInterval(creditAll, 5);
  await s.until(() => s.sent.some((m) => m.execExited));
  clearInterval(timer);
  t.is(inFlight(), total);
  t.like(s.sent.at(-1), { execExited: { execId: 2, code: 0 } });
});

test('stdin is written and credited back; its close is end of file', async (t) => {
  const server = new ExecRequestServer(hostExec, () => undefined);
  const s = session();
  server.open(open(3, ['cat'], true), s.send);
  server.stdin({ execId: 3, data: Buffer.from('hello '), close: false });
  server.stdin({ execId: 3, data: Buffer.from('world'), close: true });
  await s.until(() => s.sent.some((m) => m.execExited));
  t.is(output(s.sent, 'stdout').toString(), 'hello world');
  const credit = s.sent.filter((m) => m.execStdinCredit).reduce((sum, m) => sum + (m.execStdinCredit!.bytes ?? 0), 0);
  t.is(credit, 11);
  t.like(s.sent.at(-1), { execExited: { execId: 3, code: 0 } });
});

test('a manager that sends stdin past the window ends the exec', async (t) => {
  const server = new ExecRequestServer(hostExec, () => undefined);
  const s = session();
  // sleep reads nothing: the pipe fills, and no credit comes back for what waits behind it.
  server.open(open(4, ['sleep', '100'], true), s.send);
  for (let i = 0; i <= EXEC_WINDOW_BYTES / MAX_EXEC_CHUNK_BYTES + 8; i++) server.stdin({ execId: 4, data: Buffer.alloc(MAX_EXEC_CHUNK_BYTES), close: false });
  await s.until(() => s.sent.some((m) => m.execExited));
  t.like(s.sent.at(-1), { execExited: { execId: 4, code: 125 } });
  t.regex(s.sent.at(-1)?.execExited?.error ?? '', /stdin beyond the flow-control window/);
});

test('a cancel kills the process group and sends nothing more', async (t) => {
  const logs: string[] = [];
  let proc: ExecProcess | undefined;
  const server = new ExecRequestServer(
    async (task, options) => {
      proc = await hostExec(task, options);
      return proc;
    },
    (m) => logs.push(m),
  );
  const s = session();
  server.open(open(5, ['sh', '-c', 'sleep 100 & echo started; wait']), s.send);
  await s.until(() => output(s.sent, 'stdout').toString().includes('started'));
  const before = s.sent.length;
  server.cancel(5);
  const status = await proc!.exit;
  t.is(status.signal, 'SIGKILL');
  await sleep(100);
  t.is(s.sent.length, before);
  t.regex(logs.join('\n'), /exec 5: cancelled \(the client went\); killing process group/);
});

test('a program that cannot be found exits 127 with the reason; a bad request is refused without running anything', async (t) => {
  const server = new ExecRequestServer(hostExec, () => undefined);
  const s = session();
  server.open(open(6, ['/no/such/program']), s.send);
  await s.until(() => s.sent.some((m) => m.execExited));
  t.like(s.sent.at(-1), { execExited: { execId: 6, code: 127 } });
  t.regex(s.sent.at(-1)?.execExited?.error ?? '', /ENOENT/);
  server.open(open(7, []), s.send);
  t.deepEqual(s.sent.at(-1), { execExited: { execId: 7, code: 125, error: 'exec: no command given (the first argument names the program)' } });
});
