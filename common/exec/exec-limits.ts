// What an exec (tsctl exec) may ask for, checked where it enters: by the API server on the
// client's start message, by the agent on the manager's ExecOpen, and by tsctl before it sends.
// Pure. The limits bound a manager's and an agent's memory per exec; the counts bound all execs.

/** argv: at most this many arguments and this many bytes in all (Linux's own ARG_MAX is larger; a command line this long is not typed). */
export const MAX_EXEC_ARGS = 1024;
export const MAX_EXEC_COMMAND_BYTES = 64 * 1024;
/** Extra environment: entries and bytes in all. */
export const MAX_EXEC_ENV = 256;
export const MAX_EXEC_ENV_BYTES = 64 * 1024;
/** One stdin or output message carries at most this many bytes. */
export const MAX_EXEC_CHUNK_BYTES = 32 * 1024;
/**
 * Flow-control window per direction and exec: a sender may have this many bytes not yet credited
 * back by the receiver; then it stops reading its source until credit comes.
 */
export const EXEC_WINDOW_BYTES = 256 * 1024;
/** Execs one node serves at once, and one manager routes at once. */
export const MAX_EXECS_PER_NODE = 32;
export const MAX_EXECS_PER_MANAGER = 256;
/** A terminal's rows and columns are unsigned 16-bit numbers in the kernel's struct winsize. */
export const MAX_TERMINAL_CELLS = 0xffff;

const MAX_TASK_NAME_BYTES = 253;

/** Exit codes of an exec, as shells and Docker use them. */
export const EXEC_EXIT_CANNOT_RUN = 126;
export const EXEC_EXIT_NOT_FOUND = 127;
/** Tessera could not run the exec or lost it (a node down, a refusal): not the command's own code. */
export const EXEC_EXIT_FAILED = 125;

export interface ExecRequestFields {
  task: string;
  command: readonly string[];
  env: readonly string[];
  rows: number;
  cols: number;
}

/** Why an exec request cannot be served, naming the field; undefined when it can. */
export function execRequestProblem(request: ExecRequestFields): string | undefined {
  if (request.task === '') return 'exec: no task named';
  if (Buffer.byteLength(request.task) > MAX_TASK_NAME_BYTES) return `exec: the task name is longer than ${MAX_TASK_NAME_BYTES} bytes`;
  if (request.command.length === 0 || request.command[0] === '') return 'exec: no command given (the first argument names the program)';
  if (request.command.length > MAX_EXEC_ARGS) return `exec: ${request.command.length} arguments; at most ${MAX_EXEC_ARGS}`;
  const commandBytes = request.command.reduce((sum, arg) => sum + Buffer.byteLength(arg), 0);
  if (commandBytes > MAX_EXEC_COMMAND_BYTES) return `exec: the command is ${commandBytes} bytes; at most ${MAX_EXEC_COMMAND_BYTES}`;
  // execve takes C strings: a NUL would silently cut an argument.
  const withNul = request.command.findIndex((arg) => arg.includes('\0'));
  if (withNul >= 0) return `exec: argument ${withNul} contains a NUL byte`;
  if (request.env.length > MAX_EXEC_ENV) return `exec: ${request.env.length} environment entries; at most ${MAX_EXEC_ENV}`;
  const envBytes = request.env.reduce((sum, entry) => sum + Buffer.byteLength(entry), 0);
  if (envBytes > MAX_EXEC_ENV_BYTES) return `exec: the environment is ${envBytes} bytes; at most ${MAX_EXEC_ENV_BYTES}`;
  for (const [i, entry] of request.env.entries()) {
    const eq = entry.indexOf('=');
    if (eq <= 0) return `exec: env[${i}] must be NAME=value`;
    if (entry.includes('\0')) return `exec: env[${i}] contains a NUL byte`;
  }
  for (const [what, value] of [
    ['rows', request.rows],
    ['cols', request.cols],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > MAX_TERMINAL_CELLS) return `exec: terminal ${what} must be 0..${MAX_TERMINAL_CELLS}, got ${value}`;
  }
  return undefined;
}

/** A terminal size from a resize message, or why it is not one. Pure. */
export function terminalSizeProblem(rows: number, cols: number): string | undefined {
  for (const [what, value] of [
    ['rows', rows],
    ['cols', cols],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > MAX_TERMINAL_CELLS) return `exec: terminal ${what} must be 0..${MAX_TERMINAL_CELLS}, got ${value}`;
  }
  return undefined;
}

/** The container's environment with `extra` (NAME=value) set over it: a name given again replaces its value. Pure. */
export function mergeEnv(base: readonly string[], extra: readonly string[]): string[] {
  if (extra.length === 0) return [...base];
  const names = new Set(extra.map((e) => e.slice(0, e.indexOf('='))));
  return [...base.filter((e) => !names.has(e.slice(0, e.indexOf('=')))), ...extra];
}

/** The exit code when the process could not be started: 127 when the program is missing, else 126. Pure. */
export function cannotRunCode(errnoName: string | undefined): number {
  return errnoName === 'ENOENT' || errnoName === 'ENOTDIR' ? EXEC_EXIT_NOT_FOUND : EXEC_EXIT_CANNOT_RUN;
}
