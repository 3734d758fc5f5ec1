// Rolling updates as a pure, level-triggered decision. Swarm's updater is a goroutine that walks the
// slots with `parallelism` workers; here every pass of the service controller looks at the tasks
// and the rollout state recorded on the service status and decides which outdated slots may begin
// their update now, whether the rollout has failed (and what to do about it) or has completed.
// Nothing is remembered between passes except what is written to the service status, so a manager
// that restarts (or a new leader) carries on where the last one stopped.
//
// Rules (defaults are Swarm's, DEFAULT_UPDATE_POLICY below):
//   - A spec change other than a scale (the task template changed) starts a rollout; the spec
//     rolled out before becomes `previousSpec`. Going back to `previousSpec` (`tsctl rollout undo`,
//     or the automatic rollback) is a rollback and follows `rollbackConfig`.
//   - A slot is "outdated" when its live task runs an older template. At most `parallelism` slots
//     are busy at once (0: no limit); a slot is busy between its old and new task (stop-first),
//     while its new task is not ready yet (running, and healthy when the task reports health), and
//     for `delayMs` after it became ready. (A restart of a slot of the current spec counts as busy
//     while it starts, too: the controller does not tell it apart from an update.)
//   - stop-first: the outdated task is shut down, and the new one created once it has stopped.
//     start-first: the new task is created beside the old one, which is shut down once the new one
//     is ready, so the number of ready tasks never drops below the desired count.
//   - A task of this rollout that fails (ends on its own, or reports unhealthy) within `monitorMs`
//     of starting to run (status.startedAt) counts as a failure; so does one that fails before it
//     ever ran (its image could not be pulled, its container not created). With monitorMs 0 only
//     those count. A task with a health check is ready only once healthy, so a new task that
//     never becomes healthy holds its slot (start-first keeps the old task serving) until it is
//     unhealthy, which is a failure of the rollout. When failures /
//     slots to update exceed `maxFailureRatio`, `failureAction` applies: pause stops starting slots,
//     continue ignores it, rollback restores `previousSpec` (a failing rollback pauses instead).
//     A paused rollout stays paused until the spec changes again (or `tsctl rollout undo`).
//   - The rollout is completed when no slot is outdated or busy and `monitorMs` has passed since the
//     last new task became ready.
import type { RolloutRecord, Service, ServiceSpec, ServiceStatus, Task, UpdatePolicy, UpdateStatus } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import { canonicalJson } from '../store/object-store.js';
import { describeSpecChange } from './rollout-change.js';

export const DEFAULT_UPDATE_POLICY: Readonly<Required<UpdatePolicy>> = {
  parallelism: 1,
  delayMs: 0,
  failureAction: 'pause',
  monitorMs: 5_000,
  maxFailureRatio: 0,
  order: 'stop-first',
};

/** Failed task names kept on the service status per rollout. */
export const MAX_RECORDED_FAILURES = 50;

/** Rollout records kept on the service status. */
export const ROLLOUT_HISTORY_LIMIT = 10;

/** The spec minus what does not change a task: the replica count and the update policies. */
export function taskTemplateOf(spec: ServiceSpec): ServiceSpec {
  const { replicas: _replicas, updateConfig: _update, rollbackConfig: _rollback, ...template } = spec;
  return template;
}

export function templateKey(spec: ServiceSpec): string {
  return canonicalJson(taskTemplateOf(spec));
}

/**
 * Template keys of task specs, computed once per spec object. A pass compares every task's spec
 * with the service's, several times: uncached, 100,000 tasks cost 3.5 s of event loop per pass.
 * Sound because a task's spec is never changed in place: it is a copy made when the task is
 * created, and the informer replaces the whole object on every change.
 */
const taskTemplateKeys = new WeakMap<ServiceSpec, string>();

export function taskTemplateKey(task: Task): string {
  const spec = task.spec.spec;
  let key = taskTemplateKeys.get(spec);
  if (key === undefined) {
    key = templateKey(spec);
    taskTemplateKeys.set(spec, key);
  }
  return key;
}

/** One slot of a replicated service, or one node of a global service, with all its tasks. */
export interface SlotView {
  key: string;
  tasks: Task[];
}

export interface RolloutInput {
  service: Service;
  /** The slots the service should have (in range / eligible), in the order they are updated. */
  slots: SlotView[];
  /**
   * Further slots the service should have that hold no task at all, counted rather than listed:
   * such a slot is neither outdated nor busy, so only the total of a rollback counts it.
   */
  emptySlots?: number;
  now: number;
}

export interface RolloutPlan {
  /** Outdated slots that begin their update in this pass. */
  start: Set<string>;
  order: 'stop-first' | 'start-first';
  /** A write to the service: new status, and for an automatic rollback the restored spec. */
  write?: { spec: ServiceSpec; status: ServiceStatus };
  /** The spec is being rolled back in this very pass: leave the tasks alone until the write is seen. */
  hold: boolean;
  requeueAfterMs?: number;
}

export function isRollingBack(update: UpdateStatus | undefined): boolean {
  return update?.state === 'rollback_started' || update?.state === 'rollback_paused' || update?.state === 'rollback_completed';
}

export function isPaused(update: UpdateStatus | undefined): boolean {
  return update?.state === 'paused' || update?.state === 'rollback_paused';
}

function isActive(update: UpdateStatus | undefined): boolean {
  return update?.state === 'updating' || update?.state === 'rollback_started';
}

/** The policy in force: rollbackConfig while rolling back, updateConfig otherwise, over Swarm's defaults. */
export function policyFor(spec: ServiceSpec, update: UpdateStatus | undefined): Required<UpdatePolicy> {
  const chosen = isRollingBack(update) ? spec.rollbackConfig : spec.updateConfig;
  const policy: Required<UpdatePolicy> = { ...DEFAULT_UPDATE_POLICY };
  for (const [k, v] of Object.entries(chosen ?? {})) if (v !== undefined) Object.assign(policy, { [k]: v });
  return policy;
}

/** Running, and healthy when the task reports health at all. */
export function isReady(t: Task): boolean {
  return t.status.state === 'running' && (t.status.health === undefined || t.status.health === 'healthy');
}

function isLive(t: Task): boolean {
  return t.desiredState === 'running' && !isTerminal(t.status.state);
}

function millis(timestamp: string | undefined): number {
  const ms = timestamp ? Date.parse(timestamp) : NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

function createdMs(t: Task): number {
  return millis(t.metadata.createdAt ?? t.status.timestamp);
}

/** When a ready task became ready: healthy since, or running since when it has no health check. */
export function readySince(t: Task): number {
  if (t.status.health !== undefined) return millis(t.status.healthChangedAt ?? t.status.timestamp);
  return millis(t.status.startedAt ?? t.status.timestamp);
}

/**
 * When a task of the rollout failed (ended on its own, or became unhealthy), undefined if it has
 * not. An unhealthy task counts even once the controller has shut it down.
 */
function failedAt(t: Task): number | undefined {
  if (t.status.health === 'unhealthy') return millis(t.status.healthChangedAt ?? t.status.timestamp);
  if (t.desiredState === 'running' && isTerminal(t.status.state)) return millis(t.status.timestamp);
  return undefined;
}

/** Where a slot stands against the current template. */
export interface SlotState {
  /** No live task of the current template, but a live one of an older template. */
  outdated: boolean;
  /** Its new task is not ready yet, or (stop-first) its old task is still stopping. */
  inFlight: boolean;
  /** When its current live task became ready, if it is. */
  readyAt?: number;
  currentCreatedAt?: number;
}

export function slotState(tasks: readonly Task[], template: string, order: 'stop-first' | 'start-first'): SlotState {
  const live = tasks.filter(isLive);
  const current = live.filter((t) => taskTemplateKey(t) === template);
  const old = live.filter((t) => taskTemplateKey(t) !== template);
  if (current.length === 0) {
    if (old.length > 0) return { outdated: true, inFlight: false };
    // Between the old task and the new one (stop-first: the old one stopping, or stopped and the
    // new one about to be created): the slot's newest task is still an outdated one. A slot whose
    // newest task is of the current template and ended is in the restart policy's hands instead,
    // and does not hold up the rollout.
    const newest = [...tasks].sort((a, b) => createdMs(b) - createdMs(a))[0];
    const between = newest !== undefined && taskTemplateKey(newest) !== template;
    const stopping = newest !== undefined && newest.desiredState === 'shutdown' && !isTerminal(newest.status.state);
    return { outdated: false, inFlight: between && (order === 'stop-first' || !stopping) };
  }
  const ready = current.filter(isReady);
  if (ready.length === 0) return { outdated: false, inFlight: true };
  // Loops, not Math.min(...list): spreading a list of 100,000 overflows the stack.
  let readyAt = Infinity;
  let currentCreatedAt = Infinity;
  for (const t of ready) {
    readyAt = Math.min(readyAt, readySince(t));
    currentCreatedAt = Math.min(currentCreatedAt, createdMs(t));
  }
  return { outdated: false, inFlight: false, readyAt, currentCreatedAt };
}

/** Tasks of the current template created since `since` that failed within their monitor window. */
export function monitorFailures(slots: readonly SlotView[], template: string, since: number, monitorMs: number): string[] {
  const failed: string[] = [];
  for (const slot of slots) {
    for (const t of slot.tasks) {
      if (taskTemplateKey(t) !== template || createdMs(t) < since) continue;
      const at = failedAt(t);
      if (at === undefined) continue;
      // Never ran, or has a health check and never became healthy: it never was up, which is
      // always a failure of the rollout (a check that cannot pass fails long after any monitor
      // window counted from the start). Otherwise the window counts from when it was up.
      const upAt = t.status.health !== undefined ? t.status.healthyAt : t.status.startedAt;
      if (upAt === undefined || at - millis(upAt) <= monitorMs) failed.push(t.metadata.name);
    }
  }
  return failed.sort();
}

function record(history: readonly RolloutRecord[] | undefined, entry: RolloutRecord): RolloutRecord[] {
  return [...(history ?? []), entry].slice(-ROLLOUT_HISTORY_LIMIT);
}

/** The spec to restore on rollback: the old template, today's replica count and policies. */
export function rollbackSpec(current: ServiceSpec, previous: ServiceSpec): ServiceSpec {
  const spec: ServiceSpec = { ...taskTemplateOf(previous) };
  if (current.replicas !== undefined) spec.replicas = current.replicas;
  if (current.updateConfig !== undefined) spec.updateConfig = current.updateConfig;
  if (current.rollbackConfig !== undefined) spec.rollbackConfig = current.rollbackConfig;
  return spec;
}

/**
 * The status as it should be before deciding anything else: records a new rollout when the spec's
 * template differs from the one rolled out last.
 */
export function noteSpecChange(service: Service, slots: readonly SlotView[], now: number): ServiceStatus {
  const status: ServiceStatus = { ...service.status };
  const spec = service.spec;
  const template = templateKey(spec);
  const generation = service.metadata.generation ?? 1;
  const at = new Date(now).toISOString();
  const outdatedTasks = slots.flatMap((s) => s.tasks.filter((t) => isLive(t) && taskTemplateKey(t) !== template));

  let previous: ServiceSpec | undefined;
  if (status.currentSpec === undefined) {
    if (outdatedTasks.length === 0) {
      status.currentSpec = structuredClone(spec);
      status.history = record(status.history, { generation, at: service.metadata.createdAt ?? at, kind: 'create', change: 'created' });
      return status;
    }
    // Tasks older than any recorded rollout (a status written before rollouts existed): their
    // spec is the best guess at what ran before.
    previous = [...outdatedTasks].sort((a, b) => createdMs(b) - createdMs(a))[0]!.spec.spec;
  } else if (templateKey(status.currentSpec) === template) {
    return status;
  } else {
    previous = status.currentSpec;
  }

  const rollback = status.previousSpec !== undefined && templateKey(status.previousSpec) === template;
  status.previousSpec = structuredClone(previous);
  status.currentSpec = structuredClone(spec);
  status.update = {
    state: rollback ? 'rollback_started' : 'updating',
    message: rollback ? 'rollback to the previous spec requested' : 'update in progress',
    startedAt: at,
    total: slots.filter((s) => slotState(s.tasks, template, 'start-first').outdated).length,
    failedTasks: [],
  };
  status.history = record(status.history, {
    generation,
    at,
    kind: rollback ? 'rollback' : 'update',
    change: describeSpecChange(previous, spec),
  });
  return status;
}

export function planRollout(input: RolloutInput): RolloutPlan {
  const { service, slots, now } = input;
  const before = service.status ?? {};
  const status = noteSpecChange(service, slots, now);
  const template = templateKey(service.spec);
  const policy = policyFor(service.spec, status.update);
  const plan: RolloutPlan = { start: new Set(), order: policy.order, hold: false };
  const states = slots.map((s) => ({ key: s.key, state: slotState(s.tasks, template, policy.order) }));
  const update = status.update ? { ...status.update } : undefined;
  const requeue = (ms: number) => {
    plan.requeueAfterMs = Math.min(plan.requeueAfterMs ?? Infinity, Math.max(0, ms));
  };

  if (update && isActive(update)) {
    const since = millis(update.startedAt);
    const failed = new Set(update.failedTasks ?? []);
    let culprit = update.failedTasks?.at(-1);
    for (const name of monitorFailures(slots, template, since, policy.monitorMs)) {
      // Bounded, so a crash loop under failureAction continue cannot grow the service object
      // without end; past the bound the ratio is exceeded whatever it is.
      if (failed.has(name) || failed.size >= MAX_RECORDED_FAILURES) continue;
      failed.add(name);
      culprit = name;
    }
    update.failedTasks = [...failed].sort();
    const total = Math.max(update.total ?? 0, 1);
    const overRatio = failed.size > 0 && failed.size / total > policy.maxFailureRatio;
    const rollingBack = update.state === 'rollback_started';

    if (overRatio && policy.failureAction !== 'continue') {
      const why = `task ${culprit ?? '?'} failed within the monitor period (${failed.size} of ${total} failed)`;
      if (policy.failureAction === 'rollback' && !rollingBack && status.previousSpec !== undefined) {
        const restored = rollbackSpec(service.spec, status.previousSpec);
        const generation = (service.metadata.generation ?? 1) + 1;
        const at = new Date(now).toISOString();
        plan.hold = true;
        plan.write = {
          spec: restored,
          status: {
            ...status,
            previousSpec: structuredClone(service.spec),
            currentSpec: structuredClone(restored),
            update: {
              state: 'rollback_started',
              message: `update rolled back: ${why}`,
              rollbackReason: why,
              startedAt: at,
              total: states.filter((s) => !s.state.outdated).length + (input.emptySlots ?? 0),
              failedTasks: [],
            },
            history: record(status.history, { generation, at, kind: 'rollback', change: `automatic rollback: ${describeSpecChange(service.spec, restored)}` }),
          },
        };
        return plan;
      }
      update.state = rollingBack ? 'rollback_paused' : 'paused';
      const reason = policy.failureAction === 'rollback' && !rollingBack ? '; no previous spec to roll back to' : '';
      update.message = `${rollingBack ? 'rollback' : 'update'} paused: ${why}${reason}`;
    } else {
      startSlots(plan, states, policy, since, now, requeue);
      const busy = states.some((s) => s.state.outdated || s.state.inFlight);
      if (!busy) {
        let lastReady = since;
        for (const { state } of states) {
          if (state.readyAt !== undefined && (state.currentCreatedAt ?? 0) >= since) lastReady = Math.max(lastReady, state.readyAt);
        }
        const monitorEnds = lastReady + policy.monitorMs;
        if (now >= monitorEnds) {
          update.state = rollingBack ? 'rollback_completed' : 'completed';
          update.message = rollingBack
            ? `rollback completed${update.rollbackReason ? ` (the update failed: ${update.rollbackReason})` : ''}`
            : 'update completed';
          update.completedAt = new Date(now).toISOString();
        } else {
          requeue(monitorEnds - now);
        }
      }
    }
    status.update = update;
  } else if (!isPaused(update)) {
    // No rollout under way (never updated, or completed): tasks that are outdated anyway (a node
    // that comes back with an old task) are still replaced by the policy's pace.
    startSlots(plan, states, policy, Infinity, now, requeue);
  }

  if (canonicalJson(status) !== canonicalJson(before)) plan.write = { spec: service.spec, status };
  return plan;
}

function startSlots(
  plan: RolloutPlan,
  states: ReadonlyArray<{ key: string; state: SlotState }>,
  policy: Required<UpdatePolicy>,
  since: number,
  now: number,
  requeue: (ms: number) => void,
): void {
  let busy = 0;
  for (const { state } of states) {
    if (state.inFlight) busy++;
    else if (policy.delayMs > 0 && state.readyAt !== undefined && (state.currentCreatedAt ?? 0) >= since && now < state.readyAt + policy.delayMs) {
      busy++;
      requeue(state.readyAt + policy.delayMs - now);
    }
  }
  let free = policy.parallelism === 0 ? Infinity : policy.parallelism - busy;
  for (const { key, state } of states) {
    if (free <= 0) break;
    if (!state.outdated) continue;
    plan.start.add(key);
    free--;
  }
}
