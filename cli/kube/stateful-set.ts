// apps/v1 StatefulSet → one single-replica service per ordinal, so names and volumes are stable:
//   pod NAME-i            → service NAME-i (hostname NAME-i, found by DNS as NAME-i)
//   claim template DATA   → Volume DATA-NAME-i (Kubernetes' own PVC name), mounted only by NAME-i
// Tessera cannot template a volume source per task slot, so the ordinals are separate services.
// Ordered start (podManagementPolicy OrderedReady, the default) is not honoured and is refused;
// the ordinals are updated independently of each other, so an explicit updateStrategy is refused.
import { API_VERSION, type Volume } from '../../common/resources/types.js';
import type { IssuePath } from '../../common/resources/schema.js';
import { checkFields, type DocContext } from './findings.js';
import { translateClaimSpec } from './persistent-volume-claim.js';
import { readInt, readList, readMap, readRequiredMap, readString, type YamlMap } from './read.js';
import type { KubeLookup, KubeMeta, Workload } from './types.js';
import { checkSelector, nativeService, translateTemplate } from './workload.js';

export interface StatefulSetTranslation {
  workload: Workload;
  volumes: Volume[];
  /** spec.serviceName: the headless Service that governs the set. */
  serviceName?: string;
}

export function translateStatefulSet(ctx: DocContext, doc: YamlMap, meta: KubeMeta, lookup: KubeLookup): StatefulSetTranslation | undefined {
  const spec = readRequiredMap(ctx, doc['spec'], ['spec']);
  if (!spec) return undefined;
  checkFields(ctx, spec, ['spec'], {
    replicas: true,
    selector: true,
    template: true,
    serviceName: true,
    volumeClaimTemplates: true,
    podManagementPolicy: true,
    revisionHistoryLimit: true,
    updateStrategy: 'each ordinal is a service of its own and is updated by its own rolling update',
    minReadySeconds: 'a new task counts as available once running (or healthy, with a probe)',
    persistentVolumeClaimRetentionPolicy: 'volumes are kept until deleted (Retain)',
    ordinals: 'ordinals start at 0',
  });
  const policy = readString(ctx, spec['podManagementPolicy'], ['spec', 'podManagementPolicy']) ?? 'OrderedReady';
  if (policy !== 'Parallel') {
    ctx.refuse(['spec', 'podManagementPolicy'], `ordered start (${policy}, the default) is not honoured: the ordinals start together; set Parallel`);
  }
  const replicas = readInt(ctx, spec['replicas'], ['spec', 'replicas']) ?? 1;
  const claims: Array<{ name: string; path: IssuePath; doc: YamlMap }> = [];
  readList(ctx, spec['volumeClaimTemplates'], ['spec', 'volumeClaimTemplates'])?.forEach((entry, i) => {
    const path: IssuePath = ['spec', 'volumeClaimTemplates', i];
    const claim = readMap(ctx, entry, path);
    if (!claim) return;
    checkFields(ctx, claim, path, { metadata: true, spec: true, apiVersion: true, kind: true });
    const metadata = readMap(ctx, claim['metadata'], [...path, 'metadata']) ?? {};
    checkFields(ctx, metadata, [...path, 'metadata'], { name: true, labels: true, annotations: true });
    const name = readString(ctx, metadata['name'], [...path, 'metadata', 'name']);
    if (name === undefined) ctx.invalid([...path, 'metadata', 'name'], 'required field is missing');
    else claims.push({ name, path, doc: claim });
  });
  const template = translateTemplate(ctx, spec, meta.stack, lookup, new Set(claims.map((c) => c.name)));
  if (!template) return undefined;
  checkSelector(ctx, spec, template.labels, true);
  const claimSpecs = claims.map((claim) => ({ ...claim, volume: translateClaimSpec(ctx, claim.doc['spec'], [...claim.path, 'spec']) }));
  const services = [];
  const volumes: Volume[] = [];
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const podName = `${meta.name}-${ordinal}`;
    const service = nativeService(meta, podName, template, { mode: 'replicated', replicas: 1, hostname: podName, restart: { condition: 'any' } });
    const own = template.pod.claimMounts.map(({ claim, mount }) => ({ ...mount, source: `${claim}-${podName}` }));
    if (own.length > 0) service.spec.mounts = [...(service.spec.mounts ?? []), ...own];
    services.push(service);
    for (const claim of claimSpecs) {
      volumes.push({
        apiVersion: API_VERSION,
        kind: 'Volume',
        metadata: { name: `${claim.name}-${podName}`, ...(meta.stack ? { stack: meta.stack } : {}) },
        spec: claim.volume,
      });
    }
  }
  const serviceName = readString(ctx, spec['serviceName'], ['spec', 'serviceName']);
  return {
    workload: {
      doc: ctx.doc,
      kind: 'StatefulSet',
      name: meta.name,
      stack: meta.stack,
      podLabels: template.labels,
      services,
      containerPorts: template.pod.containerPorts,
    },
    volumes,
    ...(serviceName !== undefined ? { serviceName } : {}),
  };
}
