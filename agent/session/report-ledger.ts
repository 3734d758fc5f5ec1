// The last status this agent reported for each of its tasks, so that a report lost with a manager
// is sent again. Reports written on a session whose manager then dies (kill -9 of the leader) never
// reach the store; the worker reports only on transitions, so without this the store would show
// such a task `starting` for ever while it runs. When a new session's full assignment set shows a
// task behind what was reported, the last report goes out again. The manager applies a report only
// if it moves the task forward, so a repeat is harmless.
import type { TaskStatusUpdate } from '../../proto/gen/tessera/dispatcher/v1/TaskStatusUpdate.js';
import { taskKey } from '../../common/dispatcher/assignments.js';
import { isTerminal, TASK_STATES, type Task, type TaskState } from '../../common/resources/types.js';

const ORDER = new Map<TaskState, number>(TASK_STATES.map((s, i) => [s, i]));

interface Reported {
  state: TaskState;
  update: TaskStatusUpdate;
}

export class ReportLedger {
  private readonly last = new Map<string, Reported>();

  noted(task: Task, state: TaskState, update: TaskStatusUpdate): void {
    this.last.set(taskKey(task), { state, update });
  }

  /**
   * Given the node's complete assignment set as the managers now hold it: the last report of every
   * task the store shows behind it. Forgets the tasks that are no longer assigned.
   */
  behind(assigned: readonly Task[]): TaskStatusUpdate[] {
    const keys = new Set<string>();
    const resend: TaskStatusUpdate[] = [];
    for (const task of assigned) {
      const key = taskKey(task);
      keys.add(key);
      const reported = this.last.get(key);
      if (!reported || isTerminal(task.status.state)) continue;
      const stored = ORDER.get(task.status.state) ?? 0;
      if (isTerminal(reported.state) || (ORDER.get(reported.state) ?? 0) > stored) resend.push(reported.update);
    }
    for (const key of this.last.keys()) if (!keys.has(key)) this.last.delete(key);
    return resend;
  }

  /** Tasks removed from the assignment set. */
  forget(keys: readonly string[]): void {
    for (const key of keys) this.last.delete(key);
  }
}
