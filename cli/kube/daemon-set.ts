// apps/v1 DaemonSet → a global service (one task on every eligible node).
import { checkFields, type DocContext } from './findings.js';
import { readInt, readMap, readRequiredMap, readString, type YamlMap } from './read.js';
import type { KubeLookup, KubeMeta, Workload } from './types.js';
import { checkRestartsAlways, checkSelector, nativeService, translateTemplate } from './workload.js';

export function translateDaemonSet(ctx: DocContext, doc: YamlMap, meta: KubeMeta, lookup: KubeLookup): Workload | undefined {
  const spec = readRequiredMap(ctx, doc['spec'], ['spec']);
  if (!spec) return undefined;
  checkFields(ctx, spec, ['spec'], {
    selector: true,
    template: true,
    updateStrategy: true,
    revisionHistoryLimit: true,
    minReadySeconds: 'a new task counts as available once running (or healthy, with a probe)',
  });
  const template = translateTemplate(ctx, spec, meta.stack, lookup);
  if (!template) return undefined;
  checkSelector(ctx, spec, template.labels, true);
  checkRestartsAlways(ctx, template, 'DaemonSet');
  const strategy = readMap(ctx, spec['updateStrategy'], ['spec', 'updateStrategy']) ?? {};
  checkFields(ctx, strategy, ['spec', 'updateStrategy'], { type: true, rollingUpdate: true });
  const type = readString(ctx, strategy['type'], ['spec', 'updateStrategy', 'type']) ?? 'RollingUpdate';
  if (type === 'OnDelete') ctx.refuse(['spec', 'updateStrategy', 'type'], "tasks are always updated by the service's rolling update");
  const rolling = readMap(ctx, strategy['rollingUpdate'], ['spec', 'updateStrategy', 'rollingUpdate']) ?? {};
  checkFields(ctx, rolling, ['spec', 'updateStrategy', 'rollingUpdate'], {
    maxUnavailable: true,
    maxSurge: 'a node runs one task of a global service at a time',
  });
  const unavailable =
    typeof rolling['maxUnavailable'] === 'string'
      ? (ctx.refuse(['spec', 'updateStrategy', 'rollingUpdate', 'maxUnavailable'], 'a percentage of nodes is not known in advance; give a number'), 1)
      : (readInt(ctx, rolling['maxUnavailable'], ['spec', 'updateStrategy', 'rollingUpdate', 'maxUnavailable'], 1) ?? 1);
  const service = nativeService(meta, meta.name, template, {
    mode: 'global',
    restart: { condition: 'any' },
    updateConfig: { parallelism: unavailable, order: 'stop-first' },
  });
  return {
    doc: ctx.doc,
    kind: 'DaemonSet',
    name: meta.name,
    stack: meta.stack,
    podLabels: template.labels,
    services: [service],
    containerPorts: template.pod.containerPorts,
  };
}
