// The scheduler: a pure function from a snapshot of nodes and tasks to placements for a batch of
// pending tasks, with a reason for every task it could not place. No I/O, clocks or randomness,
// so the scheduling controller can run it on every change and tests can run it on any snapshot.
import { isTerminal, type Node, type Task } from '../../common/resources/types.js';
import { ConstraintSyntaxError, parseConstraintOrThrow, type Constraint } from './constraints.js';
import {
  availabilityRejection,
  constraintRejection,
  demandOf,
  hostPortRejection,
  hostPortsOf,
  maxReplicasRejection,
  resourceRejection,
  type Demand,
} from './filters.js';
import { parsePreferencesOrThrow, PreferenceSyntaxError, SpreadTree } from './preferences.js';
import { compareForSpread, type NodeLoad } from './score.js';

export interface ScheduleInput {
  nodes: Node[];
  /**
   * All non-terminal tasks; those with a nodeName count against that node's capacity and hold
   * their host-mode ports there (of any service, also while shutting down).
   */
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
  /** Host-mode ports ("8080/tcp") of the tasks on the node; undefined while there are none. */
  hostPorts: Set<string> | undefined;
}

/** Tasks of one service with the same placement and ports get the same node-only filter results. */
interface TaskGroup {
  serviceKey: string;
  constraints: Constraint[];
  /** Present when the service has placement preferences. */
  spread: SpreadTree | undefined;
  maxReplicas: number | undefined;
  hostPorts: string[];
  /** Indexes of nodes that are ready and active. */
  available: number[];
  /** Per node index: why its constraints reject the task, or undefined. */
  constraintReasons: Array<string | undefined>;
  /** Why the unavailable nodes were rejected: reason → count. */
  availabilityReasons: Map<string, number>;
  invalid?: string;
}

/** The filters that can leave a task unplaced, as metric label values (tessera_scheduler_unschedulable_tasks). */
export const UNSCHEDULABLE_REASONS = [
  'no_nodes',
  'invalid_placement',
  'not_ready',
  'paused',
  'draining',
  'insufficient_memory',
  'insufficient_cpu',
  'constraint',
  'host_port',
  'max_replicas_per_node',
] as const;
export type UnschedulableReason = (typeof UNSCHEDULABLE_REASONS)[number];

/**
 * Schedules the batch. `onUnplaced`, when given, hears every task left unplaced with the filters
 * that rejected at least one node for it (one task may name several), from the counts the
 * explanation is made of: no second pass over the nodes.
 */
export function schedule(input: ScheduleInput, onUnplaced?: (reasons: ReadonlySet<UnschedulableReason>) => void): ScheduleResult {
  const nodes = [...input.nodes].sort((a, b) => compareStrings(a.metadata.name, b.metadata.name));
  const slots: NodeSlot[] = nodes.map((node) => ({
    node,
    free: { memoryBytes: node.status.resources.memoryBytes, nanoCpus: node.status.resources.nanoCpus },
    totalTasks: 0,
    hostPorts: undefined,
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
    for (const port of hostPortsOf(task)) (slot.hostPorts ??= new Set()).add(port);
    // A task being shut down still holds its reservation and ports until it has stopped...
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

  // One spread tree per service and preference list, all of a service's trees kept up to date.
  const trees = new Map<string, SpreadTree>();
  const treesByService = new Map<string, SpreadTree[]>();
  const treeFor = (serviceKey: string, labelKeys: string[]): SpreadTree => {
    const id = `${serviceKey}\u0000${labelKeys.join('\u0000')}`;
    let tree = trees.get(id);
    if (!tree) {
      tree = new SpreadTree(nodes, labelKeys, countsFor(serviceKey));
      trees.set(id, tree);
      const list = treesByService.get(serviceKey) ?? [];
      list.push(tree);
      treesByService.set(serviceKey, list);
    }
    return tree;
  };

  const groups = new Map<string, TaskGroup>();
  const result: ScheduleResult = { placements: [], unplaced: [] };
  const candidate: NodeLoad = { serviceTasks: 0, totalTasks: 0, name: '' };
  const best: NodeLoad = { serviceTasks: 0, totalTasks: 0, name: '' };

  for (const task of input.pending) {
    const group = groupFor(groups, task, slots, treeFor);
    if (group.invalid !== undefined) {
      result.unplaced.push({ task: task.metadata.name, reason: group.invalid });
      onUnplaced?.(new Set(['invalid_placement']));
      continue;
    }
    const demand = demandOf(task);
    const counts = countsFor(group.serviceKey);
    let bestIndex = -1;
    let rejections: Map<string, number> | undefined;
    for (const index of group.available) {
      const slot = slots[index] as NodeSlot;
      const rejection =
        resourceRejection(slot.free, demand) ??
        group.constraintReasons[index] ??
        (group.hostPorts.length > 0 ? hostPortRejection(slot.hostPorts, group.hostPorts) : undefined) ??
        maxReplicasRejection(counts[index] as number, group.maxReplicas);
      if (rejection !== undefined) {
        rejections ??= new Map();
        rejections.set(rejection, (rejections.get(rejection) ?? 0) + 1);
        continue;
      }
      candidate.serviceTasks = counts[index] as number;
      candidate.totalTasks = slot.totalTasks;
      candidate.name = slot.node.metadata.name;
      // Preferences first (the emptier label group), then spread over nodes inside the group.
      const byGroup = bestIndex < 0 || group.spread === undefined ? 0 : group.spread.compare(index, bestIndex);
      if (bestIndex < 0 || byGroup < 0 || (byGroup === 0 && compareForSpread(candidate, best) < 0)) {
        bestIndex = index;
        Object.assign(best, candidate);
      }
    }
    if (bestIndex < 0) {
      result.unplaced.push({ task: task.metadata.name, reason: explain(nodes.length, group.availabilityReasons, rejections) });
      onUnplaced?.(reasonsOf(nodes.length, group.availabilityReasons, rejections));
      continue;
    }
    const chosen = slots[bestIndex] as NodeSlot;
    chosen.free.memoryBytes -= demand.memoryBytes;
    chosen.free.nanoCpus -= demand.nanoCpus;
    chosen.totalTasks++;
    counts[bestIndex] = (counts[bestIndex] as number) + 1;
    for (const tree of treesByService.get(group.serviceKey) ?? []) tree.add(bestIndex);
    for (const port of group.hostPorts) (chosen.hostPorts ??= new Set()).add(port);
    result.placements.push({ task: task.metadata.name, node: chosen.node.metadata.name });
  }
  return result;
}

function serviceKeyOf(task: Task): string {
  return `${task.spec.serviceStack}/${task.spec.serviceName}`;
}

function groupFor(groups: Map<string, TaskGroup>, task: Task, slots: NodeSlot[], treeFor: (serviceKey: string, labelKeys: string[]) => SpreadTree): TaskGroup {
  const placement = task.spec.spec.placement;
  const rawConstraints = placement?.constraints ?? [];
  const preferences = placement?.preferences ?? [];
  const maxReplicas = placement?.maxReplicasPerNode;
  const hostPorts = hostPortsOf(task);
  const serviceKey = serviceKeyOf(task);
  const id = [serviceKey, rawConstraints.join('\u0000'), preferences.map((p) => p.spread).join('\u0000'), String(maxReplicas ?? ''), hostPorts.join(',')].join(
    '\u0001',
  );
  const existing = groups.get(id);
  if (existing) return existing;

  const group: TaskGroup = {
    serviceKey,
    constraints: [],
    spread: undefined,
    maxReplicas,
    hostPorts,
    available: [],
    constraintReasons: Array.from({ length: slots.length }, (): string | undefined => undefined),
    availabilityReasons: new Map(),
  };
  groups.set(id, group);
  try {
    group.constraints = rawConstraints.map(parseConstraintOrThrow);
    const labelKeys = parsePreferencesOrThrow(preferences);
    if (labelKeys.length > 0) group.spread = treeFor(serviceKey, labelKeys);
  } catch (err) {
    if (!(err instanceof ConstraintSyntaxError) && !(err instanceof PreferenceSyntaxError)) throw err;
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
// Reasons that carry a detail (the constraint, the port, the limit), ranked by their prefix.
const REASON_PREFIX_ORDER = ['failed constraint ', 'host port ', 'max replicas per node '];

function reasonRank(reason: string): number {
  const i = REASON_ORDER.indexOf(reason);
  if (i >= 0) return i;
  const j = REASON_PREFIX_ORDER.findIndex((prefix) => reason.startsWith(prefix));
  return REASON_ORDER.length + (j >= 0 ? j : REASON_PREFIX_ORDER.length);
}

export function explain(nodeCount: number, availabilityReasons: ReadonlyMap<string, number>, otherReasons: ReadonlyMap<string, number> | undefined): string {
  if (nodeCount === 0) return 'no suitable node (no nodes)';
  const all = new Map(availabilityReasons);
  for (const [reason, count] of otherReasons ?? []) all.set(reason, (all.get(reason) ?? 0) + count);
  const parts = [...all].sort(([a], [b]) => reasonRank(a) - reasonRank(b) || compareStrings(a, b)).map(([reason, count]) => `${count} ${reason}`);
  return `no suitable node (${nodeCount} node${nodeCount === 1 ? '' : 's'}: ${parts.join(', ')})`;
}

const REASON_LABELS: Record<string, UnschedulableReason> = {
  'not ready': 'not_ready',
  paused: 'paused',
  draining: 'draining',
  'insufficient memory': 'insufficient_memory',
  'insufficient cpu': 'insufficient_cpu',
};
const PREFIX_LABELS: Array<[string, UnschedulableReason]> = [
  ['failed constraint ', 'constraint'],
  ['host port ', 'host_port'],
  ['max replicas per node ', 'max_replicas_per_node'],
];

function reasonsOf(
  nodeCount: number,
  availabilityReasons: ReadonlyMap<string, number>,
  otherReasons: ReadonlyMap<string, number> | undefined,
): Set<UnschedulableReason> {
  const labels = new Set<UnschedulableReason>();
  if (nodeCount === 0) labels.add('no_nodes');
  for (const reason of [...availabilityReasons.keys(), ...(otherReasons?.keys() ?? [])]) {
    const label = REASON_LABELS[reason] ?? PREFIX_LABELS.find(([prefix]) => reason.startsWith(prefix))?.[1];
    // Every reason comes from filters.ts; one without a label would be a new filter to add above.
    if (label !== undefined) labels.add(label);
  }
  return labels;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
