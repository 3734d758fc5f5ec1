// What `tsctl stack ls|services|ps` print, as pure functions of the objects (the commands only
// fetch them). Columns follow `docker stack ...` so users' habits and scripts carry over.
import type { Node, Service, StackObject, Task } from '../../common/resources/types.js';
import { eligibleNodes } from '../../control-plane/controllers/global-reconcile.js';
import { renderTable, truncate } from '../output/table.js';
import { formatAgo } from '../output/age.js';
import { belongsTo, formatPorts, isRunningTask } from '../output/fields.js';

/** `stack ls`: every stack that has any object, with its number of services. */
export function renderStackList(objects: readonly StackObject[]): string {
  const services = new Map<string, number>();
  for (const o of objects) {
    const stack = o.metadata.stack ?? '';
    if (stack === '') continue;
    services.set(stack, (services.get(stack) ?? 0) + (o.kind === 'Service' ? 1 : 0));
  }
  const rows = [...services].sort(([a], [b]) => a.localeCompare(b)).map(([name, count]) => [name, String(count)]);
  return renderTable(['NAME', 'SERVICES'], rows);
}

/** Swarm's qualified name: STACK_NAME. */
function qualified(service: { stack?: string | undefined; name: string }): string {
  return service.stack ? `${service.stack}_${service.name}` : service.name;
}

function modeOf(service: Service): string {
  return service.spec.mode ?? 'replicated';
}

/** Tasks the service should run: replicas, or one per eligible node for a global service. */
export function desiredTasks(service: Service, nodes: readonly Node[]): number {
  const mode = modeOf(service);
  return mode === 'global' || mode === 'global-job' ? eligibleNodes(service, nodes).length : Math.max(0, service.spec.replicas ?? 1);
}

/** `stack services`: ID, NAME, MODE, REPLICAS (running/desired), IMAGE, PORTS. */
export function renderStackServices(services: readonly Service[], tasks: readonly Task[], nodes: readonly Node[]): string {
  const rows = [...services]
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((s) => {
      const running = tasks.filter((t) => belongsTo(t, s) && isRunningTask(t)).length;
      return [
        (s.metadata.uid ?? '').replace(/-/g, '').slice(0, 12) || '-',
        qualified({ stack: s.metadata.stack, name: s.metadata.name }),
        modeOf(s),
        `${running}/${desiredTasks(s, nodes)}`,
        s.spec.image,
        formatPorts(s.spec.ports),
      ];
    });
  return renderTable(['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'], rows);
}

export interface PsFilters {
  desiredState?: string;
  node?: string;
  name?: string;
  id?: string;
}

const FILTER_KEYS: Record<string, keyof PsFilters> = { 'desired-state': 'desiredState', node: 'node', name: 'name', id: 'id' };

/** `--filter KEY=VALUE` values (repeatable) → filters; an unknown key or a bad value is an error. */
export function parsePsFilters(values: readonly string[]): PsFilters {
  const filters: PsFilters = {};
  for (const value of values) {
    const match = /^([a-z-]+)=(.+)$/.exec(value);
    const key = match ? FILTER_KEYS[match[1]!] : undefined;
    if (!match || !key)
      throw new Error(
        `--filter "${value}": expected one of ${Object.keys(FILTER_KEYS)
          .map((k) => `${k}=VALUE`)
          .join(', ')}`,
      );
    if (key === 'desiredState' && !['running', 'shutdown', 'accepted'].includes(match[2]!)) {
      throw new Error(`--filter "${value}": desired-state must be running, shutdown or accepted`);
    }
    filters[key] = match[2]!;
  }
  return filters;
}

/** The short id Swarm shows: the random part of the task name (`stack_web.1.<id>`). */
function taskId(task: Task): string {
  return task.metadata.name.slice(task.metadata.name.lastIndexOf('.') + 1);
}

/** `stack_web.1` for a replica, `stack_web.<node>` for a global task (it has no slot of its own). */
function taskDisplayName(task: Task): string {
  const base = qualified({ stack: task.spec.serviceStack, name: task.spec.serviceName });
  return task.spec.slot > 0 ? `${base}.${task.spec.slot}` : `${base}.${task.nodeName ?? '-'}`;
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** What went wrong, when the task ended badly (its error, else the message of a failed/rejected task). */
function taskError(task: Task): string {
  if (task.status.error) return task.status.error;
  return task.status.state === 'failed' || task.status.state === 'rejected' ? (task.status.message ?? '') : '';
}

const ERROR_WIDTH = 40;

function matches(task: Task, filters: PsFilters): boolean {
  if (filters.desiredState === 'running' || filters.desiredState === 'accepted') {
    if (task.desiredState !== 'running') return false;
  } else if (filters.desiredState === 'shutdown' && task.desiredState !== 'shutdown') return false;
  if (filters.node !== undefined && task.nodeName !== filters.node) return false;
  if (filters.name !== undefined && !taskDisplayName(task).startsWith(filters.name)) return false;
  if (filters.id !== undefined && !taskId(task).startsWith(filters.id)) return false;
  return true;
}

/**
 * `stack ps`: the tasks, grouped by slot (or node) with the newest first; older tasks of the same
 * slot are shown as " \_ NAME", as Swarm does.
 */
export function renderStackPs(tasks: readonly Task[], options: { now: Date; noTrunc?: boolean; filters?: PsFilters }): string {
  const shown = tasks.filter((t) => matches(t, options.filters ?? {}));
  const groups = new Map<string, Task[]>();
  for (const t of shown) {
    const key = taskDisplayName(t);
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  const newestFirst = (a: Task, b: Task) => Date.parse(b.status.timestamp) - Date.parse(a.status.timestamp) || a.metadata.name.localeCompare(b.metadata.name);
  const live = (t: Task) => (t.desiredState === 'running' ? 0 : 1);
  const rows: string[][] = [];
  for (const key of [...groups.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))) {
    // The task meant to run leads its slot, then the others newest first.
    const group = groups.get(key)!.sort((a, b) => live(a) - live(b) || newestFirst(a, b));
    group.forEach((t, i) => {
      const error = taskError(t);
      rows.push([
        taskId(t),
        i === 0 ? key : ` \\_ ${key}`,
        t.spec.spec.image,
        t.nodeName ?? '',
        capitalise(t.desiredState),
        `${capitalise(t.status.state)} ${formatAgo(t.status.timestamp, options.now)}`.trim(),
        error === '' ? '' : options.noTrunc ? `"${error}"` : `"${truncate(error, ERROR_WIDTH)}"`,
      ]);
    });
  }
  return renderTable(['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR'], rows);
}
