// OCI lifecycle hooks (runtime-spec config.md#posix-platform-hooks): programs the runtime runs in
// its own namespaces at points of a container's life, each given the container's state as JSON on
// stdin. prestart, createRuntime, poststart and poststop are run; createContainer and
// startContainer (which run inside the container's namespaces) are refused by the config schema.

import { spawn } from 'node:child_process';

export interface OciHook {
  /** Absolute path of the program, in the runtime's mount namespace. */
  path: string;
  /** argv, argv[0] included; default [path]. */
  args?: string[];
  /** NAME=value; the hook gets exactly these (none when absent), as under runc. */
  env?: string[];
  /** Seconds before the hook is killed and counted as failed. */
  timeout?: number;
}

export interface OciHooks {
  prestart?: OciHook[];
  createRuntime?: OciHook[];
  poststart?: OciHook[];
  poststop?: OciHook[];
}

/** The state a hook reads on stdin (runtime-spec runtime.md#state). */
export interface HookState {
  ociVersion: string;
  id: string;
  status: 'created' | 'running' | 'stopped';
  /** Absent once the container has stopped. */
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/** The version of the runtime spec the state given to hooks (and `tessera-runtime state`) follows. */
export const STATE_OCI_VERSION = '1.0.2';

/** Bytes of a hook's output kept for the error message. */
const OUTPUT_LIMIT = 4096;

/** Runs one hook to completion; rejects naming `label`, the exit status or timeout and the hook's output. */
export function runHook(hook: OciHook, state: HookState, label: string): Promise<void> {
  const argv = hook.args !== undefined && hook.args.length > 0 ? hook.args : [hook.path];
  const env = Object.fromEntries((hook.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  return new Promise((resolve, reject) => {
    // A process group of its own, so that a timeout also kills what the hook started (which
    // would otherwise hold its output pipes open).
    const child = spawn(hook.path, argv.slice(1), { argv0: argv[0], env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer =
      hook.timeout === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            killGroup(child.pid);
          }, hook.timeout * 1000);
    const fail = (why: string): void => {
      const tail = output.trim();
      reject(new Error(`${label} hook ${hook.path} ${why}${tail === '' ? '' : `: ${tail}`}`));
    };
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(`could not run: ${err.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) fail(`timed out after ${hook.timeout} s`);
      else if (code === 0) resolve();
      else fail(code !== null ? `exited with status ${code}` : `was killed by ${signal}`);
    });
    // A hook that does not read its stdin closes the pipe early (EPIPE): that is its choice.
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(state));
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group has already gone.
  }
}

/** Runs hooks in order; the first failure stops the rest and is thrown (prestart, createRuntime). */
export async function runHooksOrFail(hooks: OciHook[] | undefined, state: HookState, label: string): Promise<void> {
  for (const hook of hooks ?? []) await runHook(hook, state, label);
}

/** Runs every hook; each failure is a warning and the rest still run (poststart, poststop). */
export async function runHooksWarning(hooks: OciHook[] | undefined, state: HookState, label: string, warn: (message: string) => void): Promise<void> {
  for (const hook of hooks ?? []) await runHook(hook, state, label).catch((err: Error) => warn(err.message));
}
