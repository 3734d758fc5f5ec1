// What `tsctl rollout status|history|undo` show and send, as pure functions of a service and its
// tasks, so the command itself is only I/O.
import type { Service, Task, UpdateState } from '../../common/resources/types.js';
import { isGlobalMode, isTerminal } from '../../common/resources/types.js';
import { isReady, rollbackSpec, taskTemplateKey, templateKey } from './rollout.js';

export type RolloutPhase = UpdateState | 'pending' | 'none';

export interface RolloutProgress {
  phase: RolloutPhase;
  /** Ready tasks of the current spec. */
  updated: number;
  /** Tasks the service should have (replicas; for a global service, the nodes it runs on). */
  desired: number;
  /** The rollout has ended, well or badly: stop waiting. */
  done: boolean;
  /** Ended as the user asked: completed, or nothing to roll out. */
  ok: boolean;
  line: string;
}

export function rolloutProgress(service: Service, tasks: readonly Task[]): RolloutProgress {
  const name = service.metadata.stack ? `${service.metadata.stack}/${service.metadata.name}` : service.metadata.name;
  const template = templateKey(service.spec);
  const live = tasks.filter((t) => t.desiredState === 'running' && !isTerminal(t.status.state));
  const updated = live.filter((t) => isReady(t) && taskTemplateKey(t) === template).length;
  const desired = isGlobalMode(service.spec.mode) ? new Set(live.map((t) => t.nodeName ?? '')).size : Math.max(0, service.spec.replicas ?? 1);
  const status = service.status;
  const noticed = status?.currentSpec !== undefined && templateKey(status.currentSpec) === template;
  const update = status?.update;
  const counts = `${updated} of ${desired} tasks on the current spec`;
  if (!noticed)
    return {
      phase: 'pending',
      updated,
      desired,
      done: false,
      ok: false,
      line: `service ${name}: waiting for the controller to take up generation ${service.metadata.generation ?? 1}`,
    };
  if (!update) {
    const converged = updated >= desired;
    return { phase: 'none', updated, desired, done: converged, ok: converged, line: `service ${name}: no rollout since creation; ${counts}` };
  }
  const message = update.message ? ` (${update.message})` : '';
  const line = `service ${name}: ${update.state.replace('_', ' ')}: ${counts}${message}`;
  switch (update.state) {
    case 'updating':
    case 'rollback_started':
      return { phase: update.state, updated, desired, done: false, ok: false, line };
    case 'completed':
      return { phase: update.state, updated, desired, done: true, ok: true, line };
    case 'rollback_completed':
      // An undo the user asked for ended as asked; an automatic rollback means the update failed.
      return { phase: update.state, updated, desired, done: true, ok: update.rollbackReason === undefined, line };
    case 'paused':
    case 'rollback_paused':
      return { phase: update.state, updated, desired, done: true, ok: false, line };
  }
}

/** `tsctl rollout history`: one line per recorded generation, oldest first. */
export function formatRolloutHistory(service: Service, now: Date): string {
  const rows = (service.status?.history ?? []).map((h) => [String(h.generation), ago(Date.parse(h.at), now.getTime()), h.at, h.kind, h.change]);
  if (rows.length === 0) return 'no rollout history recorded';
  const header = ['GENERATION', 'AGE', 'AT', 'KIND', 'CHANGE'];
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

function ago(then: number, now: number): string {
  if (Number.isNaN(then)) return '?';
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/**
 * The manifest `tsctl rollout undo` applies: the previous spec's template with today's replica
 * count and update policies. The controller recognises a spec equal to the previous one as a
 * rollback and rolls it out by rollbackConfig.
 */
export function undoManifest(service: Service): Service {
  const previous = service.status?.previousSpec;
  const name = service.metadata.stack ? `${service.metadata.stack}/${service.metadata.name}` : service.metadata.name;
  if (!previous) throw new Error(`service ${name} has no previous spec to go back to (it has not been updated since it was created)`);
  if (templateKey(previous) === templateKey(service.spec)) throw new Error(`service ${name}: the previous spec is the current one; nothing to undo`);
  return {
    apiVersion: service.apiVersion,
    kind: 'Service',
    metadata: {
      name: service.metadata.name,
      ...(service.metadata.stack ? { stack: service.metadata.stack } : {}),
      ...(service.metadata.labels ? { labels: service.metadata.labels } : {}),
    },
    spec: rollbackSpec(service.spec, previous),
  };
}
