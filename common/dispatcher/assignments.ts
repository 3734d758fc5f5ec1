// Pure bookkeeping of what a node's agent has been sent, so a session sends the full set once and
// then only what changed.
import type { Task } from '../resources/types.js';

export function taskKey(task: Task): string {
  return `${task.metadata.stack ?? ''}/${task.metadata.name}`;
}

export interface AssignmentDelta {
  upserts: Task[];
  removed: string[];
}

/** What a node has been sent: task key → resourceVersion. */
export class SentAssignments {
  private readonly sent = new Map<string, string>();

  /** The delta that brings the agent from what it was sent to `assigned`, and records it as sent. */
  next(assigned: readonly Task[]): AssignmentDelta {
    const upserts: Task[] = [];
    const seen = new Set<string>();
    for (const task of assigned) {
      const key = taskKey(task);
      seen.add(key);
      const version = task.metadata.resourceVersion ?? '';
      if (this.sent.get(key) !== version) {
        upserts.push(task);
        this.sent.set(key, version);
      }
    }
    const removed: string[] = [];
    for (const key of this.sent.keys()) {
      if (!seen.has(key)) removed.push(key);
    }
    for (const key of removed) this.sent.delete(key);
    return { upserts, removed };
  }
}

/** Agent side: the node's current assignment set, from a full set followed by deltas. */
export class AssignmentSet {
  private readonly tasks = new Map<string, Task>();

  apply(full: boolean, upserts: readonly Task[], removed: readonly string[]): Task[] {
    if (full) this.tasks.clear();
    for (const task of upserts) this.tasks.set(taskKey(task), task);
    for (const key of removed) this.tasks.delete(key);
    return [...this.tasks.values()];
  }

  all(): Task[] {
    return [...this.tasks.values()];
  }
}
