// Network namespaces and namespaced processes for integration tests. Everything is named with a
// unique prefix and removed by name or PID, so tests can run concurrently and never touch the
// host's own network namespace.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readlink } from 'node:fs/promises';
import { runCommand, type CommandResult } from '../../agent/network/exec.js';

export interface Netns {
  name: string;
  /** Runs one command inside the namespace (via `ip netns exec`). */
  exec(command: string, args?: string[], input?: string): Promise<CommandResult>;
  delete(): Promise<void>;
}

/** Creates `PREFIX-PID-RAND` with loopback up. */
export async function createNetns(prefix: string): Promise<Netns> {
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  await runCommand(['ip', 'netns', 'add', name]);
  let deleted = false;
  const netns: Netns = {
    name,
    exec: (command, args = [], input) => runCommand(['ip', 'netns', 'exec', name, command, ...args], input),
    async delete() {
      if (deleted) return;
      deleted = true;
      await runCommand(['ip', 'netns', 'del', name]).catch(() => undefined);
    },
  };
  try {
    await runCommand(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await netns.delete();
    throw error;
  }
  return netns;
}

export interface NamespacedProcess {
  pid: number;
  /** Sends SIGKILL to this PID only and waits for it to be reaped. */
  stop(): Promise<void>;
}

/**
 * Starts `argv` as the first process of a fresh network namespace, like a container's init:
 * `unshare` execs the command, so the returned PID is the command and /proc/PID/ns/net its netns.
 */
export async function startInNewNetns(argv: string[]): Promise<NamespacedProcess> {
  const child = spawn('/usr/bin/unshare', ['--net', '--', ...argv], { stdio: 'ignore' });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${argv.join(' ')}`);
  const started = namespacedProcess(child, pid);
  try {
    await waitForOwnNetns(pid, child);
  } catch (error) {
    await started.stop();
    throw error;
  }
  return started;
}

function namespacedProcess(child: ChildProcess, pid: number): NamespacedProcess {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Starts a long-running process inside an existing named namespace. */
export function spawnInNetns(netns: Netns, argv: string[]): NamespacedProcess {
  // `ip netns exec` execs the command, so the PID is the command's own.
  const child = spawn('/usr/bin/ip', ['netns', 'exec', netns.name, ...argv], { stdio: 'ignore' });
  if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')} in ${netns.name}`);
  return namespacedProcess(child, child.pid);
}

/** unshare switches namespace before exec; wait for that so callers can attach to it. */
async function waitForOwnNetns(pid: number, child: ChildProcess): Promise<void> {
  const ours = await readlink('/proc/self/ns/net');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process ${pid} exited early with ${child.exitCode}`);
    const theirs = await readlink(`/proc/${pid}/ns/net`).catch(() => ours);
    if (theirs !== ours) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`process ${pid} did not enter a new network namespace`);
}

/** Runs a command inside the network namespace of a process (a test "container"). */
export function execInPidNetns(pid: number, command: string, args: string[] = []): Promise<CommandResult> {
  return runCommand(['nsenter', `--net=/proc/${pid}/ns/net`, command, ...args]);
}

/**
 * HTTP GET with busybox wget inside a namespace. busybox 1.35's `wget -T` crashes, so the time
 * limit is enforced by killing the process instead.
 */
export async function httpGet(netns: Netns, url: string, timeoutMs = 5000): Promise<string> {
  const argv = ['ip', 'netns', 'exec', netns.name, '/bin/busybox', 'wget', '-qO-', url];
  const { stdout } = await runCommand(argv, undefined, timeoutMs);
  return stdout.trim();
}
