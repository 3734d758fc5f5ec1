// The filters a node must pass to take a task, in Swarm's order: readiness and availability,
// resources, constraints, host-mode port conflicts, max replicas per node. Each returns the reason it rejects the node, so the scheduler can tell
// the user why a task stays pending; a node is counted under the first filter it fails.
import type { Node, Task } from '../../common/resources/types.js';
import { firstFailedConstraint, type Constraint } from './constraints.js';

/** What a task needs from a node, in the node's units. */
export interface Demand {
  memoryBytes: number;
  nanoCpus: number;
}

export function demandOf(task: Task): Demand {
  const reservations = task.spec.spec.resources?.reservations;
  return {
    memoryBytes: reservations?.memory ?? 0,
    nanoCpus: Math.round((reservations?.cpus ?? 0) * 1e9),
  };
}

/** Readiness and availability; undefined when the node may take new tasks at all. */
export function availabilityRejection(node: Node): string | undefined {
  if (node.status.state !== 'ready') return 'not ready';
  // Pause and drain both mean "no new tasks"; drain additionally moves existing ones (elsewhere).
  if (node.spec.availability === 'pause') return 'paused';
  if (node.spec.availability === 'drain') return 'draining';
  return undefined;
}

/** Placement constraints; undefined when the node satisfies them all. */
export function constraintRejection(node: Node, constraints: readonly Constraint[]): string | undefined {
  const failed = firstFailedConstraint(node, constraints);
  return failed ? `failed constraint ${failed.text}` : undefined;
}

/** Free capacity must cover the reservation; tasks without reservations always fit. */
export function resourceRejection(free: Demand, demand: Demand): string | undefined {
  if (demand.memoryBytes > free.memoryBytes) return 'insufficient memory';
  if (demand.nanoCpus > free.nanoCpus) return 'insufficient cpu';
  return undefined;
}

/** Host-mode ports a task publishes, as "8080/tcp"; only those with a published port can conflict. */
export function hostPortsOf(task: Task): string[] {
  return (task.spec.spec.ports ?? [])
    .filter((p) => p.mode === 'host' && p.published !== undefined)
    .map((p) => `${p.published as number}/${p.protocol ?? 'tcp'}`);
}

/** A host-mode port is bound on the node itself, so only one task per node may publish it. */
export function hostPortRejection(inUse: ReadonlySet<string> | undefined, wanted: readonly string[]): string | undefined {
  if (inUse === undefined) return undefined;
  const taken = wanted.find((port) => inUse.has(port));
  return taken === undefined ? undefined : `host port ${taken} in use`;
}

/** `max` 0 or absent means no limit, as in Swarm. */
export function maxReplicasRejection(serviceTasksOnNode: number, max: number | undefined): string | undefined {
  if (max === undefined || max <= 0 || serviceTasksOnNode < max) return undefined;
  return `max replicas per node (${max}) reached`;
}
