// tsctl exec routed to the node that holds the task, over its dispatcher session (issue 16). The
// dispatcher attaches each registered session here and detaches it when it ends; an exec whose
// node's session ends gets an exit with the reason (never a hang). Answers are taken only from
// the node the exec was opened on. Flow control: output from the node is held to a window the
// manager credits back only once the output has been passed on to the client (the caller says
// when); stdin to the node is sent only within the credit the node gave back.
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import type { AgentMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import { EXEC_EXIT_FAILED, EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES, MAX_EXECS_PER_MANAGER } from '../../common/exec/exec-limits.js';
import { CreditWindow, ReceiveWindow } from '../../common/exec/credit-window.js';

/** The text of an exit error a node may send; longer is cut. */
const MAX_ERROR_CHARS = 4096;

export class NodeExecUnavailable extends Error {
  constructor(
    readonly node: string,
    why: string,
  ) {
    super(`node ${node}: ${why}`);
    this.name = 'NodeExecUnavailable';
  }
}

export interface ExecExitInfo {
  code: number;
  signal: string;
  error: string;
}

export interface NodeExecRequest {
  taskName: string;
  command: string[];
  env: string[];
  tty: boolean;
  stdin: boolean;
  rows: number;
  cols: number;
}

export interface NodeExecHandlers {
  onStarted(): void;
  /** Output to pass on; call `passed` once it has been (that returns the bytes' credit to the node). */
  onOutput(stream: 'stdout' | 'stderr' | 'tty', data: Buffer, passed: () => void): void;
  /** The last call: the process's exit, or why the exec ended without it. */
  onExit(exit: ExecExitInfo): void;
}

/** One exec in flight, as the API side drives it. */
export interface NodeExecChannel {
  /** Sends stdin; false when the node's window is now full: wait for whenStdinOpen() before sending more. */
  stdin(data: Buffer): boolean;
  whenStdinOpen(): Promise<void>;
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  /** The client went: the node kills the process. No exit follows. */
  cancel(): void;
}

interface Pending {
  node: string;
  send: (message: ManagerMessage) => void;
  handlers: NodeExecHandlers;
  output: ReceiveWindow;
  input: CreditWindow;
  stdinWaiters: Array<() => void>;
}

export class NodeExec {
  private readonly sessions = new Map<string, (message: ManagerMessage) => void>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  attach(node: string, send: (message: ManagerMessage) => void): void {
    this.detach(node, 'its session was replaced');
    this.sessions.set(node, send);
  }

  /** A node's session ended (or was replaced): its execs end with `why`. */
  detach(node: string, why: string, send?: (message: ManagerMessage) => void): void {
    if (send !== undefined && this.sessions.get(node) !== send) return;
    this.sessions.delete(node);
    for (const [id, exec] of this.pending) if (exec.node === node) this.end(id, exec, { code: EXEC_EXIT_FAILED, signal: '', error: `node ${node}: ${why}` });
  }

  /**
   * The node was marked down (no heartbeat within the timeout) while its session may still look
   * open (a partition: no connection reset reaches this manager): its execs end now rather than
   * when TCP gives up.
   */
  nodeDown(node: string, why: string): void {
    for (const [id, exec] of this.pending) {
      if (exec.node !== node) continue;
      exec.send({ execCancel: { execId: id } });
      this.end(id, exec, { code: EXEC_EXIT_FAILED, signal: '', error: `node ${node}: ${why}` });
    }
  }

  /** Execs in flight (for tests and limits). */
  get count(): number {
    return this.pending.size;
  }

  open(node: string, request: NodeExecRequest, handlers: NodeExecHandlers): NodeExecChannel {
    const send = this.sessions.get(node);
    if (send === undefined) throw new NodeExecUnavailable(node, 'no session with this manager (the node is down, or connected to another manager)');
    if (this.pending.size >= MAX_EXECS_PER_MANAGER)
      throw new NodeExecUnavailable(node, `this manager already routes ${MAX_EXECS_PER_MANAGER} execs; try again later`);
    const execId = this.nextId++;
    const exec: Pending = {
      node,
      send,
      handlers,
      output: new ReceiveWindow(EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES),
      input: new CreditWindow(EXEC_WINDOW_BYTES),
      stdinWaiters: [],
    };
    this.pending.set(execId, exec);
    send({ execOpen: { execId, ...request } });
    const live = () => this.pending.get(execId) === exec;
    return {
      stdin: (data) => {
        if (!live()) return true;
        exec.input.sent(data.length);
        send({ execStdin: { execId, data } });
        return exec.input.open;
      },
      whenStdinOpen: () => (exec.input.open || !live() ? Promise.resolve() : new Promise((resolve) => exec.stdinWaiters.push(resolve))),
      closeStdin: () => {
        if (live()) send({ execStdin: { execId, close: true } });
      },
      resize: (rows, cols) => {
        if (live()) send({ execResize: { execId, rows, cols } });
      },
      cancel: () => {
        if (!live()) return;
        this.pending.delete(execId);
        this.wake(exec);
        send({ execCancel: { execId } });
      },
    };
  }

  /** An exec answer a node sent; an answer for an exec of another node, or one already over, is dropped. */
  onMessage(node: string, message: AgentMessage__Output): void {
    const answer = message.execStarted ?? message.execOutput ?? message.execExited ?? message.execStdinCredit;
    if (answer == null) return;
    const execId = Number(answer.execId);
    const exec = this.pending.get(execId);
    if (exec === undefined || exec.node !== node) return;
    if (message.execStarted) exec.handlers.onStarted();
    if (message.execOutput) {
      const { stream, data } = message.execOutput;
      if (stream !== 'stdout' && stream !== 'stderr' && stream !== 'tty')
        return this.protocolError(execId, exec, `output on an unknown stream "${stream.slice(0, 20)}"`);
      const overflow = exec.output.take(data.length);
      if (overflow !== undefined) return this.protocolError(execId, exec, `output beyond the flow-control window: ${overflow}`);
      let credited = false;
      exec.handlers.onOutput(stream, Buffer.from(data), () => {
        if (credited) return;
        credited = true;
        const bytes = exec.output.release(data.length);
        if (bytes > 0 && this.pending.get(execId) === exec) exec.send({ execOutputCredit: { execId, bytes } });
      });
    }
    if (message.execStdinCredit) {
      try {
        exec.input.credit(message.execStdinCredit.bytes);
      } catch (err) {
        return this.protocolError(execId, exec, `stdin credit: ${(err as Error).message}`);
      }
      if (exec.input.open) this.wake(exec);
    }
    if (message.execExited) {
      const { code, signal, error } = message.execExited;
      this.end(execId, exec, { code, signal: signal.slice(0, 32), error: error.slice(0, MAX_ERROR_CHARS) });
    }
  }

  private protocolError(execId: number, exec: Pending, why: string): void {
    exec.send({ execCancel: { execId } });
    this.end(execId, exec, { code: EXEC_EXIT_FAILED, signal: '', error: `node ${exec.node} broke the exec protocol: ${why}` });
  }

  private end(execId: number, exec: Pending, exit: ExecExitInfo): void {
    this.pending.delete(execId);
    this.wake(exec);
    exec.handlers.onExit(exit);
  }

  private wake(exec: Pending): void {
    for (const resolve of exec.stdinWaiters.splice(0)) resolve();
  }
}
