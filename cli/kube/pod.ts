// v1 Pod → a single-replica service; restartPolicy Always / OnFailure / Never → restart condition any / on-failure / none.
import type { DocContext } from './findings.js';
import { RESTART_CONDITIONS, translatePodSpec } from './pod-template.js';
import type { YamlMap } from './read.js';
import type { KubeLookup, KubeMeta, Workload } from './types.js';
import { nativeService } from './workload.js';

export function translatePod(ctx: DocContext, doc: YamlMap, meta: KubeMeta, lookup: KubeLookup): Workload | undefined {
  const pod = translatePodSpec(ctx, doc['spec'], ['spec'], meta.stack, lookup);
  if (!pod) return undefined;
  const labels = meta.labels ?? {};
  const condition = RESTART_CONDITIONS[pod.restartPolicy ?? 'Always'] ?? 'any';
  const service = nativeService(meta, meta.name, { labels, pod }, { mode: 'replicated', replicas: 1, restart: { condition } });
  return { doc: ctx.doc, kind: 'Pod', name: meta.name, stack: meta.stack, podLabels: labels, services: [service], containerPorts: pod.containerPorts };
}
