// `tsctl get` output: tables for people, JSON and YAML for scripts. JSON/YAML lists use Kubernetes'
// `kind: List` envelope ({apiVersion, kind: "List", items}), which `tsctl apply -f` also accepts.

import { stringify } from 'yaml';
import type { AnyObject, Kind, Node, Service, Task } from '../../common/resources/types.js';
import { API_VERSION } from '../../common/resources/types.js';
import { formatMemory, formatNanoCpus } from '../../common/resources/quantity.js';
import { renderTable, truncate } from './table.js';
import { formatAge, formatAgo } from './age.js';
import { belongsTo, formatExit, formatPorts, isRunningTask, NONE, taskMessage } from './fields.js';

export type OutputFormat = 'table' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

export interface FormatOptions {
  /** The clock for AGE and "5 seconds ago"; defaults to the current time. */
  now?: Date;
  /** Tasks, to count running replicas when a service's status is not filled in. */
  tasks?: readonly Task[];
  /** Do not shorten task messages. */
  wide?: boolean;
}

const MESSAGE_WIDTH = 60;

function serviceRows(services: readonly Service[], options: FormatOptions, now: Date): string[][] {
  return services.map((service) => {
    const desired = service.status?.desiredTasks ?? service.spec.replicas ?? 1;
    const running = options.tasks ? options.tasks.filter((t) => belongsTo(t, service) && isRunningTask(t)).length : service.status?.runningTasks;
    return [
      service.metadata.name,
      service.metadata.stack || NONE,
      service.spec.image,
      `${running ?? '?'}/${desired}`,
      formatPorts(service.spec.ports),
      formatAge(service.metadata.createdAt, now),
    ];
  });
}

export function taskRow(task: Task, now: Date, wide = false): string[] {
  const message = taskMessage(task);
  return [
    task.metadata.name,
    task.spec.serviceName,
    String(task.spec.slot),
    task.nodeName ?? NONE,
    task.desiredState,
    `${task.status.state} ${formatAgo(task.status.timestamp, now)}`.trim(),
    task.status.health ?? NONE,
    task.status.address ?? NONE,
    formatExit(task),
    wide ? message : truncate(message, MESSAGE_WIDTH),
  ];
}

export const TASK_HEADERS = ['NAME', 'SERVICE', 'SLOT', 'NODE', 'DESIRED', 'STATE', 'HEALTH', 'ADDRESS', 'EXIT', 'MESSAGE'];

function nodeRows(nodes: readonly Node[]): string[][] {
  return nodes.map((node) => [
    node.metadata.name,
    node.spec.role,
    node.status.state,
    node.spec.availability,
    node.status.address ?? NONE,
    formatMemory(node.status.resources.memoryBytes),
    formatNanoCpus(node.status.resources.nanoCpus),
  ]);
}

function ofKind<K extends Kind>(objects: readonly AnyObject[], kind: K): Extract<AnyObject, { kind: K }>[] {
  return objects.filter((o): o is Extract<AnyObject, { kind: K }> => o.kind === kind);
}

export function formatTable(objects: readonly AnyObject[], kind: Kind, options: FormatOptions = {}): string {
  const now = options.now ?? new Date();
  switch (kind) {
    case 'Service':
      return renderTable(['NAME', 'STACK', 'IMAGE', 'REPLICAS', 'PORTS', 'AGE'], serviceRows(ofKind(objects, 'Service'), options, now));
    case 'Task':
      return renderTable(
        TASK_HEADERS,
        ofKind(objects, 'Task').map((t) => taskRow(t, now, options.wide)),
      );
    case 'Node':
      return renderTable(['NAME', 'ROLE', 'STATUS', 'AVAILABILITY', 'ADDRESS', 'MEMORY', 'CPUS'], nodeRows(ofKind(objects, 'Node')));
    case 'Network':
      return renderTable(
        ['NAME', 'STACK', 'DRIVER', 'SUBNETS'],
        ofKind(objects, 'Network').map((n) => [
          n.metadata.name,
          n.metadata.stack || NONE,
          n.spec.driver ?? 'overlay',
          (n.spec.subnets ?? []).join(',') || NONE,
        ]),
      );
    case 'Secret':
    case 'Config':
      // Never the data: the server redacts it, and the table shows only its size.
      return renderTable(
        ['NAME', 'STACK', 'SIZE', 'AGE'],
        objects
          .filter((o) => o.kind === kind)
          .map((o) => [
            o.metadata.name,
            o.metadata.stack || NONE,
            o.kind === 'Secret' || o.kind === 'Config' ? String(o.status?.sizeBytes ?? '?') : '?',
            formatAge(o.metadata.createdAt, now),
          ]),
      );
    case 'Volume':
      return renderTable(
        ['NAME', 'STACK', 'DRIVER', 'AGE'],
        ofKind(objects, 'Volume').map((v) => [v.metadata.name, v.metadata.stack || NONE, v.spec.driver ?? 'local', formatAge(v.metadata.createdAt, now)]),
      );
  }
}

export function listEnvelope(objects: readonly AnyObject[]): { apiVersion: string; kind: 'List'; items: readonly AnyObject[] } {
  return { apiVersion: API_VERSION, kind: 'List', items: objects };
}

/** A list of objects of one kind, as `tsctl get` prints it. Always ends with a newline. */
export function formatObjects(objects: readonly AnyObject[], format: OutputFormat, kind: Kind, options: FormatOptions = {}): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(listEnvelope(objects), null, 2)}\n`;
    case 'yaml':
      return stringify(listEnvelope(objects));
    case 'table':
      return formatTable(objects, kind, options);
  }
}

/** One object as JSON or YAML (`tsctl get service NAME -o yaml`). */
export function formatObject(object: AnyObject, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(object, null, 2)}\n` : stringify(object);
}
