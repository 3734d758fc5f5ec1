// `tsctl describe service NAME`: everything a person needs to see why a service is (not) healthy,
// in kubectl-describe style: aligned "Label:  value" lines, then the task table.

import type { Service, Task } from '../../common/resources/types.js';
import { formatCpus, formatDuration, formatMemory } from '../../common/resources/quantity.js';
import { renderTable } from './table.js';
import { formatAge } from './age.js';
import { TASK_HEADERS, taskRow } from './format.js';
import { belongsTo, formatCommand, formatPort, isRunningTask } from './fields.js';

const NONE = '<none>';

type Line = [label: string, value: string];

function section(lines: readonly Line[]): string {
  const width = Math.max(...lines.map(([label]) => label.length)) + 2;
  return lines.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`.trimEnd()).join('\n');
}

function indented(items: readonly string[]): string {
  return items.length === 0 ? NONE : items.map((item, i) => (i === 0 ? item : `  ${item}`)).join('\n');
}

function limitsText(limits: { memory?: number; cpus?: number; pids?: number } | undefined): string {
  const parts: string[] = [];
  if (limits?.memory !== undefined) parts.push(`memory ${formatMemory(limits.memory)}`);
  if (limits?.cpus !== undefined) parts.push(`cpus ${formatCpus(limits.cpus)}`);
  if (limits?.pids !== undefined) parts.push(`pids ${limits.pids}`);
  return parts.length > 0 ? parts.join(', ') : NONE;
}

function restartText(service: Service): string {
  const restart = service.spec.restart;
  const parts = [`condition ${restart?.condition ?? 'any'}`];
  if (restart?.delayMs !== undefined) parts.push(`delay ${formatDuration(restart.delayMs)}`);
  if (restart?.maxDelayMs !== undefined) parts.push(`max delay ${formatDuration(restart.maxDelayMs)}`);
  if (restart?.maxAttempts !== undefined) parts.push(`max attempts ${restart.maxAttempts}`);
  return parts.join(', ');
}

// Current tasks first in slot order, then the history of each slot, newest first.
function taskOrder(a: Task, b: Task): number {
  return (
    (a.desiredState === 'running' ? 0 : 1) - (b.desiredState === 'running' ? 0 : 1) ||
    a.spec.slot - b.spec.slot ||
    Date.parse(b.status.timestamp) - Date.parse(a.status.timestamp)
  );
}

export interface DescribeOptions {
  now?: Date;
}

export function describeService(service: Service, tasks: readonly Task[], options: DescribeOptions = {}): string {
  const now = options.now ?? new Date();
  const { metadata, spec } = service;
  const own = tasks.filter((t) => belongsTo(t, service)).sort(taskOrder);
  const desired = spec.replicas ?? 1;
  const running = own.filter(isRunningTask).length;
  const env = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const labels = Object.entries(metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  const lines: Line[] = [
    ['Name', metadata.name],
    ['Stack', metadata.stack || NONE],
    ['Labels', indented(labels)],
    ['Created', metadata.createdAt ? `${metadata.createdAt} (${formatAge(metadata.createdAt, now)} ago)` : NONE],
    ['Generation', metadata.generation === undefined ? NONE : String(metadata.generation)],
    ['Image', spec.image],
    ['Command', spec.command ? formatCommand(spec.command) : NONE],
    ['Args', spec.args ? formatCommand(spec.args) : NONE],
    ['Workdir', spec.workdir ?? NONE],
    ['User', spec.user ?? NONE],
    ['Hostname', spec.hostname ?? NONE],
    ['Environment', indented(env)],
    ['Replicas', `${desired} desired, ${running} running`],
    ['Ports', indented((spec.ports ?? []).map(formatPort))],
    ['Limits', limitsText(spec.resources?.limits)],
    ['Reservations', limitsText(spec.resources?.reservations)],
    ['Constraints', indented(spec.placement?.constraints ?? [])],
    ['Restart policy', restartText(service)],
    ['Stop grace period', spec.stopGracePeriodMs === undefined ? NONE : formatDuration(spec.stopGracePeriodMs)],
  ];
  // Multi-line values are continued under the value column, not the label column.
  const width = Math.max(...lines.map(([label]) => label.length)) + 2;
  const aligned: Line[] = lines.map(([label, value]) => [label, value.replace(/\n {2}/g, `\n${' '.repeat(width)}`)]);
  const taskTable =
    own.length === 0
      ? `  ${NONE}\n`
      : renderTable(
          TASK_HEADERS,
          own.map((t) => taskRow(t, now, true)),
        )
          .split('\n')
          .map((line) => (line === '' ? line : `  ${line}`))
          .join('\n');
  return `${section(aligned)}\nTasks:\n${taskTable}`;
}
