// tsctl exec routed to the node that holds the task, over its dispatcher session (issue 16).
// Sessions and execs in flight are kept as for every request to a node (node-requests.ts): an
// exec whose node's session ends gets an exit with the reason (never a hang), and answers are
// taken only from the node the exec was opened on. Flow control: output from the node is held to
// a window the manager credits back only once the output has been passed on to the client (the
// caller says when); stdin to the node is sent only within the credit the node gave back.
import type { AgentMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import { EXEC_EXIT_FAILED, EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES, MAX_EXECS_PER_MANAGER } from '../../common/exec/exec-limits.js';
import { CreditWindow, ReceiveWindow } from '../../common/exec/credit-window.js';
import { NodeRequests, NodeUnavailableError, type SendToNode } from './node-requests.js';

/** The text of an exit error a node may send; longer is cut. */
const MAX_ERROR_CHARS = 4096;

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
  send: SendToNode;
  handlers: NodeExecHandlers;
  output: ReceiveWindow;
  input: CreditWindow;
  stdinWaiters: Array<() => void>;
}

export class NodeExec extends NodeRequests<Pending> {
  /**
   * The node was marked down (no heartbeat within the timeout) while its session may still look
   * open (a partition: no connection reset reaches this manager): its execs end now rather than
   * when TCP gives up.
   */
  nodeDown(node: string, why: string): void {
    for (const [id, exec] of this.requestsTo(node)) {
      exec.send({ execCancel: { execId: id } });
      this.fail(id, why);
    }
  }

  /** Execs in flight (for tests and limits). */
  get count(): number {
    return this.inFlightCount;
  }

  open(node: string, request: NodeExecRequest, handlers: NodeExecHandlers): NodeExecChannel {
    const send = this.sessionOf(node);
    if (this.inFlightCount >= MAX_EXECS_PER_MANAGER)
      throw new NodeUnavailableError(node, `this manager already routes ${MAX_EXECS_PER_MANAGER} execs; try again later`);
    const exec: Pending = {
      node,
      send,
      handlers,
      output: new ReceiveWindow(EXEC_WINDOW_BYTES, MAX_EXEC_CHUNK_BYTES),
      input: new CreditWindow(EXEC_WINDOW_BYTES),
      stdinWaiters: [],
    };
    const execId = this.track(exec);
    send({ execOpen: { execId, ...request } });
    const live = () => this.isInFlight(execId);
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
        if (this.settle(execId) === undefined) return;
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
    const exec = this.answerable(execId, node);
    if (exec === undefined) return;
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
        if (bytes > 0 && this.isInFlight(execId)) exec.send({ execOutputCredit: { execId, bytes } });
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

  protected failed(exec: Pending, error: NodeUnavailableError, execId: number): void {
    this.end(execId, exec, { code: EXEC_EXIT_FAILED, signal: '', error: error.message });
  }

  private end(execId: number, exec: Pending, exit: ExecExitInfo): void {
    this.settle(execId);
    this.wake(exec);
    exec.handlers.onExit(exit);
  }

  private wake(exec: Pending): void {
    for (const resolve of exec.stdinWaiters.splice(0)) resolve();
  }
}
