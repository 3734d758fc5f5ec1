// The service controller's decision, as a pure function: given a replicated service and every task
// it has (in any state), which tasks to create, which to shut down and which to delete. The
// controller wiring (service-controller.ts) applies the decision and calls again on any change,
// so each rule only has to move the state one step closer to the desired one.
//
// Terms used below:
//   live      desiredState 'running' and not yet in a terminal state
//   stopping  desiredState 'shutdown' and not yet terminal: an agent (or, for a task never
//             placed, the scheduling controller) still has to end it; it is left alone
//   template  the service spec without `replicas` and the update policies: a task is outdated when
//             its copy of the spec differs from the service's template. Changing only the replica
//             count is a scale, not an update, so it never replaces running tasks, even though it
//             bumps the service's metadata.generation.
// Outdated tasks are replaced at the pace of the rolling update (rollout.ts), which decides which
// slots may begin their update in this pass; this file decides what that means for each slot.
import {
  API_VERSION,
  TASK_STATES,
  isGlobalMode,
  isJobMode,
  isTerminal,
  type Service,
  type ServiceSpec,
  type ServiceStatus,
  type Task,
} from '../../common/resources/types.js';
import { backoffResetAfterMs, restartDelayMs, type RestartPolicy } from './restart-backoff.js';
import { isReady, planRollout, taskTemplateKey, templateKey, type RolloutPlan, type SlotView } from './rollout.js';
import { MAX_REPLICAS } from '../../common/resources/limits.js';
import { randomTaskId, taskName, type TaskIdGenerator } from './task-naming.js';

export { taskTemplateOf, templateKey } from './rollout.js';

/**
 * The restart policy the controller applies. A job's tasks run to completion, so a job restarts
 * only failed tasks unless told otherwise (Swarm's default for jobs); `any` is refused by the schema.
 */
export function restartPolicyOf(spec: ServiceSpec): RestartPolicy | undefined {
  if (!isJobMode(spec.mode)) return spec.restart;
  return { ...spec.restart, condition: spec.restart?.condition ?? 'on-failure' };
}

/** Terminal tasks kept per slot (Swarm's task-history-limit default), for `tsctl describe`. */
export const TASK_HISTORY_LIMIT = 5;

/**
 * Task writes (creates, shutdowns, deletions) one pass of the controller makes at most. A service
 * scaled to 100,000 converges over many passes instead of one that holds the manager's event loop
 * (and Raft heartbeats) for half a minute; each pass decides afresh, so nothing is lost in between.
 */
export const MAX_TASK_WRITES_PER_PASS = 1000;

export interface ReconcileServiceInput {
  /** undefined when the service has been deleted. */
  service: Service | undefined;
  serviceKey: { stack: string; name: string };
  /** Every task of this service, in any state. */
  tasks: Task[];
  /** Current time in ms since the epoch. */
  now: number;
}

export interface ReconcileServiceDecision {
  /** New task objects to store. */
  create: Task[];
  /** Names of tasks whose desiredState must become 'shutdown'. */
  shutdown: string[];
  /** Names of terminal tasks to delete from the store. */
  remove: string[];
  /** Call again after this long: a slot is waiting out its restart back-off, or a rollout a timer. */
  requeueAfterMs?: number;
  /** Names of the created tasks that restart a slot whose task ended on its own (failed, exited, unhealthy). */
  restarts?: string[];
  /** Write to the service first: its rollout status, and for an automatic rollback its spec. */
  service?: { spec: ServiceSpec; status: ServiceStatus };
}

export function reconcileService(input: ReconcileServiceInput, newTaskId: TaskIdGenerator = randomTaskId): ReconcileServiceDecision {
  const { service, tasks } = input;
  if (!service) return reconcileDeleted(tasks);
  if (isGlobalMode(service.spec.mode)) {
    throw new Error('reconcileService handles replicated services; global ones go to reconcileGlobalService');
  }

  // The schema refuses more than MAX_REPLICAS; a service stored before that limit existed gets no more either.
  const replicas = Math.min(MAX_REPLICAS, Math.max(0, service.spec.replicas ?? 1));
  const template = templateKey(service.spec);
  const policy = restartPolicyOf(service.spec);
  const historyLimit = Math.max(TASK_HISTORY_LIMIT, (policy?.maxAttempts ?? 0) + 1);

  const create: Task[] = [];
  const shutdown: Array<{ name: string; slot: number }> = [];
  const remove: string[] = [];
  const restarts: string[] = [];
  let requeueAfterMs: number | undefined;

  // Only slots with tasks are materialised: a service of 100,000 replicas that has few tasks yet
  // must not cost 100,000 slot objects in every pass.
  const bySlot = groupBySlot(tasks);
  const occupied = [...bySlot].sort(([a], [b]) => a - b);
  const inRange: SlotView[] = occupied.filter(([slot]) => slot >= 1 && slot <= replicas).map(([slot, ts]) => ({ key: String(slot), tasks: ts }));
  const plan = planRollout({ service, slots: inRange, emptySlots: replicas - inRange.length, now: input.now });
  if (plan.requeueAfterMs !== undefined) requeueAfterMs = plan.requeueAfterMs;

  for (const slot of slotsInOrder(
    occupied.map(([slot]) => slot),
    replicas,
  )) {
    const slotTasks = bySlot.get(slot) ?? [];
    if (slotTasks.length === 0 && create.length >= MAX_TASK_WRITES_PER_PASS) {
      // An empty slot only ever gets a new task, and this pass has made all it may.
      requeueAfterMs = 0;
      continue;
    }
    const live = slotTasks.filter(isLive);
    const terminal = slotTasks.filter((t) => isTerminal(t.status.state)).sort(newestFirst);

    if (slot < 1 || slot > replicas) {
      // Scaled away: end whatever still runs, and drop the slot's history with it.
      for (const t of live) shutdown.push({ name: t.metadata.name, slot });
      for (const t of terminal) remove.push(t.metadata.name);
      continue;
    }

    if (!plan.hold) {
      const decision = decideSlot(String(slot), slotTasks, { template, policy, now: input.now, plan });
      for (const t of decision.shutdown) shutdown.push({ name: t.metadata.name, slot });
      if (decision.create && create.length < MAX_TASK_WRITES_PER_PASS) {
        const task = newTask(service, input.serviceKey, slot, newTaskId(), input.now);
        create.push(task);
        if (decision.restart) restarts.push(task.metadata.name);
      } else if (decision.create) requeueAfterMs = 0; // the next pass creates the rest
      if (decision.waitMs !== undefined) requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, decision.waitMs);
    }

    for (const t of terminal.slice(historyLimit)) remove.push(t.metadata.name);
  }

  // Scale-down ends the highest slots first, so the survivors are always slots 1..n.
  shutdown.sort((a, b) => b.slot - a.slot);
  const decision: ReconcileServiceDecision = { create, shutdown: shutdown.map((s) => s.name), remove };
  if (requeueAfterMs !== undefined) decision.requeueAfterMs = requeueAfterMs;
  if (restarts.length > 0) decision.restarts = restarts;
  if (plan.write) decision.service = plan.write;
  return decision;
}

export interface SlotContext {
  template: string;
  policy: RestartPolicy | undefined;
  now: number;
  plan: RolloutPlan;
}

export interface SlotDecision {
  shutdown: Task[];
  create: boolean;
  waitMs?: number;
  /** The task to create restarts the slot: its last task ended on its own (for the metrics). */
  restart?: boolean;
}

/**
 * One slot (or one node of a global service): keep at most one live task of the current template,
 * replace an outdated one only when the rollout lets the slot begin, in the rollout's order.
 */
export function decideSlot(key: string, slotTasks: Task[], ctx: SlotContext): SlotDecision {
  const all = slotTasks.filter(isLive);
  // An unhealthy task is shut down like one that failed; whether it is replaced is the restart
  // policy's call (decideReplacement), as in Swarm.
  const unhealthy = all.filter(isUnhealthy);
  const decision = decideHealthySlot(
    key,
    slotTasks,
    all.filter((t) => !isUnhealthy(t)),
    ctx,
  );
  return unhealthy.length === 0 ? decision : { ...decision, shutdown: [...unhealthy, ...decision.shutdown] };
}

function decideHealthySlot(key: string, slotTasks: Task[], live: Task[], ctx: SlotContext): SlotDecision {
  const current = live.filter((t) => taskTemplateKey(t) === ctx.template).sort(bestFirst);
  const old = live.filter((t) => taskTemplateKey(t) !== ctx.template).sort(bestFirst);
  const keep = current[0];
  if (keep) {
    // start-first: the old task serves until the new one is ready.
    const overlap = !isReady(keep) && old.length > 0;
    return { shutdown: live.filter((t) => t !== keep && !(overlap && t === old[0])), create: false };
  }
  if (old.length > 0) {
    const duplicates = old.slice(1);
    if (!ctx.plan.start.has(key)) return { shutdown: duplicates, create: false };
    // stop-first: the new task is created once the old one has stopped (next passes).
    if (ctx.plan.order === 'stop-first') return { shutdown: old, create: false };
    return { shutdown: duplicates, ...decideReplacement(slotTasks, ctx.template, ctx.policy, ctx.now) };
  }
  const oldStopping = slotTasks.some((t) => t.desiredState === 'shutdown' && !isTerminal(t.status.state) && taskTemplateKey(t) !== ctx.template);
  if (oldStopping && ctx.plan.order === 'stop-first') return { shutdown: [], create: false };
  return { shutdown: [], ...decideReplacement(slotTasks, ctx.template, ctx.policy, ctx.now) };
}

/** A deleted service: stop what runs; delete what has stopped. Stopping tasks are waited for. */
export function reconcileDeleted(tasks: Task[]): ReconcileServiceDecision {
  const shutdown: string[] = [];
  const remove: string[] = [];
  for (const t of tasks) {
    if (isTerminal(t.status.state)) remove.push(t.metadata.name);
    else if (t.desiredState === 'running') shutdown.push(t.metadata.name);
  }
  return { create: [], shutdown, remove };
}

interface ReplacementDecision {
  create: boolean;
  /** Set when a replacement is due but the back-off has not passed yet. */
  waitMs?: number;
  /** Set when the replacement restarts a task that ended on its own (not one we stopped, not a lost node's). */
  restart?: boolean;
}

/**
 * A slot without a live current task. Whether it gets a new one depends on how its newest task
 * ended: stopped by us (scale, update) or outdated → replace now; ended on its own → the restart
 * policy and back-off decide.
 */
export function decideReplacement(slotTasks: Task[], template: string, policy: RestartPolicy | undefined, now: number): ReplacementDecision {
  const newest = [...slotTasks].sort(newestFirst)[0];
  if (!newest || (newest.desiredState === 'shutdown' && !isUnhealthy(newest)) || taskTemplateKey(newest) !== template) {
    return { create: true };
  }
  // The newest task wanted to run and is no longer live (or is unhealthy), so it failed on its own.
  if (!restartAllowed(newest, policy)) return { create: false };

  const ownEnds = slotTasks.filter((t) => endedOnItsOwn(t) && taskTemplateKey(t) === template).sort(newestFirst);
  const maxAttempts = policy?.maxAttempts ?? 0;
  if (maxAttempts > 0) {
    // With a window, only the ends inside it count; once enough of them have aged out of it,
    // restarts are allowed again (Swarm's restart window), so the caller is told when.
    const windowMs = policy?.windowMs;
    const counted = windowMs !== undefined && windowMs > 0 ? ownEnds.filter((t) => now - endedAtMs(t) < windowMs) : ownEnds;
    // The first task is not a restart: after maxAttempts restarts, maxAttempts + 1 tasks have ended.
    if (counted.length > maxAttempts) {
      if (windowMs === undefined || windowMs <= 0) return { create: false };
      // Newest first: the (maxAttempts + 1)-th newest end must leave the window.
      const blocking = counted[maxAttempts] as Task;
      return { create: false, waitMs: Math.max(1, endedAtMs(blocking) + windowMs - now) };
    }
  }

  const delay = restartDelayMs(policy, consecutiveFailures(ownEnds, policy));
  const endedAt = Date.parse(newest.status.timestamp);
  const elapsed = Number.isNaN(endedAt) ? Infinity : now - endedAt;
  if (elapsed < delay) return { create: false, waitMs: delay - elapsed };
  // An orphaned task's node went away: rescheduling it is not a restart of a failing task.
  return newest.status.state === 'orphaned' ? { create: true } : { create: true, restart: true };
}

function endedAtMs(t: Task): number {
  const at = Date.parse(t.status.timestamp);
  return Number.isNaN(at) ? 0 : at;
}

function restartAllowed(ended: Task, policy: RestartPolicy | undefined): boolean {
  // An orphaned task did not exit: its node went away. It is rescheduled whatever the condition,
  // which is about what to do when the container itself stops.
  if (ended.status.state === 'orphaned') return true;
  switch (policy?.condition ?? 'any') {
    case 'none':
      return false;
    case 'on-failure':
      return !succeeded(ended);
    case 'any':
      return true;
  }
}

function succeeded(t: Task): boolean {
  return t.status.state === 'complete' && (t.status.exitCode ?? 0) === 0;
}

/**
 * Ends in a row, newest first, that count towards the back-off. A task that ran long enough to be
 * considered healthy breaks the streak (its own end still counts, as one).
 */
function consecutiveFailures(ownEndsNewestFirst: Task[], policy: RestartPolicy | undefined): number {
  const resetAfter = backoffResetAfterMs(policy);
  let count = 0;
  for (const t of ownEndsNewestFirst) {
    count++;
    if (ranFor(t) >= resetAfter) break;
  }
  return Math.max(count, 1);
}

/** How long a terminal task existed, from creation to its last state change; 0 if unknown. */
function ranFor(t: Task): number {
  const created = t.metadata.createdAt ? Date.parse(t.metadata.createdAt) : NaN;
  const ended = Date.parse(t.status.timestamp);
  return Number.isNaN(created) || Number.isNaN(ended) ? 0 : ended - created;
}

export function isLive(t: Task): boolean {
  return t.desiredState === 'running' && !isTerminal(t.status.state);
}

/** Its health check failed: the controller shuts it down, and it counts as a failure of the task. */
export function isUnhealthy(t: Task): boolean {
  return t.status.health === 'unhealthy';
}

function endedOnItsOwn(t: Task): boolean {
  return (t.desiredState === 'running' && isTerminal(t.status.state)) || isUnhealthy(t);
}

/** Every slot to look at, ascending: those with tasks below 1, then 1..replicas, then those with tasks above. */
function* slotsInOrder(occupied: readonly number[], replicas: number): Generator<number> {
  for (const slot of occupied) if (slot < 1) yield slot;
  for (let slot = 1; slot <= replicas; slot++) yield slot;
  for (const slot of occupied) if (slot > replicas) yield slot;
}

function groupBySlot(tasks: Task[]): Map<number, Task[]> {
  const bySlot = new Map<number, Task[]>();
  for (const t of tasks) {
    const list = bySlot.get(t.spec.slot);
    if (list) list.push(t);
    else bySlot.set(t.spec.slot, [t]);
  }
  return bySlot;
}

/** Creation order; tasks without createdAt (not stored yet) fall back to their last state change. */
export function newestFirst(a: Task, b: Task): number {
  return (
    millis(b.metadata.createdAt ?? b.status.timestamp) - millis(a.metadata.createdAt ?? a.status.timestamp) ||
    millis(b.status.timestamp) - millis(a.status.timestamp) ||
    compareDesc(a.metadata.name, b.metadata.name)
  );
}

/** Timestamps compared as instants, not strings ("…00Z" and "…00.500Z" do not sort as text). */
function millis(timestamp: string | undefined): number {
  const ms = timestamp ? Date.parse(timestamp) : NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

/** Among duplicate live tasks of a slot, keep the one furthest along, then the newest. */
export function bestFirst(a: Task, b: Task): number {
  return TASK_STATES.indexOf(b.status.state) - TASK_STATES.indexOf(a.status.state) || newestFirst(a, b);
}

function compareDesc(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

export function newTask(service: Service, key: { stack: string; name: string }, slot: number, id: string, now: number): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: taskName(key.stack, key.name, slot, id), ...(key.stack ? { stack: key.stack } : {}) },
    spec: {
      serviceName: key.name,
      serviceStack: key.stack,
      serviceGeneration: service.metadata.generation ?? 1,
      slot,
      spec: structuredClone(service.spec),
    },
    desiredState: 'running',
    status: { state: 'new', timestamp: new Date(now).toISOString() },
  };
}
