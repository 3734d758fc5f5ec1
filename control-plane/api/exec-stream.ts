// The Exec call (tsctl exec, issue 16): the client's first message names the task and the command;
// the manager finds the task, checks the caller may exec into it, and routes the exec over the
// node's dispatcher session (NodeExec). A follower forwards the whole call to the leader, which
// holds the sessions (forward-exec.ts). Backpressure: client stdin the node has no credit for
// pauses the client's stream (gRPC's flow control then holds the client); output is credited back
// to the node only when gRPC has taken it for the client, so a slow client stops the process's
// output at its pipe, and neither manager nor agent buffers more than a window per exec.
import * as grpc from '@grpc/grpc-js';

import type { ExecInput__Output } from '../../proto/gen/tessera/api/v1/ExecInput.js';
import type { ExecOutput } from '../../proto/gen/tessera/api/v1/ExecOutput.js';
import type { ExecStart__Output } from '../../proto/gen/tessera/api/v1/ExecStart.js';
import type { Task } from '../../common/resources/types.js';
import { execRequestProblem, MAX_EXEC_CHUNK_BYTES, terminalSizeProblem } from '../../common/exec/exec-limits.js';
import type { NodeExec, NodeExecChannel, NodeExecRequest } from '../dispatcher/node-exec.js';
import { NodeUnavailableError } from '../dispatcher/node-requests.js';
import { authorizeExec } from '../auth/exec-authorization.js';
import type { Caller } from '../auth/caller.js';
import { ApiError, invalidArgument } from './errors.js';

export type ExecCall = grpc.ServerDuplexStream<ExecInput__Output, ExecOutput>;

/** The client has this long to send its start message. */
export const EXEC_START_TIMEOUT_MS = 10_000;

export interface ExecDeps {
  nodeExec?: NodeExec;
  /** The task the start message names (NOT_FOUND, or INVALID_ARGUMENT when the name is ambiguous). */
  findTask(stack: string, name: string): Promise<Task>;
  /** On a follower: relays the call to the leader from the start message on; undefined on the leader. */
  forward?: (call: ExecCall, start: ExecStart__Output) => Promise<void> | undefined;
  /** Called once when the exec started or could not be (without a start when none came): the audit log's entry. */
  recordStart(start: ExecStart__Output | undefined, error?: unknown): void;
}

/** The node request a start message asks for, or an INVALID_ARGUMENT naming what is wrong. Pure. */
export function parseExecStart(start: ExecStart__Output): NodeExecRequest {
  const problem = execRequestProblem({ task: start.task, command: start.command, env: start.env, rows: start.rows, cols: start.cols });
  if (problem !== undefined) throw invalidArgument(problem);
  return { taskName: start.task, command: start.command, env: start.env, tty: start.tty, stdin: start.stdin, rows: start.rows, cols: start.cols };
}

/** The first message, which must be a start. */
function firstMessage(call: ExecCall): Promise<ExecStart__Output> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(invalidArgument(`exec: no start message within ${EXEC_START_TIMEOUT_MS / 1000} s`)), EXEC_START_TIMEOUT_MS);
    const cleanup = () => {
      clearTimeout(timer);
      call.off('data', onData);
      call.off('end', onEnd);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onData = (message: ExecInput__Output) => {
      cleanup();
      // Nothing more is read until the exec is routed: its stdin waits in gRPC's flow control.
      call.pause();
      if (message.start) resolve(message.start);
      else reject(invalidArgument('exec: the first message must be the start'));
    };
    const onEnd = () => fail(invalidArgument('exec: the stream ended before a start message'));
    call.on('data', onData);
    call.on('end', onEnd);
  });
}

export async function serveExec(deps: ExecDeps, call: ExecCall, caller: Caller): Promise<void> {
  let start: ExecStart__Output;
  try {
    start = await firstMessage(call);
  } catch (err) {
    deps.recordStart(undefined, err);
    throw err;
  }
  let recorded = false;
  const record = (error?: unknown) => {
    if (recorded) return;
    recorded = true;
    deps.recordStart(start, error);
  };
  try {
    const request = parseExecStart(start);
    const task = await deps.findTask(start.stack, start.task);
    const decision = authorizeExec(caller, task);
    if (!decision.allowed) throw new ApiError(grpc.status.PERMISSION_DENIED, decision.reason);
    if (task.status.state !== 'running' || task.nodeName === undefined)
      throw new ApiError(grpc.status.FAILED_PRECONDITION, `exec: task ${task.metadata.name} is ${task.status.state}, not running`);
    const forwarded = deps.forward?.(call, start);
    if (forwarded !== undefined) {
      record();
      return await forwarded;
    }
    if (deps.nodeExec === undefined) throw new ApiError(grpc.status.UNIMPLEMENTED, 'exec: this manager routes no execs');
    await relay(deps.nodeExec, task.nodeName, request, call, record);
  } catch (err) {
    record(err);
    throw err instanceof NodeUnavailableError ? new ApiError(grpc.status.UNAVAILABLE, `exec: ${err.message}`) : err;
  }
}

/** Routes the call to the node; resolves when the exit has been written to the client, or the client went. */
function relay(nodeExec: NodeExec, node: string, request: NodeExecRequest, call: ExecCall, record: (error?: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let over = false;
    let stdinClosed = !request.stdin;
    const write = (message: ExecOutput, passed?: () => void) => {
      if (over) return;
      call.write(message, passed === undefined ? undefined : () => passed());
    };
    const channel: NodeExecChannel = nodeExec.open(node, request, {
      onStarted: () => {
        record();
        write({ startedOn: node });
      },
      onOutput: (stream, data, passed) => write(stream === 'stderr' ? { stderr: data } : { stdout: data }, passed),
      onExit: (exit) => {
        record(exit.error === '' ? undefined : new Error(exit.error));
        write({ exit });
        over = true;
        call.end();
        resolve();
      },
    });
    const clientGone = () => {
      if (over) return;
      over = true;
      channel.cancel();
      resolve();
    };
    const refuse = (err: Error) => {
      if (over) return;
      over = true;
      channel.cancel();
      reject(err);
    };
    const closeStdin = () => {
      if (stdinClosed) return;
      stdinClosed = true;
      channel.closeStdin();
    };
    call.on('data', (message: ExecInput__Output) => {
      if (message.start) return refuse(invalidArgument('exec: a second start message'));
      if (message.resize) {
        const problem = terminalSizeProblem(message.resize.rows, message.resize.cols);
        if (problem !== undefined) return refuse(invalidArgument(problem));
        if (request.tty) channel.resize(message.resize.rows, message.resize.cols);
        return;
      }
      if (message.stdinClose) return closeStdin();
      if (message.stdin) {
        if (message.stdin.length > MAX_EXEC_CHUNK_BYTES)
          return refuse(invalidArgument(`exec: a stdin message of ${message.stdin.length} bytes; at most ${MAX_EXEC_CHUNK_BYTES}`));
        if (stdinClosed) return refuse(invalidArgument('exec: stdin after it was closed (or without stdin asked for)'));
        if (message.stdin.length > 0 && !channel.stdin(Buffer.from(message.stdin))) {
          call.pause();
          void channel.whenStdinOpen().then(() => call.resume());
        }
      }
    });
    // The client half-closed its side: no more stdin.
    call.on('end', closeStdin);
    call.on('cancelled', clientGone);
    call.on('error', clientGone);
    call.resume();
  });
}
