// The I/O half of health checks: runs the probe in the container on the schedule the state machine
// (health-state.ts) gives, kills a probe that outlives its timeout, and hands every state worth
// reporting to the task runner.
import type { ContainerRuntime } from '../../runtime/types.js';
import type { HealthProbeObserver, ProbeResultKind } from '../../metrics/agent-metrics.js';
import {
  initialHealth,
  nextProbeDelay,
  recordProbe,
  reportWorthy,
  timedOutResult,
  type HealthConfig,
  type HealthState,
  type ProbeResult,
} from './health-state.js';

/** Bytes of probe output read (the rest is drained and dropped); Docker reads 4 KiB. */
const OUTPUT_READ_LIMIT = 4096;

export interface ProbeOutcome {
  /** -1 when the probe could not be run. */
  exitCode: number;
  output: string;
  timedOut: boolean;
}

export type RunProbe = (args: string[], timeoutMs: number) => Promise<ProbeOutcome>;

export interface HealthProberOptions {
  config: HealthConfig;
  runProbe: RunProbe;
  /** Called with the new state whenever its status or failing streak changed. */
  onChange(state: HealthState): void;
  log(message: string): void;
  now?: () => number;
  /** Health an earlier tsd reported for this container (it was adopted): carried on, not reset to starting. */
  resume?: Pick<HealthState, 'status' | 'failingStreak'>;
  /** Counts each probe's result and time (agent/metrics); absent: not recorded. */
  metrics?: HealthProbeObserver;
}

export class HealthProber {
  private state: HealthState;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: HealthProberOptions) {
    this.now = options.now ?? Date.now;
    this.state = { ...initialHealth(this.now()), ...options.resume };
  }

  get current(): HealthState {
    return this.state;
  }

  /** The first probe runs one (start) interval after the container started, as in Docker. */
  start(): void {
    this.schedule(nextProbeDelay(this.state, this.options.config, this.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probe(), delayMs);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    const { config } = this.options;
    const start = this.now();
    let outcome: ProbeOutcome;
    try {
      outcome = await this.options.runProbe(config.args, config.timeoutMs);
    } catch (err) {
      outcome = { exitCode: -1, output: (err as Error).message, timedOut: false };
    }
    if (this.stopped) return;
    const end = this.now();
    const result: ProbeResult = outcome.timedOut
      ? timedOutResult(start, end, config.timeoutMs)
      : { start, end, exitCode: outcome.exitCode, output: outcome.output };
    this.options.metrics?.probed(probeResultKind(outcome), (end - start) / 1000);
    const before = this.state;
    this.state = recordProbe(before, config, result);
    if (reportWorthy(before, this.state)) {
      try {
        this.options.onChange(this.state);
      } catch (err) {
        this.options.log(`health report failed: ${(err as Error).message}`);
      }
    }
    this.schedule(nextProbeDelay(this.state, config, end));
  }
}

function probeResultKind(outcome: ProbeOutcome): ProbeResultKind {
  if (outcome.timedOut) return 'timeout';
  if (outcome.exitCode === -1) return 'error';
  return outcome.exitCode === 0 ? 'healthy' : 'unhealthy';
}

/** A RunProbe that execs in a running container of `runtime`, stdout and stderr together. */
export function execProbe(runtime: ContainerRuntime, containerId: string): RunProbe {
  return async (args, timeoutMs) => {
    if (!runtime.exec) return { exitCode: -1, output: 'this runtime cannot exec into containers', timedOut: false };
    const proc = await runtime.exec(containerId, { args });
    proc.stdin.end();
    const chunks: Buffer[] = [];
    let kept = 0;
    const streams = [proc.stdout, ...(proc.stderr && proc.stderr !== proc.stdout ? [proc.stderr] : [])];
    for (const stream of streams) {
      stream.on('data', (c: Buffer | string) => {
        const buf = typeof c === 'string' ? Buffer.from(c) : c;
        if (kept < OUTPUT_READ_LIMIT) chunks.push(buf.subarray(0, OUTPUT_READ_LIMIT - kept));
        kept += buf.length;
      });
      // A pipe error only cuts the probe's output short; its exit code is the verdict.
      stream.on('error', () => undefined);
    }
    const allEnded = Promise.all(
      streams.map(
        (stream) =>
          new Promise<void>((resolve) => {
            stream.on('end', resolve);
            stream.on('close', resolve);
          }),
      ),
    );
    // Set when the probe's exit is known (an object: set in a callback, read after an await).
    const reaped = { exited: false };
    const exit = proc.exit.then((status) => {
      reaped.exited = true;
      return status;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const first = await Promise.race([exit, timeout]);
      if (first === 'timeout') {
        // Our own exec'd process, by its pid, and only while it has not been reaped.
        if (!reaped.exited) {
          try {
            process.kill(proc.pid, 'SIGKILL');
          } catch {
            // Already gone (ESRCH): it exited between the timeout and the kill.
          }
        }
        // The probe timed out: that is its result, whatever its exit (or a failure to learn it) says.
        await exit.catch(() => undefined);
        return { exitCode: -1, output: '', timedOut: true };
      }
      // The pipes deliver what the probe wrote; a grandchild it left behind may hold them open.
      let drainTimer: NodeJS.Timeout | undefined;
      await Promise.race([allEnded, new Promise((resolve) => (drainTimer = setTimeout(resolve, 200)))]);
      clearTimeout(drainTimer);
      return { exitCode: first.exitCode, output: Buffer.concat(chunks).toString('utf8'), timedOut: false };
    } finally {
      clearTimeout(timer);
      // Never wait for the pipes' end beyond this: close them.
      for (const stream of streams) (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    }
  };
}
