// Starts a process of hollow nodes (fleet-main.ts) and talks to it over IPC. With `netns` the
// process runs in that network namespace (nsenter execs node, so the PID is the fleet's own): the
// managers of a lab live on a private underlay that the host's namespace does not reach.
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeEvents, type FleetToParent, type StartMessage } from './fleet-protocol.js';
import type { HollowEvent } from './hollow-worker.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(REPO, 'test', 'scale', 'fleet-main.ts');
const STOP_GRACE_MS = 10_000;

export interface FleetProcessOptions extends Omit<StartMessage, 'type'> {
  /** Run in this network namespace (by name, /run/netns/NAME). */
  netns?: string;
  /** Where the process's own log (stdout and stderr) goes. */
  logFile: string;
  onEvents: (events: HollowEvent[]) => void;
}

export interface FleetProcess {
  readonly pid: number;
  /** Resolves when every node is registered; rejects when the process fails or exits first. */
  readonly ready: Promise<{ joinMs: number; connectMs: number }>;
  readonly exited: Promise<void>;
  /** Ends the sessions and waits for the process (SIGKILL after 10 s). */
  stop(): Promise<void>;
  signal(signal: NodeJS.Signals): void;
}

export async function startFleetProcess(options: FleetProcessOptions): Promise<FleetProcess> {
  const { netns, logFile, onEvents, ...start } = options;
  const log = await open(logFile, 'a', 0o600);
  const node = [process.execPath, '--import', 'tsx', MAIN];
  const [command, ...args] = netns ? ['nsenter', `--net=/run/netns/${netns}`, ...node] : node;
  const child = spawn(command!, args, { cwd: REPO, stdio: ['ignore', log.fd, log.fd, 'ipc'] });
  await log.close();
  let alive = true;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      alive = false;
      resolve();
    }),
  );
  const ready = new Promise<{ joinMs: number; connectMs: number }>((resolve, reject) => {
    child.on('message', (raw: FleetToParent) => {
      if (raw.type === 'events') onEvents(decodeEvents(raw.events));
      else if (raw.type === 'ready') resolve({ joinMs: raw.joinMs, connectMs: raw.connectMs });
      else reject(new Error(`hollow fleet ${start.namePrefix}: ${raw.message} (log: ${logFile})`));
    });
    void exited.then(() => reject(new Error(`hollow fleet ${start.namePrefix} exited (log: ${logFile})`)));
    child.once('error', reject);
  });
  // A failure is read through `ready`; this keeps an unobserved rejection from ending the parent.
  ready.catch(() => undefined);
  child.send({ type: 'start', ...start } satisfies StartMessage);
  return {
    pid: child.pid ?? 0,
    ready,
    exited,
    signal(signal) {
      if (alive) child.kill(signal);
    },
    async stop() {
      if (!alive) return;
      // A stopped (SIGSTOP) process reads no message: let it run to hear `stop`.
      child.kill('SIGCONT');
      if (child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
