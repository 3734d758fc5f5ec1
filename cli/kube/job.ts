// batch/v1 Job → a replicated-job service: `completions` tasks that run to completion, retried on
// failure up to backoffLimit times. (A new Kubernetes pod after a failure is a new Tessera task.)
import { checkFields, type DocContext } from './findings.js';
import { readInt, readRequiredMap, type YamlMap } from './read.js';
import type { KubeLookup, KubeMeta, Workload } from './types.js';
import { nativeService, translateTemplate } from './workload.js';

export function translateJob(ctx: DocContext, doc: YamlMap, meta: KubeMeta, lookup: KubeLookup): Workload | undefined {
  const spec = readRequiredMap(ctx, doc['spec'], ['spec']);
  if (!spec) return undefined;
  checkFields(ctx, spec, ['spec'], {
    template: true,
    completions: true,
    parallelism: true,
    backoffLimit: true,
    activeDeadlineSeconds: 'jobs have no deadline',
    ttlSecondsAfterFinished: 'finished jobs are kept until deleted',
    completionMode: 'completions are not indexed',
    suspend: 'jobs cannot be suspended',
    selector: "a job's tasks are its own; selectors are not needed",
    manualSelector: "a job's tasks are its own; selectors are not needed",
    podFailurePolicy: 'failures are retried by backoffLimit only',
    backoffLimitPerIndex: 'completions are not indexed',
    maxFailedIndexes: 'completions are not indexed',
    successPolicy: 'a job succeeds when every completion does',
    podReplacementPolicy: 'a failed task is replaced once it has stopped',
    managedBy: 'Tessera runs the jobs it is given',
  });
  const completions = readInt(ctx, spec['completions'], ['spec', 'completions'], 1) ?? 1;
  const parallelism = readInt(ctx, spec['parallelism'], ['spec', 'parallelism']);
  if (completions > 1 && (parallelism ?? 1) < completions) {
    ctx.refuse(['spec', 'parallelism'], `all ${completions} completions run at once in Tessera; set parallelism to ${completions} (it is ${parallelism ?? 1})`);
  }
  const backoffLimit = readInt(ctx, spec['backoffLimit'], ['spec', 'backoffLimit']) ?? 6;
  const template = translateTemplate(ctx, spec, meta.stack, lookup);
  if (!template) return undefined;
  const policy = template.pod.restartPolicy;
  if (policy !== 'OnFailure' && policy !== 'Never') {
    ctx.invalid(['spec', 'template', 'spec', 'restartPolicy'], `a Job's pods need restartPolicy OnFailure or Never, got ${JSON.stringify(policy ?? null)}`);
  }
  const service = nativeService(meta, meta.name, template, {
    mode: 'replicated-job',
    replicas: completions,
    restart: { condition: 'on-failure', maxAttempts: backoffLimit },
  });
  return {
    doc: ctx.doc,
    kind: 'Job',
    name: meta.name,
    stack: meta.stack,
    podLabels: template.labels,
    services: [service],
    containerPorts: template.pod.containerPorts,
  };
}
