// `tsctl exec [-i] [-t] TASK -- CMD [ARGS...]`: a command in a task's container, on whichever node
// runs it. -i sends this terminal's stdin (its end reaches the process as end of file), -t gives
// the process a pseudo-terminal (this terminal in raw mode meanwhile, restored on every way out;
// its size follows SIGWINCH). tsctl exits with the command's exit code; 126/127 when the command
// could not be run, 125 when Tessera could not run or finish the exec (a refusal, a node down),
// 130 when interrupted. Without -t, Ctrl-C ends the call and the manager kills the process.
import type { Command } from 'commander';
import type * as grpc from '@grpc/grpc-js';

import type { ApiClient } from '../client.js';
import type { WithClient } from '../with-client.js';
import type { ExecInput } from '../../proto/gen/tessera/api/v1/ExecInput.js';
import type { ExecOutput__Output } from '../../proto/gen/tessera/api/v1/ExecOutput.js';
import { EXEC_EXIT_FAILED, execRequestProblem, MAX_EXEC_CHUNK_BYTES } from '../../common/exec/exec-limits.js';

interface ExecOptions {
  interactive?: boolean;
  tty?: boolean;
  stack?: string;
  env: string[];
}

type ExecStream = grpc.ClientDuplexStream<ExecInput, ExecOutput__Output>;

/** The exit code after an interrupt (128 + SIGINT), as shells report it. */
const EXIT_INTERRUPTED = 130;

export interface ExecOutcome {
  code: number;
  /** Said on stderr before exiting. */
  message?: string;
}

/** What an exit message means for tsctl: the command's code, and its error when it could not run. Pure. */
export function outcomeOfExit(exit: { code: number; signal: string; error: string }): ExecOutcome {
  // A process's code is 0..255; anything else from a server is not one, and 0 with an error is no success.
  const code = Number.isInteger(exit.code) && exit.code >= 0 && exit.code <= 255 ? exit.code : EXEC_EXIT_FAILED;
  if (exit.error !== '') return { code: code === 0 ? EXEC_EXIT_FAILED : code, message: exit.error };
  return { code };
}

/** Refuses what cannot work before anything is sent: -t without a terminal (as docker says it), a bad command. Pure. */
export function execUsageProblem(options: { tty: boolean; stdinIsTTY: boolean; task: string; command: string[]; env: string[] }): string | undefined {
  if (options.tty && !options.stdinIsTTY) return 'the input device is not a TTY';
  return execRequestProblem({ task: options.task, command: options.command, env: options.env, rows: 0, cols: 0 });
}

function terminalSize(): { rows: number; cols: number } {
  const out = process.stdout;
  return out.isTTY ? { rows: out.rows, cols: out.columns } : { rows: 0, cols: 0 };
}

/** Runs the exec; resolves with how tsctl ends. Every listener and the terminal's mode are undone before it resolves. */
function runExec(client: ApiClient, task: string, command: string[], options: ExecOptions): Promise<ExecOutcome> {
  const tty = options.tty === true;
  const interactive = options.interactive === true;
  const stream: ExecStream = client.exec();
  const undo: Array<() => void> = [];
  return new Promise<ExecOutcome>((resolve) => {
    let settled = false;
    const settle = (outcome: ExecOutcome) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const size = tty ? terminalSize() : { rows: 0, cols: 0 };
    stream.write({ start: { stack: options.stack ?? '', task, command, tty, stdin: interactive, env: options.env, ...size } });

    // Output, paused while this terminal or pipe does not take it (the manager then stops crediting the node).
    // One drain listener per waiting output; the stream goes on when neither waits.
    const waitingOutputs = new Set<NodeJS.WriteStream>();
    const pauseUntilDrained = (out: NodeJS.WriteStream, data: Buffer) => {
      if (out.write(data) || waitingOutputs.has(out)) return;
      waitingOutputs.add(out);
      stream.pause();
      out.once('drain', () => {
        waitingOutputs.delete(out);
        if (waitingOutputs.size === 0) stream.resume();
      });
    };
    let started = false;
    stream.on('data', (message: ExecOutput__Output) => {
      if (message.startedOn !== undefined && message.startedOn !== '' && !started) {
        started = true;
        onStarted();
      }
      if (message.stdout) pauseUntilDrained(process.stdout, message.stdout);
      if (message.stderr) pauseUntilDrained(process.stderr, message.stderr);
      if (message.exit) settle(outcomeOfExit(message.exit));
    });
    stream.on('end', () => settle({ code: EXEC_EXIT_FAILED, message: "the exec ended without the command's exit status" }));
    stream.on('error', (err: grpc.ServiceError) => settle({ code: EXEC_EXIT_FAILED, message: err.details || err.message }));

    // Ctrl-C without a terminal of its own (with -t it is a byte for the remote terminal): the call
    // is cancelled, and the manager kills the process.
    const onInterrupt = () => {
      stream.cancel();
      settle({ code: EXIT_INTERRUPTED, message: 'interrupted; the process was killed' });
    };
    process.on('SIGINT', onInterrupt);
    undo.push(() => process.off('SIGINT', onInterrupt));
    // Ended from outside (a closed terminal, kill): the process goes too, and the terminal is
    // restored on the way out, which the default action of these signals would skip.
    for (const [signal, code] of [
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const) {
      const onSignal = () => {
        stream.cancel();
        settle({ code, message: `${signal}; the process was killed` });
      };
      process.on(signal, onSignal);
      undo.push(() => process.off(signal, onSignal));
    }

    const onStarted = () => {
      if (tty && interactive && process.stdin.isTTY) {
        process.stdin.setRawMode(true);
        undo.push(() => process.stdin.setRawMode(false));
      }
      if (tty) {
        const onResize = () => stream.write({ resize: terminalSize() });
        process.on('SIGWINCH', onResize);
        undo.push(() => process.off('SIGWINCH', onResize));
      }
      if (!interactive) return;
      let waitingForDrain = false;
      const onData = (chunk: Buffer) => {
        let full = false;
        for (let at = 0; at < chunk.length; at += MAX_EXEC_CHUNK_BYTES) full = !stream.write({ stdin: chunk.subarray(at, at + MAX_EXEC_CHUNK_BYTES) }) || full;
        if (!full || waitingForDrain) return;
        waitingForDrain = true;
        process.stdin.pause();
        stream.once('drain', () => {
          waitingForDrain = false;
          process.stdin.resume();
        });
      };
      const onEnd = () => stream.write({ stdinClose: true });
      process.stdin.on('data', onData);
      process.stdin.once('end', onEnd);
      undo.push(() => {
        process.stdin.off('data', onData);
        process.stdin.off('end', onEnd);
        process.stdin.pause();
      });
    };
  }).finally(() => {
    for (const step of undo.reverse()) step();
    stream.cancel();
  });
}

export function registerExecCommand(program: Command, withClient: WithClient): void {
  program
    .command('exec')
    .description("run a command in a task's container, on whichever node runs it (put -- before the command)")
    .argument('<task>', 'the task (its name, e.g. shop_web.1.ab12cd34)')
    .argument('<command...>', 'the command and its arguments')
    .option('-i, --interactive', 'send stdin to the command')
    .option('-t, --tty', 'give the command a terminal')
    .option('--stack <stack>', "the task's stack, when the name alone is ambiguous")
    .option('-e, --env <NAME=value>', 'set a variable (repeatable)', (value: string, all: string[]) => [...all, value], [] as string[])
    .action(async (task: string, command: string[], options: ExecOptions) => {
      const problem = execUsageProblem({ tty: options.tty === true, stdinIsTTY: process.stdin.isTTY, task, command, env: options.env });
      if (problem !== undefined) throw new Error(problem);
      // A terminal left in raw mode by a crash would be unusable: restore it on any exit.
      const restore = () => {
        if (process.stdin.isTTY && process.stdin.isRaw) process.stdin.setRawMode(false);
      };
      process.once('exit', restore);
      const outcome = await withClient((client) => runExec(client, task, command, options)).finally(restore);
      if (outcome.message !== undefined) process.stderr.write(`tsctl exec: ${outcome.message}\n`);
      // stdin may still hold the event loop open; the code is the command's, so exit with it now.
      process.exit(outcome.code);
    });
}
