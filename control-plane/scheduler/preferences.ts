// Placement preferences: spread a service's tasks evenly over the values of node labels, nested in
// the order given (as Swarm does: first over the values of the first label, then, inside each of
// those groups, over the values of the second, and so on). Nodes without a label form a group of
// their own at that level. Pure; the scheduler keeps one tree per service and preference list.
// A group's count is the service's tasks on all its nodes, also those that cannot take the task
// now (Swarm builds its tree from the nodes that passed the filters only); a group none of whose
// nodes passes the filters simply takes nothing, so the others get the tasks.
import type { Node } from '../../common/resources/types.js';

/** "node.labels.zone" → "zone"; undefined when the text is not a node label reference. */
export function spreadLabelKey(spread: string): string | undefined {
  const match = /^node\.labels\.(.+)$/.exec(spread.trim());
  return match?.[1];
}

export class PreferenceSyntaxError extends Error {
  constructor(readonly spread: string) {
    super(`invalid placement preference spread "${spread}": expected node.labels.KEY`);
    this.name = 'PreferenceSyntaxError';
  }
}

export function parsePreferencesOrThrow(preferences: ReadonlyArray<{ spread: string }>): string[] {
  return preferences.map((p) => {
    const key = spreadLabelKey(p.spread);
    if (key === undefined) throw new PreferenceSyntaxError(p.spread);
    return key;
  });
}

// Not a possible label value, so nodes missing the label never share a group with "" values.
const MISSING = '\u0000missing';

/**
 * The nested groups of one preference list over a fixed node list, with the number of tasks of one
 * service in each group. Level k's group of a node is identified by its values at levels 0..k.
 */
export class SpreadTree {
  /** Per level, per node index: the node's group at that level. */
  private readonly groupOf: Int32Array[];
  /** Per level, per group: tasks of the service in it. */
  private readonly counts: Int32Array[];

  /** `serviceCounts`: tasks of the service per node index, at the time the tree is made. */
  constructor(nodes: readonly Node[], labelKeys: readonly string[], serviceCounts: Int32Array) {
    this.groupOf = [];
    this.counts = [];
    const path = Array.from({ length: nodes.length }, () => '');
    for (const key of labelKeys) {
      const ids = new Map<string, number>();
      const groupOf = new Int32Array(nodes.length);
      nodes.forEach((node, index) => {
        const value = node.spec.labels?.[key] ?? MISSING;
        const id = `${path[index] as string}\u0001${value}`;
        path[index] = id;
        let group = ids.get(id);
        if (group === undefined) {
          group = ids.size;
          ids.set(id, group);
        }
        groupOf[index] = group;
      });
      const counts = new Int32Array(ids.size);
      for (let index = 0; index < nodes.length; index++) {
        const group = groupOf[index] as number;
        counts[group] = (counts[group] ?? 0) + (serviceCounts[index] as number);
      }
      this.groupOf.push(groupOf);
      this.counts.push(counts);
    }
  }

  /** Negative when node a lies in the emptier group at the first level where the two differ. */
  compare(a: number, b: number): number {
    for (let level = 0; level < this.groupOf.length; level++) {
      const groupOf = this.groupOf[level] as Int32Array;
      const counts = this.counts[level] as Int32Array;
      const diff = (counts[groupOf[a] as number] as number) - (counts[groupOf[b] as number] as number);
      if (diff !== 0) return diff;
    }
    return 0;
  }

  /** Records one more task of the service on node `index`. */
  add(index: number): void {
    for (let level = 0; level < this.groupOf.length; level++) {
      const groupOf = this.groupOf[level] as Int32Array;
      const counts = this.counts[level] as Int32Array;
      const group = groupOf[index] as number;
      counts[group] = (counts[group] ?? 0) + 1;
    }
  }
}
