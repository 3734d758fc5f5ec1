// Spread: prefer the node running the fewest tasks of the same service, then the fewest tasks
// overall, then the node name, so equal inputs always give equal placements.

export interface NodeLoad {
  /** Tasks of the service being placed that are on this node. */
  serviceTasks: number;
  totalTasks: number;
  name: string;
}

/** Negative when a is the better node for the task. */
export function compareForSpread(a: NodeLoad, b: NodeLoad): number {
  if (a.serviceTasks !== b.serviceTasks) return a.serviceTasks - b.serviceTasks;
  if (a.totalTasks !== b.totalTasks) return a.totalTasks - b.totalTasks;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
