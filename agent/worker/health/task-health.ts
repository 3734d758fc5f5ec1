// Glue between a task's container and its health check: the fields a health state adds to a task
// status report, and a prober bound to one container that reports through the task runner.
import type { TaskStatus } from '../../../common/resources/types.js';
import type { ContainerRuntime } from '../../runtime/types.js';
import { execProbe, HealthProber } from './health-prober.js';
import type { HealthConfig, HealthState } from './health-state.js';
import type { HealthProbeObserver } from '../../metrics/agent-metrics.js';

/** Probe results sent to the managers with each report (the newest ones). */
const REPORTED_LOG_LENGTH = 3;

export type HealthFields = Required<Pick<TaskStatus, 'health' | 'failingStreak' | 'healthLog'>>;

/** The task-status fields for a health state. Pure. */
export function healthFields(state: HealthState): HealthFields {
  return {
    health: state.status,
    failingStreak: state.failingStreak,
    healthLog: state.log.slice(-REPORTED_LOG_LENGTH).map((r) => ({
      start: new Date(r.start).toISOString(),
      end: new Date(r.end).toISOString(),
      exitCode: r.exitCode,
      output: r.output,
    })),
  };
}

export interface TaskHealthOptions {
  config: HealthConfig;
  runtime: ContainerRuntime;
  containerId: string;
  report(fields: HealthFields): void;
  log(message: string): void;
  resume?: Pick<HealthState, 'status' | 'failingStreak'>;
  metrics?: HealthProbeObserver;
}

/** Starts probing a running container; stop() ends it (no report follows). */
export function startTaskHealth(options: TaskHealthOptions): HealthProber {
  const prober = new HealthProber({
    config: options.config,
    runProbe: execProbe(options.runtime, options.containerId),
    onChange: (state) => options.report(healthFields(state)),
    log: (message) => options.log(message),
    ...(options.resume ? { resume: options.resume } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  prober.start();
  return prober;
}
