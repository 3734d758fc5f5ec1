// The scheduler: a pure function from a snapshot of nodes and tasks to placements for a batch of
// pending tasks, with a reason for every task it could not place. No I/O, clocks or randomness,
// so the scheduling controller can run it on every change and tests can run it on any snapshot.
import { isTerminal, type Node, type Task } from '../resources/types.js';
import { ConstraintSyntaxError, parseConstraintOrThrow, type Constraint } from './constraints.js';
import { availabilityRejection, constraintRejection, demandOf, resourceRejection, type Demand } from './filters.js';
import { compareForSpread, type NodeLoad } from './score.js';

export interface ScheduleInput {
  nodes: Node[];
  /** All non-terminal tasks; those with a nodeName count against that node's capacity. */
  tasks: Task[];
  /** Tasks without a node, placed in the given order. */
  pending: Task[];
}

export interface ScheduleResult {
  placements: Array<{ task: string; node: string }>;
  unplaced: Array<{ task: string; reason: string }>;
}

/** Mutable accounting for one node during a batch. */
interface NodeSlot {
  node: Node;
  free: Demand;
  totalTasks: number;
}

/** Tasks of one service with the same constraints get the same node-only filter results. */
interface TaskGroup {
  serviceKey: string;
  constraints: Constraint[];
  /** Indexes of nodes that are ready and active. */
  available: number[];
  /** Per node index: why its constraints reject the task, or undefined. */
  constraintReasons: Array<string | undefined>;
  /** Why the unavailable nodes were rejected: reason → count. */
  availabilityReasons: Map<string, number>;
  invalid?: string;
}

export function schedule(input: ScheduleInput): ScheduleResult {
  const nodes = [...input.nodes].sort((a, b) => compareStrings(a.metadata.name, b.metadata.name));
  const slots: NodeSlot[] = nodes.map((node) => ({
    node,
    free: { memoryBytes: node.status.resources.memoryBytes, nanoCpus: node.status.resources.nanoCpus },
    totalTasks: 0,
  }));
  const indexByName = new Map(nodes.map((n, i) => [n.metadata.name, i]));
  // Per service, the number of its tasks on each node (by node index).
  const serviceCounts = new Map<string, Int32Array>();
  const countsFor = (serviceKey: string): Int32Array => {
    let counts = serviceCounts.get(serviceKey);
    if (!counts) {
      counts = new Int32Array(nodes.length);
      serviceCounts.set(serviceKey, counts);
    }
    return counts;
  };

  for (const task of input.tasks) {
    if (task.nodeName === undefined || isTerminal(task.status.state)) continue;
    const index = indexByName.get(task.nodeName);
    if (index === undefined) continue;
    const slot = slots[index] as NodeSlot;
    // A task being shut down still holds its reservation until it has stopped...
    const demand = demandOf(task);
    slot.free.memoryBytes -= demand.memoryBytes;
    slot.free.nanoCpus -= demand.nanoCpus;
    // ...but it is leaving, so it does not count when spreading new tasks.
    if (task.desiredState === 'running') {
      slot.totalTasks++;
      const counts = countsFor(serviceKeyOf(task));
      counts[index] = (counts[index] as number) + 1;
    }
  }

  const groups = new Map<string, TaskGroup>();
  const result: ScheduleResult = { placements: [], unplaced: [] };
  const candidate: NodeLoad = { serviceTasks: 0, totalTasks: 0, name: '' };
  const best: NodeLoad = { serviceTasks: 0, totalTasks: 0, name: '' };

  for (const task of input.pending) {
    const group = groupFor(groups, task, slots);
    if (group.invalid !== undefined) {
      result.unplaced.push({ task: task.metadata.name, reason: group.invalid });
      continue;
    }
    const demand = demandOf(task);
    const counts = countsFor(group.serviceKey);
    let bestIndex = -1;
    let rejections: Map<string, number> | undefined;
    for (const index of group.available) {
      const slot = slots[index] as NodeSlot;
      const rejection = resourceRejection(slot.free, demand) ?? group.constraintReasons[index];
      if (rejection !== undefined) {
        rejections ??= new Map();
        rejections.set(rejection, (rejections.get(rejection) ?? 0) + 1);
        continue;
      }
      candidate.serviceTasks = counts[index] as number;
      candidate.totalTasks = slot.totalTasks;
      candidate.name = slot.node.metadata.name;
      if (bestIndex < 0 || compareForSpread(candidate, best) < 0) {
        bestIndex = index;
        Object.assign(best, candidate);
      }
    }
    if (bestIndex < 0) {
      result.unplaced.push({ task: task.metadata.name, reason: explain(nodes.length, group.availabilityReasons, rejections) });
      continue;
    }
    const chosen = slots[bestIndex] as NodeSlot;
    chosen.free.memoryBytes -= demand.memoryBytes;
    chosen.free.nanoCpus -= demand.nanoCpus;
    chosen.totalTasks++;
    counts[bestIndex] = (counts[bestIndex] as number) + 1;
    result.placements.push({ task: task.metadata.name, node: chosen.node.metadata.name });
  }
  return result;
}

function serviceKeyOf(task: Task): string {
  return `${task.spec.serviceStack}/${task.spec.serviceName}`;
}

function groupFor(groups: Map<string, TaskGroup>, task: Task, slots: NodeSlot[]): TaskGroup {
  const rawConstraints = task.spec.spec.placement?.constraints ?? [];
  const serviceKey = serviceKeyOf(task);
  const id = `${serviceKey}\u0000${rawConstraints.join('\u0000')}`;
  const existing = groups.get(id);
  if (existing) return existing;

  const group: TaskGroup = {
    serviceKey,
    constraints: [],
    available: [],
    constraintReasons: new Array<string | undefined>(slots.length),
    availabilityReasons: new Map(),
  };
  groups.set(id, group);
  try {
    group.constraints = rawConstraints.map(parseConstraintOrThrow);
  } catch (err) {
    if (!(err instanceof ConstraintSyntaxError)) throw err;
    group.invalid = err.message;
    return group;
  }
  slots.forEach((slot, index) => {
    const unavailable = availabilityRejection(slot.node);
    if (unavailable !== undefined) {
      group.availabilityReasons.set(unavailable, (group.availabilityReasons.get(unavailable) ?? 0) + 1);
      return;
    }
    group.available.push(index);
    group.constraintReasons[index] = constraintRejection(slot.node, group.constraints);
  });
  return group;
}

// Reasons are listed in the order the filters run, as in
// "no suitable node (3 nodes: 1 not ready, 2 insufficient memory, 1 failed constraint node.role==worker)".
const REASON_ORDER = ['not ready', 'paused', 'draining', 'insufficient memory', 'insufficient cpu'];

function reasonRank(reason: string): number {
  const i = REASON_ORDER.indexOf(reason);
  return i >= 0 ? i : REASON_ORDER.length; // constraint failures come last
}

export function explain(
  nodeCount: number,
  availabilityReasons: ReadonlyMap<string, number>,
  otherReasons: ReadonlyMap<string, number> | undefined,
): string {
  if (nodeCount === 0) return 'no suitable node (no nodes)';
  const all = new Map(availabilityReasons);
  for (const [reason, count] of otherReasons ?? []) all.set(reason, (all.get(reason) ?? 0) + count);
  const parts = [...all]
    .sort(([a], [b]) => reasonRank(a) - reasonRank(b) || compareStrings(a, b))
    .map(([reason, count]) => `${count} ${reason}`);
  return `no suitable node (${nodeCount} node${nodeCount === 1 ? '' : 's'}: ${parts.join(', ')})`;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
