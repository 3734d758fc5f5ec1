// The agent's side of tsctl exec (issue 16): a manager's ExecOpen starts a process in one of this
// node's task containers; stdin, resizes and the close of stdin follow on the session, output
// goes back in chunks, and ExecExited ends it. Flow control both ways is a window of bytes
// (common/exec/credit-window.ts): output beyond the window not yet credited by the manager pauses
// the reading of the process's pipes (the process then blocks on write), and stdin beyond the
// window the agent has not yet written is a protocol error that ends the exec. A cancel, or the
// session going, kills the process and its process group.
import type { AgentMessage } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ExecOpen__Output } from '../../proto/gen/tessera/dispatcher/v1/ExecOpen.js';
import type { ExecStdin__Output } from '../../proto/gen/tessera/dispatcher/v1/ExecStdin.js';
import type { ExecWindow__Output } from '../../proto/gen/tessera/dispatcher/v1/ExecWindow.js';
import type { ExecCredit__Output } from '../../proto/gen/tessera/dispatcher/v1/ExecCredit.js';
import {
  cannotRunCode,
  EXEC_EXIT_FAILED,
  EXEC_WINDOW_BYTES,
  execRequestProblem,
  MAX_EXEC_CHUNK_BYTES,
  MAX_EXECS_PER_NODE,
  terminalSizeProblem,
} from '../../common/exec/exec-limits.js';
import { CreditWindow, ReceiveWindow } from '../../common/exec/credit-window.js';
import type { ExecOptions, ExecProcess } from '../runtime/types.js';

export type ExecTask = (taskName: string, options: ExecOptions) => Promise<ExecProcess>;
type Send = (message: AgentMessage) => void;

/** After the process exited, output that stays open this long without data (a background child holding the pipe) is closed. */
const OUTPUT_AFTER_EXIT_IDLE_MS = 2000;
/** With a TTY, the end of stdin is the terminal's end-of-file character (VEOF, ^D), as a user would type it. */
const TERMINAL_EOF = Buffer.from([4]);

/** `data` in pieces of at most `max` bytes. Pure. */
export function splitChunk(data: Buffer, max: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += max) pieces.push(data.subarray(at, at + max));
  return pieces;
}

/** The code an exec that failed to start ends with, from the error the runtime gave. */
function startFailureCode(err: unknown): number {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  return code === undefined ? EXEC_EXIT_FAILED : cannotRunCode(code);
}

function killGroup(pid: number): void {
  // setsid() made the process its group's leader: its children go with it.
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
      return;
    } catch {
      // ESRCH: the group (or process) is already gone; try the process itself, then give up.
    }
  }
}

class RunningExec {
  private proc: ExecProcess | undefined;
  /** What the manager sent before the process was there, applied once it is. */
  private readonly early: Array<(proc: ExecProcess) => void> = [];
  private readonly output = new CreditWindow(EXEC_WINDOW_BYTES);
  private readonly input = new ReceiveWindow(EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES);
  private paused = false;
  /** Output read but not yet sent: the window closed in the middle of a read. */
  private readonly held: Array<{ stream: string; data: Buffer }> = [];
  private readonly heldSent: Array<() => void> = [];
  private finished = false;

  constructor(
    readonly id: number,
    private readonly send: Send,
    private readonly onDone: () => void,
    private readonly log: (message: string) => void,
  ) {}

  start(request: ExecOpen__Output, execTask: ExecTask): void {
    const options: ExecOptions = { args: request.command, extraEnv: request.env, tty: request.tty };
    if (request.tty) options.size = { rows: request.rows, cols: request.cols };
    execTask(request.taskName, options).then(
      (proc) => this.started(proc, request),
      (err: unknown) => this.finish({ code: startFailureCode(err), signal: '', error: (err as Error).message }),
    );
  }

  private started(proc: ExecProcess, request: ExecOpen__Output): void {
    if (this.finished) {
      // Cancelled while it started.
      killGroup(proc.pid);
      return;
    }
    this.proc = proc;
    this.send({ execStarted: { execId: this.id } });
    const streams =
      proc.stderr === undefined
        ? [{ stream: proc.stdout, name: request.tty ? 'tty' : 'stdout' }]
        : [
            { stream: proc.stdout, name: 'stdout' },
            { stream: proc.stderr, name: 'stderr' },
          ];
    let lastOutput = Date.now();
    const ended = streams.map(
      ({ stream, name }) =>
        new Promise<void>((resolve) => {
          stream.on('data', (chunk: Buffer) => {
            lastOutput = Date.now();
            for (const piece of splitChunk(chunk, MAX_EXEC_CHUNK_BYTES)) this.held.push({ stream: name, data: piece });
            this.sendHeld();
          });
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', (err: Error) => {
            this.log(`exec ${this.id}: reading its ${name}: ${err.message}`);
            resolve();
          });
        }),
    );
    if (!request.stdin && proc.stderr !== undefined) proc.stdin.end();
    for (const apply of this.early.splice(0)) apply(proc);
    void proc.exit.then(async (status) => {
      // Whatever the process wrote before it ended is sent before its exit; a pipe a background
      // child still holds is closed once it has been idle for a while (and is not held by flow control).
      const allEnded = Promise.all(ended);
      while (!this.finished) {
        const idle = new Promise<'idle'>((resolve) => setTimeout(() => resolve('idle'), OUTPUT_AFTER_EXIT_IDLE_MS).unref());
        if ((await Promise.race([allEnded.then(() => 'ended' as const), idle])) === 'ended') break;
        if (!this.paused && Date.now() - lastOutput >= OUTPUT_AFTER_EXIT_IDLE_MS) {
          for (const { stream } of streams) (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
          break;
        }
      }
      // What was read but held by the window goes out before the exit does.
      await this.whenHeldSent();
      this.finish({ code: status.exitCode, signal: status.signal ?? '', error: '' });
    });
  }

  /**
   * Sends what was read while the window is open. One read may be larger than what the window has
   * left: the rest waits here with the pipes paused (a read from each pipe at most, 64 KiB each:
   * a paused stream emits no more data and stops reading once its own buffer is full).
   */
  private sendHeld(): void {
    while (this.output.open && !this.finished) {
      const next = this.held.shift();
      if (next === undefined) break;
      this.output.sent(next.data.length);
      this.send({ execOutput: { execId: this.id, stream: next.stream, data: next.data } });
    }
    if (this.held.length > 0) this.pause();
    else for (const resolve of this.heldSent.splice(0)) resolve();
  }

  private whenHeldSent(): Promise<void> {
    if (this.held.length === 0 || this.finished) return Promise.resolve();
    return new Promise((resolve) => this.heldSent.push(resolve));
  }

  private pause(): void {
    if (this.paused || this.proc === undefined) return;
    this.paused = true;
    this.proc.stdout.pause();
    this.proc.stderr?.pause();
  }

  private resume(): void {
    if (!this.paused || this.proc === undefined) return;
    this.paused = false;
    this.proc.stdout.resume();
    this.proc.stderr?.resume();
  }

  /** Runs `action` on the process now, or once it has started. */
  private withProcess(action: (proc: ExecProcess) => void): void {
    if (this.finished) return;
    if (this.proc !== undefined) action(this.proc);
    else this.early.push(action);
  }

  stdin(message: ExecStdin__Output): void {
    const data = Buffer.from(message.data);
    if (data.length > 0) {
      const overflow = this.input.take(data.length);
      if (overflow !== undefined) return this.fail(`the manager sent stdin beyond the flow-control window: ${overflow}`);
      this.withProcess((proc) =>
        proc.stdin.write(data, () => {
          const bytes = this.input.release(data.length);
          if (!this.finished && bytes > 0) this.send({ execStdinCredit: { execId: this.id, bytes } });
        }),
      );
    }
    if (message.close) this.withProcess((proc) => (proc.stderr === undefined ? proc.stdin.write(TERMINAL_EOF) : proc.stdin.end()));
  }

  resize(message: ExecWindow__Output): void {
    if (terminalSizeProblem(message.rows, message.cols) !== undefined) return this.fail(terminalSizeProblem(message.rows, message.cols)!);
    this.withProcess((proc) => {
      try {
        proc.resize?.(message.rows, message.cols);
      } catch (err) {
        // The terminal may be gone with the process: the exit is on its way.
        this.log(`exec ${this.id}: resize: ${(err as Error).message}`);
      }
    });
  }

  credit(message: ExecCredit__Output): void {
    try {
      this.output.credit(message.bytes);
    } catch (err) {
      return this.fail(`the manager's output credit does not add up: ${(err as Error).message}`);
    }
    this.sendHeld();
    if (this.output.open) this.resume();
  }

  /** Kills the process; nothing more is sent (the manager stopped waiting, or the session went). */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    for (const resolve of this.heldSent.splice(0)) resolve();
    this.log(`exec ${this.id}: cancelled (the client went); killing ${this.proc === undefined ? 'it as it starts' : `process group ${this.proc.pid}`}`);
    if (this.proc !== undefined) killGroup(this.proc.pid);
    this.onDone();
  }

  private fail(why: string): void {
    if (this.proc !== undefined) killGroup(this.proc.pid);
    this.finish({ code: EXEC_EXIT_FAILED, signal: '', error: why });
  }

  private finish(exit: { code: number; signal: string; error: string }): void {
    if (this.finished) return;
    this.finished = true;
    for (const resolve of this.heldSent.splice(0)) resolve();
    this.send({ execExited: { execId: this.id, ...exit } });
    this.onDone();
  }
}

export class ExecRequestServer {
  private readonly running = new Map<number, RunningExec>();

  constructor(
    private readonly execTask: ExecTask,
    private readonly log: (message: string) => void,
  ) {}

  open(request: ExecOpen__Output, send: Send): void {
    const id = Number(request.execId);
    const refuse = (error: string) => send({ execExited: { execId: id, code: EXEC_EXIT_FAILED, error } });
    const problem = execRequestProblem({ task: request.taskName, command: request.command, env: request.env, rows: request.rows, cols: request.cols });
    if (problem !== undefined) return refuse(problem);
    if (this.running.has(id)) return refuse(`exec ${id} is already running on this node`);
    if (this.running.size >= MAX_EXECS_PER_NODE) return refuse(`this node already runs ${MAX_EXECS_PER_NODE} execs; try again when one has ended`);
    const exec = new RunningExec(id, send, () => this.running.delete(id), this.log);
    this.running.set(id, exec);
    exec.start(request, this.execTask);
  }

  stdin(message: ExecStdin__Output): void {
    this.running.get(Number(message.execId))?.stdin(message);
  }

  resize(message: ExecWindow__Output): void {
    this.running.get(Number(message.execId))?.resize(message);
  }

  credit(message: ExecCredit__Output): void {
    this.running.get(Number(message.execId))?.credit(message);
  }

  cancel(execId: number): void {
    this.running.get(execId)?.cancel();
  }

  /** The session went: nobody reads the output any more, so every process is killed. */
  cancelAll(): void {
    // A cancel deletes its own entry; a Map visits no entry deleted during the loop.
    for (const exec of this.running.values()) exec.cancel();
  }

  get count(): number {
    return this.running.size;
  }
}
