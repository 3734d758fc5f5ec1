// apps/v1 Deployment → a replicated service; the rolling-update strategy becomes its update policy.
import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import type { UpdatePolicy } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { readInt, readMap, readRequiredMap, readString, type YamlMap } from './read.js';
import type { KubeLookup, KubeMeta, Workload } from './types.js';
import { checkRestartsAlways, checkSelector, nativeService, translateTemplate } from './workload.js';

/** maxSurge / maxUnavailable: an integer, or a percentage of replicas (surge rounds up, unavailable down, as in Kubernetes). */
function intOrPercent(ctx: DocContext, value: unknown, path: IssuePath, replicas: number, round: (n: number) => number, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(\d+)%$/.exec(value) : null;
  if (match) return round((Number(match[1]) * replicas) / 100);
  ctx.invalid(path, `expected an integer or a percentage like "25%", got ${describeValue(value)}`);
  return fallback;
}

export function rollingUpdatePolicy(ctx: DocContext, strategy: YamlMap, path: IssuePath, replicas: number): UpdatePolicy {
  const rolling = readMap(ctx, strategy['rollingUpdate'], [...path, 'rollingUpdate']) ?? {};
  checkFields(ctx, rolling, [...path, 'rollingUpdate'], { maxSurge: true, maxUnavailable: true });
  const surge = intOrPercent(ctx, rolling['maxSurge'], [...path, 'rollingUpdate', 'maxSurge'], replicas, Math.ceil, Math.ceil(replicas / 4));
  const unavailable = intOrPercent(
    ctx,
    rolling['maxUnavailable'],
    [...path, 'rollingUpdate', 'maxUnavailable'],
    replicas,
    Math.floor,
    Math.floor(replicas / 4),
  );
  if (surge === 0 && unavailable === 0) ctx.invalid([...path, 'rollingUpdate'], 'maxSurge and maxUnavailable may not both be 0');
  // Tessera replaces `parallelism` tasks at a time, starting the new ones first (a surge) or stopping the old ones first.
  return unavailable === 0 ? { parallelism: Math.max(surge, 1), order: 'start-first' } : { parallelism: unavailable, order: 'stop-first' };
}

export function translateDeployment(ctx: DocContext, doc: YamlMap, meta: KubeMeta, lookup: KubeLookup): Workload | undefined {
  const spec = readRequiredMap(ctx, doc['spec'], ['spec']);
  if (!spec) return undefined;
  checkFields(ctx, spec, ['spec'], {
    replicas: true,
    selector: true,
    template: true,
    strategy: true,
    // Tessera keeps its own short rollout history; the length is not configurable.
    revisionHistoryLimit: true,
    minReadySeconds: 'a new task counts as available once running (or healthy, with a probe)',
    progressDeadlineSeconds: "rollouts are watched by the update policy's monitor period, not a deadline",
    paused: 'rollouts cannot be paused from the manifest',
  });
  const replicas = readInt(ctx, spec['replicas'], ['spec', 'replicas']) ?? 1;
  const template = translateTemplate(ctx, spec, meta.stack, lookup);
  if (!template) return undefined;
  checkSelector(ctx, spec, template.labels, true);
  checkRestartsAlways(ctx, template, 'Deployment');
  const strategy = readMap(ctx, spec['strategy'], ['spec', 'strategy']) ?? {};
  checkFields(ctx, strategy, ['spec', 'strategy'], { type: true, rollingUpdate: true });
  const type = readString(ctx, strategy['type'], ['spec', 'strategy', 'type']) ?? 'RollingUpdate';
  let updateConfig: UpdatePolicy | undefined;
  if (type === 'Recreate') updateConfig = { parallelism: 0, order: 'stop-first' };
  else if (type === 'RollingUpdate') updateConfig = rollingUpdatePolicy(ctx, strategy, ['spec', 'strategy'], replicas);
  else ctx.invalid(['spec', 'strategy', 'type'], `expected RollingUpdate or Recreate, got ${JSON.stringify(type)}`);
  const service = nativeService(meta, meta.name, template, {
    mode: 'replicated',
    replicas,
    restart: { condition: 'any' },
    ...(updateConfig ? { updateConfig } : {}),
  });
  return {
    doc: ctx.doc,
    kind: 'Deployment',
    name: meta.name,
    stack: meta.stack,
    podLabels: template.labels,
    services: [service],
    containerPorts: template.pod.containerPorts,
  };
}
