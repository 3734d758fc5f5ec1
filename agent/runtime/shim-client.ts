// Talks to a container's tessera-shim over <state-dir>/shim.sock (native/shim/shim.c): one JSON
// line per request and reply. When the shim is gone, <state-dir>/exit.json holds the exit.

import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { ContainerState, ExitStatus } from './types.js';

export const SHIM_SOCKET = 'shim.sock';
export const EXIT_FILE = 'exit.json';

const SIGNAL_NAMES = new Map<number, string>(Object.entries(os.constants.signals).map(([name, num]) => [num, name]));

const exitSchema = z.object({
  exitCode: z.number().int(),
  signal: z.number().int().optional(),
  oomKilled: z.boolean(),
  exitedAt: z.string().optional(),
});
const stateSchema = z.object({ pid: z.number().int(), status: z.enum(['created', 'running', 'stopped']), shimPid: z.number().int() });
const errorSchema = z.object({ error: z.string(), code: z.string() });

/** The shim is not there (exited or never started): ask exit.json instead. */
export class ShimGoneError extends Error {}

export interface ShimState {
  pid: number;
  status: ContainerState['status'];
  shimPid: number;
}

/** Converts the shim's exit record (signal as a number) into an ExitStatus. */
export function exitStatusFrom(value: unknown, source: string): ExitStatus {
  const parsed = exitSchema.safeParse(value);
  if (!parsed.success) throw new Error(`${source}: not an exit record: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const { exitCode, signal, oomKilled } = parsed.data;
  const exit: ExitStatus = { exitCode, oomKilled };
  if (signal !== undefined) exit.signal = SIGNAL_NAMES.get(signal) ?? String(signal);
  return exit;
}

/** The recorded exit of the container whose state dir this is, or undefined while it has none. */
export async function readExitFile(stateDir: string): Promise<ExitStatus | undefined> {
  const file = path.join(stateDir, EXIT_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return exitStatusFrom(JSON.parse(text), file);
}

export class ShimClient {
  constructor(readonly stateDir: string) {}

  get socketPath(): string {
    return path.join(this.stateDir, SHIM_SOCKET);
  }

  async state(): Promise<ShimState> {
    return stateSchema.parse(await this.request('state'));
  }

  async start(): Promise<void> {
    await this.request('start');
  }

  async kill(signal: number): Promise<void> {
    await this.request(`kill ${signal}`);
  }

  /** Resolves with the exit once the shim recorded it; ShimGoneError if the shim went away first. */
  async wait(): Promise<ExitStatus> {
    return exitStatusFrom(await this.request('wait'), `${this.socketPath} wait`);
  }

  /** Sends one request line and parses the one reply line; shim errors become Errors with `code`. */
  request(line: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path: this.socketPath });
      let buffer = '';
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        socket.destroy();
        fn();
      };
      socket.setEncoding('utf8');
      socket.on('connect', () => socket.write(`${line}\n`));
      socket.on('data', (chunk: string) => {
        buffer += chunk;
        const nl = buffer.indexOf('\n');
        if (nl < 0) return;
        settle(() => {
          let value: unknown;
          try {
            value = JSON.parse(buffer.slice(0, nl));
          } catch {
            reject(new Error(`${this.socketPath}: garbled reply to '${line}'`));
            return;
          }
          const failure = errorSchema.safeParse(value);
          if (failure.success) reject(Object.assign(new Error(failure.data.error), { code: failure.data.code }));
          else resolve(value);
        });
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        settle(() => {
          if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'EPIPE') {
            reject(new ShimGoneError(`tessera-shim at ${this.socketPath} is gone (${err.code})`));
          } else {
            reject(err);
          }
        });
      });
      socket.on('close', () => settle(() => reject(new ShimGoneError(`tessera-shim at ${this.socketPath} closed the connection`))));
    });
  }
}
