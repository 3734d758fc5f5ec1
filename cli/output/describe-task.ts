// `tsctl describe task`: one task's placement, state history as far as it is known, why the
// scheduler could not place it, and its health with the last probes' output.
import type { Task } from '../../common/resources/types.js';
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
  if (task.status.startedAt) rows.push(['Started', `${task.status.startedAt} (${formatAgo(task.status.startedAt, now)})`]);
  if (task.status.schedulingReason) rows.push(['Not placed because', task.status.schedulingReason]);
  if (task.status.health) {
    const since = task.status.healthChangedAt ? ` ${formatAgo(task.status.healthChangedAt, now)}` : '';
    const streak = task.status.failingStreak ? `, ${task.status.failingStreak} failed probe${task.status.failingStreak === 1 ? '' : 's'} in a row` : '';
    rows.push(['Health', `${task.status.health}${since}${streak}`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  const lines = rows.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}${v}`);
  const probes = task.status.healthLog ?? [];
  if (probes.length > 0) {
    lines.push('Last health probes:');
    for (const p of probes) {
      const result = p.exitCode === 0 ? 'ok' : p.exitCode === -1 ? 'failed (no exit code)' : `failed (exit ${p.exitCode})`;
      const output = p.output.trim().replace(/\s*\n\s*/g, ' | ');
      lines.push(`  ${p.end}  ${result}${output ? `: ${output}` : ''}`);
    }
  }
  return lines.join('\n');
}
