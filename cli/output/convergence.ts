// Has a service reached what was just applied? A pure decision over one snapshot of the service,
// its tasks and the nodes, so `stack deploy` and `apply` can re-ask it after every watch event and
// the rules can be tested with fixtures.
//
// Converged: the controller has taken up the applied spec, the rollout (status.update) is neither
// running nor paused, and exactly `desired` tasks of the current template run and are meant to
// (healthy too when the service has a health check), with no task of an older template left.
// Failed: the rollout paused or was rolled back, the service disappeared, or tasks of the current
// template keep failing (`failureLimit` failures seen while following).
import type { Node, Service, ServiceSpec, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import { templateKey } from '../../control-plane/controllers/rollout.js';
import { eligibleNodes } from '../../control-plane/controllers/global-reconcile.js';
import { taskMessage } from './fields.js';

export type ConvergencePhase = 'pending' | 'converging' | 'converged' | 'failed';

export interface ServiceConvergence {
  phase: ConvergencePhase;
  /** Tasks of the current template that run (and are healthy when the service checks health). */
  ready: number;
  desired: number;
  /** What the service is waiting for, or why it failed; empty when converged. */
  detail: string;
  /** The most recent error of a task of the current template, if any. */
  lastError?: string;
}

export interface ConvergenceInput {
  /** The service as stored now; undefined when it is gone. */
  service: Service | undefined;
  /** templateKey() of the spec the apply wrote: a different one on the service means a rollback. */
  appliedTemplate: string;
  /** Tasks of this service (any state). */
  tasks: readonly Task[];
  /** Every node, to count the eligible ones of a global service. */
  nodes: readonly Node[];
  /** Names of tasks that had already ended when following began; they do not count as new failures. */
  endedBefore: ReadonlySet<string>;
  /** New failures of the current template after which the service is given up on. */
  failureLimit: number;
}

export const DEFAULT_FAILURE_LIMIT = 3;

/** A health check is in force when one is set, not disabled, and not Docker's ["NONE"]. */
export function requiresHealth(spec: ServiceSpec): boolean {
  const check = spec.healthcheck;
  return check !== undefined && check.disable !== true && check.test?.[0] !== 'NONE';
}

function isFailure(task: Task): boolean {
  return task.status.state === 'failed' || task.status.state === 'rejected';
}

function newestFirst(a: Task, b: Task): number {
  return Date.parse(b.status.timestamp) - Date.parse(a.status.timestamp) || b.metadata.name.localeCompare(a.metadata.name);
}

function desiredCount(service: Service, nodes: readonly Node[]): number {
  const mode = service.spec.mode ?? 'replicated';
  if (mode === 'global' || mode === 'global-job') return eligibleNodes(service, nodes).length;
  return Math.max(0, service.spec.replicas ?? 1);
}

export function serviceConvergence(input: ConvergenceInput): ServiceConvergence {
  const { service } = input;
  if (!service) return { phase: 'failed', ready: 0, desired: 0, detail: 'the service was removed' };
  const template = templateKey(service.spec);
  const health = requiresHealth(service.spec);
  const current = input.tasks.filter((t) => templateKey(t.spec.spec) === template);
  const live = input.tasks.filter((t) => t.desiredState === 'running' && !isTerminal(t.status.state));
  const isJob = service.spec.mode === 'replicated-job' || service.spec.mode === 'global-job';
  const ready = isJob
    ? current.filter((t) => t.status.state === 'complete').length
    : live.filter((t) => templateKey(t.spec.spec) === template && t.status.state === 'running' && (!health || t.status.health === 'healthy')).length;
  const desired = desiredCount(service, input.nodes);
  const failures = current.filter((t) => isFailure(t) && !input.endedBefore.has(t.metadata.name)).sort(newestFirst);
  const withError = [...current].sort(newestFirst).find((t) => isFailure(t) && taskMessage(t) !== '');
  const lastError = withError ? taskMessage(withError) : undefined;
  const base = { ready, desired, ...(lastError !== undefined ? { lastError } : {}) };
  const update = service.status?.update;
  const reason = (text: string | undefined) => (text ? `: ${text}` : '');

  if (template !== input.appliedTemplate) {
    // The spec on the service is no longer the one applied: rolled back by the controller, or
    // changed by someone else; either way what was applied will not converge.
    if (update?.state.startsWith('rollback')) return { phase: 'failed', ...base, detail: `rolled back${reason(update.rollbackReason ?? update.message)}` };
    return { phase: 'failed', ...base, detail: 'its spec was changed by another apply while following' };
  }
  if (update?.state === 'paused' || update?.state === 'rollback_paused') {
    return { phase: 'failed', ...base, detail: `rollout paused${reason(update.message)}` };
  }
  if (failures.length >= input.failureLimit) {
    return { phase: 'failed', ...base, detail: `${failures.length} tasks failed${reason(lastError)}` };
  }
  // A task that ended and that the restart policy will not replace leaves its slot empty for good.
  const condition = service.spec.restart?.condition ?? 'any';
  if (!isJob && condition !== 'any') {
    const ended = current
      .filter((t) => !input.endedBefore.has(t.metadata.name) && (t.status.state === 'complete' || (condition === 'none' && isFailure(t))))
      .sort(newestFirst)[0];
    if (ended) {
      const how = ended.status.state === 'complete' ? 'completed' : `${ended.status.state}${reason(taskMessage(ended))}`;
      return { phase: 'failed', ...base, detail: `task ${ended.metadata.name} ${how}, and the restart policy (${condition}) does not replace it` };
    }
  }
  const noticed = service.status?.currentSpec !== undefined && templateKey(service.status.currentSpec) === template;
  if (!noticed) return { phase: 'pending', ...base, detail: 'waiting for the controller' };

  const stale = live.filter((t) => templateKey(t.spec.spec) !== template).length;
  const rolling = update?.state === 'updating' || update?.state === 'rollback_started';
  if (!rolling && stale === 0 && (isJob ? ready >= desired : ready === desired && live.length === desired)) {
    return { phase: 'converged', ...base, detail: '' };
  }
  return { phase: 'converging', ...base, detail: waitingFor(current, { rolling, stale, health, ready, desired, liveCount: live.length }) };
}

/** A short account of what the service still waits for, the most telling thing first. */
function waitingFor(
  current: readonly Task[],
  s: { rolling: boolean; stale: number; health: boolean; ready: number; desired: number; liveCount: number },
): string {
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const pending = current.find((t) => t.desiredState === 'running' && t.status.schedulingReason && !isTerminal(t.status.state));
  if (pending) return `pending: ${pending.status.schedulingReason}`;
  // The latest failure stays in view while replacements start, so a crash loop reads as one state.
  const failed = [...current].sort(newestFirst).find((t) => isFailure(t) && taskMessage(t) !== '');
  if (s.ready < s.desired && failed) return `retrying after: ${taskMessage(failed)}`;
  const unhealthy = current.some((t) => t.desiredState === 'running' && t.status.state === 'running' && t.status.health !== 'healthy');
  if (s.ready < s.desired && s.health && unhealthy) return 'waiting for health checks';
  if (s.rolling) return s.stale > 0 ? `updating (${plural(s.stale, 'old task')} left)` : 'updating';
  if (s.stale > 0) return `replacing ${plural(s.stale, 'old task')}`;
  if (s.liveCount > s.desired) return `stopping ${plural(s.liveCount - s.desired, 'task')}`;
  return 'starting';
}

/** Every service settled (converged or failed): following can stop. */
export function allSettled(states: readonly ServiceConvergence[]): boolean {
  return states.every((s) => s.phase === 'converged' || s.phase === 'failed');
}
