// Applies a status an agent reports for one of its tasks. Reports may arrive late or twice, so a
// task's state only moves forward and a terminal state is final.
import type { Task, TaskState, TaskStatus } from '../../common/resources/types.js';
import { isTerminal, TASK_STATES } from '../../common/resources/types.js';
import type { ObjectStore } from '../store/object-store.js';

const ORDER = new Map<TaskState, number>(TASK_STATES.map((s, i) => [s, i]));

/** Pure: the task with the report applied, or undefined when the report must be ignored. */
export function applyStatusReport(task: Task, nodeName: string, report: Partial<TaskStatus> & { state: TaskState }, now: Date): Task | undefined {
  if (task.nodeName !== nodeName) return undefined;
  if (isTerminal(task.status.state)) return undefined;
  if (!isTerminal(report.state) && (ORDER.get(report.state) ?? 0) < (ORDER.get(task.status.state) ?? 0)) return undefined;
  const status: TaskStatus = { ...task.status, ...report, timestamp: now.toISOString() };
  if (!report.error) delete status.error;
  if (report.state !== 'pending') delete status.schedulingReason;
  // Written here, by the managers' clock, so windows measured from them compare with its other times.
  if (report.state === 'running' && task.status.state !== 'running') status.startedAt = now.toISOString();
  if (report.health !== undefined && report.health !== task.status.health) status.healthChangedAt = now.toISOString();
  if (report.health === 'healthy' && task.status.healthyAt === undefined) status.healthyAt = now.toISOString();
  return { ...task, status };
}

export async function reportTaskStatus(
  objects: ObjectStore,
  nodeName: string,
  task: Task,
  report: Partial<TaskStatus> & { state: TaskState },
  now: () => Date = () => new Date(),
): Promise<void> {
  await objects.updateWithRetry('Task', task.metadata.stack ?? '', task.metadata.name, (current) => applyStatusReport(current, nodeName, report, now()));
}
