// What the workload kinds share: the pod template, the selector, and the native Service envelope.
import { API_VERSION, type Service, type ServiceSpec } from '../../common/resources/types.js';
import type { IssuePath } from '../../common/resources/schema.js';
import { checkFields, type DocContext } from './findings.js';
import { translatePodSpec } from './pod-template.js';
import { readMap, readStringMap, type YamlMap } from './read.js';
import type { KubeLookup, KubeMeta, PodTranslation } from './types.js';

export interface Template {
  labels: Record<string, string>;
  pod: PodTranslation;
}

export function translateTemplate(
  ctx: DocContext,
  spec: YamlMap,
  stack: string,
  lookup: KubeLookup,
  claimTemplates: ReadonlySet<string> = new Set(),
): Template | undefined {
  const path: IssuePath = ['spec', 'template'];
  const template = readMap(ctx, spec['template'], path);
  if (!template) {
    ctx.invalid(path, 'required field is missing (the pod template)');
    return undefined;
  }
  checkFields(ctx, template, path, { metadata: true, spec: true });
  const metadata = readMap(ctx, template['metadata'], [...path, 'metadata']) ?? {};
  checkFields(ctx, metadata, [...path, 'metadata'], { labels: true, annotations: true, name: true, namespace: true, creationTimestamp: true });
  const labels = readStringMap(ctx, metadata['labels'], [...path, 'metadata', 'labels']) ?? {};
  const pod = translatePodSpec(ctx, template['spec'], [...path, 'spec'], stack, lookup, claimTemplates);
  return pod ? { labels, pod } : undefined;
}

/** Deployments and DaemonSets keep their pods running: any other restartPolicy is an error. */
export function checkRestartsAlways(ctx: DocContext, template: Template, kind: string): void {
  const policy = template.pod.restartPolicy;
  if (policy !== undefined && policy !== 'Always') {
    ctx.invalid(['spec', 'template', 'spec', 'restartPolicy'], `a ${kind}'s pods restart Always, got ${JSON.stringify(policy)}`);
  }
}

/** spec.selector must pick the template's pods (Kubernetes rejects it otherwise); expressions are refused. */
export function checkSelector(ctx: DocContext, spec: YamlMap, podLabels: Readonly<Record<string, string>>, required: boolean): void {
  const path: IssuePath = ['spec', 'selector'];
  const selector = readMap(ctx, spec['selector'], path);
  if (!selector) {
    if (required) ctx.invalid(path, "required field is missing (matchLabels of the template's labels)");
    return;
  }
  checkFields(ctx, selector, path, { matchLabels: true, matchExpressions: 'only matchLabels selectors are translated' });
  const match = readStringMap(ctx, selector['matchLabels'], [...path, 'matchLabels']) ?? {};
  for (const [key, value] of Object.entries(match)) {
    if (podLabels[key] !== value)
      ctx.invalid(
        [...path, 'matchLabels', key],
        `does not match the template's labels (spec.template.metadata.labels.${key} is ${JSON.stringify(podLabels[key] ?? null)})`,
      );
  }
}

/** The native Service of a workload: the pod's translation plus what the workload kind decides. */
export function nativeService(meta: KubeMeta, name: string, template: Template, extra: Partial<ServiceSpec>): Service {
  const { image = '', ...rest } = template.pod.spec;
  const spec: ServiceSpec = { image, ...rest, ...extra };
  if (template.pod.hostPorts.length > 0) spec.ports = [...template.pod.hostPorts];
  if (Object.keys(template.labels).length > 0) spec.containerLabels = { ...template.labels };
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name, ...(meta.stack ? { stack: meta.stack } : {}), ...(meta.labels ? { labels: meta.labels } : {}) },
    spec,
  };
}
