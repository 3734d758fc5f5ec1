// depends_on as start order, as a pure decision. A service's new tasks are held unplaced (pending,
// with the reason on the task) until every dependency of the same stack meets its condition; the
// scheduling controller leaves a held task alone, the service controller releases it.
//
// Conditions (Compose's names), judged on the dependency's tasks:
//   service_started                 at least one task running (not: all replicas; like Compose,
//                                   which waits for a container to have started)
//   service_healthy                 at least one task running and healthy
//   service_completed_successfully  nothing of it still runs and the newest task of every slot
//                                   (node, for a global job) completed with exit code 0 — meant for
//                                   jobs (replicated-job, global-job), which run to completion
// A dependency that does not exist holds the service, unless it is marked `required: false`.
// Only the start is ordered: a dependency that fails later does not stop running tasks.
import type { DependencyCondition, Service, ServiceDependency, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';

export interface DependencyLookup {
  /** The service of this name in the dependent's stack, if it exists. */
  service(name: string): Service | undefined;
  /** Every task of that service. */
  tasks(name: string): readonly Task[];
}

/** Why the service must wait, naming the first unmet dependency; undefined when it may start. */
export function dependencyWait(service: Service, lookup: DependencyLookup): string | undefined {
  for (const dep of service.spec.dependsOn ?? []) {
    const reason = unmet(dep, lookup);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

function unmet(dep: ServiceDependency, lookup: DependencyLookup): string | undefined {
  if (lookup.service(dep.service) === undefined) {
    return dep.required === false ? undefined : `waiting for service ${dep.service}, which does not exist`;
  }
  const tasks = lookup.tasks(dep.service);
  return conditionMet(dep.condition, tasks) ? undefined : waitMessage(dep.service, dep.condition, tasks);
}

function runningTasks(tasks: readonly Task[]): Task[] {
  return tasks.filter((t) => t.desiredState === 'running' && t.status.state === 'running');
}

export function conditionMet(condition: DependencyCondition, tasks: readonly Task[]): boolean {
  switch (condition) {
    case 'service_started':
      return runningTasks(tasks).length > 0;
    case 'service_healthy':
      return runningTasks(tasks).some((t) => t.status.health === 'healthy');
    case 'service_completed_successfully':
      return completedSuccessfully(tasks);
  }
}

/**
 * The service ran to the end: nothing of it is still live, and the newest task of every slot (of
 * every node, for a global job) completed with exit code 0 — a failed one may still be restarted.
 */
function completedSuccessfully(tasks: readonly Task[]): boolean {
  if (tasks.length === 0 || tasks.some((t) => t.desiredState === 'running' && !isTerminal(t.status.state))) return false;
  const newest = new Map<string, Task>();
  for (const t of tasks) {
    const key = t.spec.slot > 0 ? `slot ${t.spec.slot}` : `node ${t.nodeName ?? ''}`;
    const seen = newest.get(key);
    if (!seen || Date.parse(t.metadata.createdAt ?? '') > Date.parse(seen.metadata.createdAt ?? '')) newest.set(key, t);
  }
  return [...newest.values()].every((t) => t.status.state === 'complete' && (t.status.exitCode ?? 0) === 0);
}

function waitMessage(name: string, condition: DependencyCondition, tasks: readonly Task[]): string {
  switch (condition) {
    case 'service_started':
      return `waiting for service ${name} to start`;
    case 'service_healthy': {
      const running = runningTasks(tasks);
      const noCheck = running.length > 0 && running.every((t) => t.status.health === undefined);
      return `waiting for service ${name} to be healthy${noCheck ? ' (its running tasks have no health check)' : ''}`;
    }
    case 'service_completed_successfully':
      return `waiting for service ${name} to complete successfully`;
  }
}

/** A task the scheduler has not placed yet and that is still wanted: the only kind a gate holds. */
export function isUnplaced(t: Task): boolean {
  return t.nodeName === undefined && t.desiredState === 'running' && !isTerminal(t.status.state) && (t.status.state === 'new' || t.status.state === 'pending');
}

/** The task held (or released) by `wait`; undefined when it already is as it should be. */
export function gateTask(task: Task, wait: string | undefined): Task | undefined {
  if (!isUnplaced(task) || task.status.dependencyWait === wait) return undefined;
  const status = { ...task.status };
  if (wait === undefined) {
    delete status.dependencyWait;
    // The scheduler records its own reason once it has looked at the task.
    if (status.schedulingReason?.startsWith('waiting for service ')) delete status.schedulingReason;
    return { ...task, status: { ...status, message: 'dependencies met' } };
  }
  return { ...task, status: { ...status, state: 'pending', message: wait, schedulingReason: wait, dependencyWait: wait } };
}

/** Services of `stack` whose dependsOn names `name`: they re-decide when it (or its tasks) change. */
export function dependentsOf(services: readonly Service[], stack: string, name: string): Service[] {
  return services.filter((s) => (s.metadata.stack ?? '') === stack && (s.spec.dependsOn ?? []).some((d) => d.service === name));
}
