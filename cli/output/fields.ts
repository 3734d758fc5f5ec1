// Renderings of single resource fields, shared by the tables and describe output.

import type { PortSpec, Service, Task } from '../../common/resources/types.js';

export const NONE = '-';

/** Docker's notation: "*:8080->80/tcp" for a published port, "80/tcp" for an unpublished one. */
export function formatPort(port: PortSpec): string {
  const target = `${port.target}/${port.protocol ?? 'tcp'}`;
  return port.published === undefined ? target : `*:${port.published}->${target}`;
}

export function formatPorts(ports: readonly PortSpec[] | undefined): string {
  return ports && ports.length > 0 ? ports.map(formatPort).join(', ') : NONE;
}

export function belongsTo(task: Task, service: Service): boolean {
  return task.spec.serviceName === service.metadata.name && task.spec.serviceStack === (service.metadata.stack ?? '');
}

/** A task counts as running when it runs and is meant to (not one being shut down). */
export function isRunningTask(task: Task): boolean {
  return task.status.state === 'running' && task.desiredState === 'running';
}

export function formatExit(task: Task): string {
  if (task.status.exitCode === undefined) return NONE;
  return task.status.oomKilled ? `${task.status.exitCode} (OOM)` : String(task.status.exitCode);
}

/** The most useful explanation of a task's state: its error, else its message, else why it waits. */
export function taskMessage(task: Task): string {
  return task.status.error ?? task.status.message ?? task.status.schedulingReason ?? '';
}

/** Quotes a command for display the way a shell user would type it. */
export function formatCommand(words: readonly string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}
