// `tsctl describe task`: one task's placement, state history as far as it is known, and why the
// scheduler could not place it.
import type { Task } from '../../control-plane/resources/types.js';
import { formatAgo } from './age.js';

export function describeTask(task: Task, now: Date): string {
  const rows: Array<[string, string]> = [
    ['Name', task.metadata.name],
    ['Stack', task.metadata.stack || '<none>'],
    ['Service', `${task.spec.serviceName} (slot ${task.spec.slot || 'global'})`],
    ['Image', task.spec.spec.image],
    ['Node', task.nodeName ?? '<not placed>'],
    ['Desired state', task.desiredState],
    ['State', `${task.status.state} ${formatAgo(task.status.timestamp, now)}`.trim()],
    ['Message', task.status.message ?? ''],
  ];
  if (task.status.error) rows.push(['Error', task.status.error]);
  if (task.status.exitCode !== undefined) rows.push(['Exit code', String(task.status.exitCode)]);
  if (task.status.oomKilled) rows.push(['OOM killed', 'yes']);
  if (task.status.containerId) rows.push(['Container', task.status.containerId]);
  if (task.status.pid !== undefined) rows.push(['PID', String(task.status.pid)]);
  if (task.status.address) rows.push(['Address', task.status.address]);
  if (task.status.schedulingReason) rows.push(['Not placed because', task.status.schedulingReason]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}${v}`).join('\n');
}
