// A container's health as Docker defines it, as a pure state machine: the prober (health-prober.ts)
// feeds it probe results and asks it when to probe next; time is passed in, never read.
//
//   starting  → healthy    after one successful probe
//   any       → unhealthy  after `retries` failed probes in a row
//   healthy/unhealthy → healthy again after one success (the streak resets)
// A failure while the container is still `starting` and inside its start period does not count
// towards the streak. A probe that times out is a failure.
import type { ImageHealthcheck } from '../../../common/images/types.js';
import type { HealthcheckSpec } from '../../../common/resources/types.js';

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** Docker's defaults for a duration left out (or given as 0). */
export const HEALTH_DEFAULTS = {
  intervalMs: 30_000,
  timeoutMs: 30_000,
  startPeriodMs: 0,
  startIntervalMs: 5_000,
  retries: 3,
} as const;

/** Probe results kept (Docker keeps five). */
export const HEALTH_LOG_LENGTH = 5;
/** Characters of a probe's output kept per result. */
export const HEALTH_OUTPUT_LIMIT = 512;

export interface HealthConfig {
  /** The argv to exec in the container. */
  args: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  startIntervalMs: number;
  retries: number;
}

export interface ProbeResult {
  /** ms since the epoch */
  start: number;
  end: number;
  /** The probe's exit code; -1 when it timed out or could not be started. */
  exitCode: number;
  output: string;
}

export interface HealthState {
  status: HealthStatus;
  failingStreak: number;
  /** When the container started (ms since the epoch): the start period counts from here. */
  startedAt: number;
  /** Newest last, at most HEALTH_LOG_LENGTH entries. */
  log: ProbeResult[];
}

/**
 * The check a task runs: the service's fields over the image's HEALTHCHECK, as Docker merges them
 * (a field the service leaves out comes from the image). undefined: no check (none defined,
 * `disable`, or a test of ["NONE"]). Throws on a test that names no command.
 */
export function effectiveHealthConfig(service: HealthcheckSpec | undefined, image: ImageHealthcheck | undefined): HealthConfig | undefined {
  if (service?.disable === true) return undefined;
  const test = service?.test !== undefined && service.test.length > 0 ? service.test : image?.test;
  if (test === undefined || test.length === 0 || test[0] === 'NONE') return undefined;
  const pick = (key: 'intervalMs' | 'timeoutMs' | 'startPeriodMs' | 'startIntervalMs'): number => {
    const own = service?.[key];
    if (own !== undefined && own > 0) return own;
    const inherited = image?.[key];
    return inherited !== undefined && inherited > 0 ? inherited : HEALTH_DEFAULTS[key];
  };
  const retries = service?.retries ?? image?.retries;
  return {
    args: probeArgs(test),
    intervalMs: pick('intervalMs'),
    timeoutMs: pick('timeoutMs'),
    startPeriodMs: pick('startPeriodMs'),
    startIntervalMs: pick('startIntervalMs'),
    retries: retries !== undefined && retries > 0 ? retries : HEALTH_DEFAULTS.retries,
  };
}

/** ["CMD", prog, args…] → [prog, args…]; ["CMD-SHELL", cmd] → ["/bin/sh", "-c", cmd]. */
export function probeArgs(test: readonly string[]): string[] {
  const [kind, ...rest] = test;
  if (kind === 'CMD') {
    if (rest.length === 0 || rest[0] === '') throw new Error('health check test ["CMD", ...] names no program');
    return rest;
  }
  if (kind === 'CMD-SHELL') {
    if (rest.length !== 1 || rest[0] === '') throw new Error('health check test ["CMD-SHELL", command] needs exactly one non-empty command');
    return ['/bin/sh', '-c', rest[0]!];
  }
  throw new Error(`health check test must start with "CMD", "CMD-SHELL" or "NONE", got ${JSON.stringify(kind ?? '')}`);
}

export function initialHealth(startedAt: number): HealthState {
  return { status: 'starting', failingStreak: 0, startedAt, log: [] };
}

function inStartPeriod(state: HealthState, config: HealthConfig, now: number): boolean {
  return state.status === 'starting' && now - state.startedAt < config.startPeriodMs;
}

/** The state after one probe. */
export function recordProbe(state: HealthState, config: HealthConfig, result: ProbeResult): HealthState {
  const entry: ProbeResult = { ...result, output: truncateOutput(result.output) };
  const log = [...state.log, entry].slice(-HEALTH_LOG_LENGTH);
  if (result.exitCode === 0) return { ...state, status: 'healthy', failingStreak: 0, log };
  // Docker judges the start period at the probe's start: a probe begun inside it is forgiven.
  if (inStartPeriod(state, config, result.start)) return { ...state, log };
  const failingStreak = state.failingStreak + 1;
  return { ...state, failingStreak, status: failingStreak >= config.retries ? 'unhealthy' : state.status, log };
}

/** How long to wait before the next probe, counted from the end of the last one (or the start). */
export function nextProbeDelay(state: HealthState, config: HealthConfig, now: number): number {
  return inStartPeriod(state, config, now) ? config.startIntervalMs : config.intervalMs;
}

/** What changed enough to tell the managers: the status or the failing streak. */
export function reportWorthy(before: HealthState, after: HealthState): boolean {
  return before.status !== after.status || before.failingStreak !== after.failingStreak;
}

export function truncateOutput(output: string): string {
  return output.length <= HEALTH_OUTPUT_LIMIT ? output : `${output.slice(0, HEALTH_OUTPUT_LIMIT)}…`;
}

/** The result a probe that exceeded its timeout gets (Docker's wording). */
export function timedOutResult(start: number, end: number, timeoutMs: number): ProbeResult {
  return { start, end, exitCode: -1, output: `Health check exceeded timeout (${timeoutMs} ms)` };
}
