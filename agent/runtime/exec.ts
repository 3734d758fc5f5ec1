// exec into a running container: the container's own spawn plan (from its state dir) with the
// exec'd process's args, env, cwd and user, handed to the addon, which joins the container's
// namespaces and cgroup and applies the plan's process settings. stdio is three pipes, or one
// pseudo-terminal with `tty`.

import net from 'node:net';
import os from 'node:os';
import tty from 'node:tty';
import { execInContainer, setWindowSize, waitProcess, type NativeSpawnPlan } from './native.js';
import { executableCandidates } from './spawn-plan.js';
import { mergeEnv } from '../../common/exec/exec-limits.js';
import type { ExecOptions, ExecProcess, ExitStatus } from './types.js';

const SIGNAL_NAMES = new Map<number, string>(Object.entries(os.constants.signals).map(([name, num]) => [num, name]));

/** The container's plan with the exec'd process in place of the init's. Pure. */
export function execPlan(containerPlan: NativeSpawnPlan, options: ExecOptions): NativeSpawnPlan {
  const args0 = options.args[0];
  if (args0 === undefined || args0 === '') throw new Error('exec: args[0] must name the program to run');
  const env = options.env ?? mergeEnv(containerPlan.env, options.extraEnv ?? []);
  for (const [i, e] of env.entries()) if (!e.includes('=')) throw new Error(`exec: env[${i}] must be NAME=value, got '${e}'`);
  const cwd = options.cwd ?? containerPlan.cwd;
  if (!cwd.startsWith('/')) throw new Error(`exec: cwd must be absolute, got '${cwd}'`);
  const user = options.user ?? { uid: containerPlan.uid, gid: containerPlan.gid, additionalGids: containerPlan.additionalGids };
  return {
    ...containerPlan,
    args: options.args,
    env,
    cwd,
    uid: user.uid,
    gid: user.gid,
    additionalGids: user.additionalGids ?? [],
    executableCandidates: executableCandidates(args0, env),
  };
}

export async function startExec(containerPlan: NativeSpawnPlan, containerPid: number, options: ExecOptions): Promise<ExecProcess> {
  const plan = execPlan(containerPlan, options);
  const spawned = await execInContainer(plan, containerPid, options.tty === true, options.tty === true ? options.size : undefined);
  const exit: Promise<ExitStatus> = waitProcess(spawned.pid).then((ended) => {
    const status: ExitStatus = {
      exitCode: ended.signal !== undefined ? 128 + ended.signal : (ended.exitCode ?? -1),
      oomKilled: false,
    };
    if (ended.signal !== undefined) status.signal = SIGNAL_NAMES.get(ended.signal) ?? String(ended.signal);
    return status;
  });
  if (options.tty === true) {
    const [master] = spawned.fds;
    if (master === undefined) throw new Error('exec: the addon returned no pty');
    const terminal = new tty.ReadStream(master);
    // Reading a pty master whose other side is closed fails with EIO: that is its end of file.
    terminal.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EIO') terminal.push(null);
    });
    // The fd stays open as long as the stream; after the process ended a resize is moot.
    const resize = (rows: number, cols: number): void => {
      if (!terminal.destroyed) setWindowSize(master, rows, cols);
    };
    return { pid: spawned.pid, stdin: terminal, stdout: terminal, exit, resize };
  }
  const [stdinFd, stdoutFd, stderrFd] = spawned.fds;
  if (stdinFd === undefined || stdoutFd === undefined || stderrFd === undefined) throw new Error('exec: the addon returned too few pipes');
  const stdin = new net.Socket({ fd: stdinFd, readable: false, writable: true });
  // The process may exit without reading its input; a closed pipe is not our error.
  stdin.on('error', () => undefined);
  return {
    pid: spawned.pid,
    stdin,
    stdout: new net.Socket({ fd: stdoutFd, readable: true, writable: false }),
    stderr: new net.Socket({ fd: stderrFd, readable: true, writable: false }),
    exit,
  };
}

/** Runs an exec to completion: writes `input` (if any), collects output, returns it with the exit. */
export async function execCollect(process: ExecProcess, input?: string): Promise<{ exit: ExitStatus; stdout: string; stderr: string }> {
  const collect = (stream: NodeJS.ReadableStream | undefined): Promise<string> =>
    stream === undefined
      ? Promise.resolve('')
      : new Promise((resolve) => {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
          const done = (): void => resolve(Buffer.concat(chunks).toString('utf8'));
          stream.on('end', done);
          stream.on('close', done);
        });
  const stdout = collect(process.stdout);
  const stderr = process.stderr === process.stdout ? Promise.resolve('') : collect(process.stderr);
  if (input !== undefined) process.stdin.write(input);
  if (process.stderr !== undefined) process.stdin.end();
  const exit = await process.exit;
  return { exit, stdout: await stdout, stderr: await stderr };
}
