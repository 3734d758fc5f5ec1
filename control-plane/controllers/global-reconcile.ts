// The decision for a global service, as a pure function: exactly one task on every eligible node
// (ready, active, matching the placement constraints), none elsewhere. Tasks are bound to their
// node when created, so the scheduler never moves them; a node that joins gets one, a node that
// leaves, drains or stops matching loses its own. Restart policy and back-off work per node as
// they do per slot for replicated services.
import type { Node, Service, Task } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';
import { parseConstraint } from '../../common/resources/constraints.js';
import { matchesConstraint } from '../scheduler/constraints.js';
import {
  TASK_HISTORY_LIMIT,
  decideSlot,
  isLive,
  newTask,
  newestFirst,
  reconcileDeleted,
  restartPolicyOf,
  templateKey,
  type ReconcileServiceDecision,
} from './service-reconcile.js';
import { planRollout } from './rollout.js';
import { randomTaskId, type TaskIdGenerator } from './task-naming.js';

/** Global tasks have no slot of their own; 0 marks them. */
export const GLOBAL_SLOT = 0;

export interface ReconcileGlobalInput {
  service: Service | undefined;
  serviceKey: { stack: string; name: string };
  tasks: Task[];
  nodes: Node[];
  now: number;
}

export function eligibleNodes(service: Service, nodes: readonly Node[]): Node[] {
  const constraints = (service.spec.placement?.constraints ?? []).map((c) => parseConstraint(c)).flatMap((r) => (r.ok ? [r.value] : []));
  return nodes.filter((n) => n.status.state === 'ready' && n.spec.availability === 'active' && constraints.every((c) => matchesConstraint(n, c)));
}

export function reconcileGlobalService(input: ReconcileGlobalInput, newTaskId: TaskIdGenerator = randomTaskId): ReconcileServiceDecision {
  const { service, tasks } = input;
  if (!service) return reconcileDeleted(tasks);
  const template = templateKey(service.spec);
  const policy = restartPolicyOf(service.spec);
  const historyLimit = Math.max(TASK_HISTORY_LIMIT, (policy?.maxAttempts ?? 0) + 1);
  const eligible = new Set(eligibleNodes(service, input.nodes).map((n) => n.metadata.name));

  const byNode = new Map<string, Task[]>();
  for (const name of eligible) byNode.set(name, []);
  for (const t of tasks) {
    const node = t.nodeName ?? '';
    const list = byNode.get(node);
    if (list) list.push(t);
    else byNode.set(node, [t]);
  }

  const decision: ReconcileServiceDecision = { create: [], shutdown: [], remove: [] };
  const nodesInOrder = [...byNode].sort(([a], [b]) => a.localeCompare(b));
  // Nodes play the part of slots in the rolling update.
  const plan = planRollout({
    service,
    slots: nodesInOrder.filter(([nodeName]) => eligible.has(nodeName)).map(([key, nodeTasks]) => ({ key, tasks: nodeTasks })),
    now: input.now,
  });
  if (plan.write) decision.service = plan.write;
  if (plan.requeueAfterMs !== undefined) decision.requeueAfterMs = plan.requeueAfterMs;
  for (const [nodeName, nodeTasks] of nodesInOrder) {
    const live = nodeTasks.filter(isLive);
    const terminal = nodeTasks.filter((t) => isTerminal(t.status.state)).sort(newestFirst);
    if (!eligible.has(nodeName)) {
      for (const t of live) decision.shutdown.push(t.metadata.name);
      // History of a node that is gone or no longer eligible is dropped once its tasks ended.
      for (const t of terminal) decision.remove.push(t.metadata.name);
      continue;
    }
    if (!plan.hold) {
      const slot = decideSlot(nodeName, nodeTasks, { template, policy, now: input.now, plan });
      for (const t of slot.shutdown) decision.shutdown.push(t.metadata.name);
      if (slot.create) {
        const task = newTask(service, input.serviceKey, GLOBAL_SLOT, newTaskId(), input.now);
        task.nodeName = nodeName;
        task.status = { state: 'assigned', message: `global service: bound to node ${nodeName}`, timestamp: task.status.timestamp };
        decision.create.push(task);
        if (slot.restart) (decision.restarts ??= []).push(task.metadata.name);
      }
      if (slot.waitMs !== undefined) decision.requeueAfterMs = Math.min(decision.requeueAfterMs ?? Infinity, slot.waitMs);
    }
    for (const t of terminal.slice(historyLimit)) decision.remove.push(t.metadata.name);
  }
  return decision;
}
