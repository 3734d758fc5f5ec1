// The load generator processes of bench:store (store-load.ts), each answering one command at a
// time, and what one measurement yields: throughput, latency percentiles and CPU time per put.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ServedStore } from './store-backends.js';
import type { LoadCommand, LoadReply, StoreName } from './store-load.js';
import { percentile } from './stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface Result {
  ops: number;
  p50: number;
  p99: number;
  /** CPU µs (user + system) per operation, over the store's three member processes together. */
  serverCpuUs: number;
  /** CPU µs per operation of the load processes together. */
  clientCpuUs: number;
}

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/**
 * CPU time of processes (all their threads), µs, from /proc/<pid>/stat: utime and stime, fields
 * 14 and 15, in clock ticks (10 ms at the usual 100 per second). It works alike for Node and etcd.
 */
export async function cpuMicrosOf(pids: readonly number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const [utime, stime] = [Number(fields[11]), Number(fields[12])];
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`/proc/${pid}/stat: no utime/stime where expected`);
    ticks += utime + stime;
  }
  return (ticks * 1e6) / CLOCK_TICKS_PER_SECOND;
}

export class LoadPool {
  private readonly procs: ChildProcess[];

  constructor(
    count: number,
    private readonly seconds: number,
  ) {
    this.procs = Array.from({ length: count }, () =>
      fork(join(HERE, 'store-load.ts'), [], { execArgv: ['--import', 'tsx'], cwd: join(HERE, '..', '..'), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
  }

  private ask(proc: ChildProcess, command: LoadCommand): Promise<LoadReply> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`store-load process exited with ${code}`));
      proc.once('exit', onExit);
      proc.once('message', (reply: LoadReply) => {
        proc.off('exit', onExit);
        resolve(reply);
      });
      proc.send(command);
    });
  }

  async connect(stores: readonly ServedStore[], tlsDir: string | undefined): Promise<void> {
    const endpoints: Partial<Record<StoreName, string[]>> = Object.fromEntries(stores.map((s) => [s.name, s.endpoints]));
    await Promise.all(this.procs.map((p) => this.ask(p, { type: 'connect', endpoints, ...(tlsDir ? { tlsDir } : {}) })));
  }

  /** `concurrency` workers spread over the processes, all running for the pool's seconds. */
  async measure(store: ServedStore, op: 'put' | 'get', concurrency: number): Promise<Result> {
    const runs: Array<Promise<LoadReply>> = [];
    let first = 0;
    const serverBefore = await cpuMicrosOf(store.pids());
    this.procs.forEach((p, k) => {
      const workers = Math.floor(concurrency / this.procs.length) + (k < concurrency % this.procs.length ? 1 : 0);
      if (workers === 0) return;
      runs.push(this.ask(p, { type: 'run', store: store.name, op, workers, firstWorker: first, seconds: this.seconds }));
      first += workers;
    });
    const replies = await Promise.all(runs);
    const serverCpu = (await cpuMicrosOf(store.pids())) - serverBefore;
    const latencies = replies.flatMap((r) => r.latencies);
    const clientCpu = replies.reduce((sum, r) => sum + r.cpuMicros, 0);
    const count = Math.max(1, latencies.length);
    return {
      ops: latencies.length / this.seconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      serverCpuUs: serverCpu / count,
      clientCpuUs: clientCpu / count,
    };
  }

  /** Fresh clients, one after another, from the first process (ms each, creation to first answer). */
  async handshakes(store: ServedStore, tlsDir: string | undefined, count: number): Promise<number[]> {
    const proc = this.procs[0];
    if (!proc) throw new Error('load pool: no process');
    const reply = await this.ask(proc, { type: 'handshake', store: store.name, endpoints: store.endpoints, count, ...(tlsDir ? { tlsDir } : {}) });
    return reply.latencies;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.send({ type: 'close' } satisfies LoadCommand);
          }),
      ),
    );
  }
}
