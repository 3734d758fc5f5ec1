// The Kubernetes subset → native Tessera objects. Pure: parsed documents in, objects and issues
// (document index + field path) out; cli/manifest/ reads the files and places the issues.
// Order matters across documents: ConfigMaps and Secrets are read first (env and volumes refer to
// them), then the workloads, then the Services that join them by selector.
import { validateStackObject } from '../../common/resources/schema.js';
import { API_VERSION, type StackObject } from '../../common/resources/types.js';
import { formatPath } from '../manifest/errors.js';
import { translateConfigMap } from './config-map.js';
import { translateDaemonSet } from './daemon-set.js';
import { translateDeployment } from './deployment.js';
import { checkFields, Findings, type DocContext } from './findings.js';
import { translateJob } from './job.js';
import { readMeta } from './metadata.js';
import { translateNamespace } from './namespace.js';
import { translatePersistentVolumeClaim } from './persistent-volume-claim.js';
import { translatePod } from './pod.js';
import { isMap, type YamlMap } from './read.js';
import { translateSecret } from './secret.js';
import { joinService, type JoinState } from './service.js';
import { translateStatefulSet } from './stateful-set.js';
import type { KeyedData, KubeLookup, KubeMeta, KubeTranslateOptions, KubeTranslation, TranslatedObject, Workload } from './types.js';

/** The kinds translated, with the apiVersion each is read in. */
export const KUBE_KINDS: Readonly<Record<string, string>> = {
  Deployment: 'apps/v1',
  DaemonSet: 'apps/v1',
  StatefulSet: 'apps/v1',
  Job: 'batch/v1',
  Pod: 'v1',
  Service: 'v1',
  ConfigMap: 'v1',
  Secret: 'v1',
  Namespace: 'v1',
  PersistentVolumeClaim: 'v1',
};

const WORKLOAD_FIELDS = { apiVersion: true, kind: true, metadata: true, spec: true, status: true } as const;

/** A document in Kubernetes' form: an apiVersion other than Tessera's, and a kind. */
export function isKubeDocument(value: unknown): boolean {
  return isMap(value) && typeof value['apiVersion'] === 'string' && value['apiVersion'] !== API_VERSION && typeof value['kind'] === 'string';
}

interface Doc {
  ctx: DocContext;
  value: YamlMap;
  kind: string;
  meta: KubeMeta;
}

function supported(ctx: DocContext, value: unknown): { value: YamlMap; kind: string } | undefined {
  if (!isMap(value)) {
    ctx.invalid([], 'expected a mapping with apiVersion, kind, metadata and spec');
    return undefined;
  }
  const kind = typeof value['kind'] === 'string' ? value['kind'].trim() : '';
  const apiVersion = typeof value['apiVersion'] === 'string' ? value['apiVersion'].trim() : '';
  const expected = KUBE_KINDS[kind];
  if (expected === undefined) {
    ctx.refuse(['kind'], `${kind || '(no kind)'} is not translated; the Kubernetes kinds Tessera takes are ${Object.keys(KUBE_KINDS).join(', ')}`);
    return undefined;
  }
  if (apiVersion !== expected) {
    ctx.refuse(['apiVersion'], `${kind} is read as ${expected}, got ${JSON.stringify(apiVersion)}`);
    return undefined;
  }
  return { value, kind };
}

export function translateKube(documents: readonly unknown[], options: KubeTranslateOptions): KubeTranslation {
  const findings = new Findings(options.lenient);
  const docs: Doc[] = [];
  documents.forEach((raw, index) => {
    const ctx = findings.forDoc(index);
    const ok = supported(ctx, raw);
    if (!ok) return;
    const meta = readMeta(ctx, ok.value);
    if (meta) docs.push({ ctx, value: ok.value, kind: ok.kind, meta });
  });

  const produced: Array<{ doc: number; objects: StackObject[] }> = [];
  const configMaps = new Map<string, KeyedData>();
  const secrets = new Map<string, KeyedData>();
  const lookup: KubeLookup = {
    configMap: (stack, name) => configMaps.get(`${stack}/${name}`),
    secret: (stack, name) => secrets.get(`${stack}/${name}`),
  };
  for (const { ctx, value, kind, meta } of docs) {
    if (kind === 'ConfigMap') {
      const { objects, data } = translateConfigMap(ctx, value, meta);
      configMaps.set(`${meta.stack}/${meta.name}`, data);
      produced.push({ doc: ctx.doc, objects });
    } else if (kind === 'Secret') {
      const { objects, data } = translateSecret(ctx, value, meta);
      secrets.set(`${meta.stack}/${meta.name}`, data);
      produced.push({ doc: ctx.doc, objects });
    } else if (kind === 'Namespace') {
      translateNamespace(ctx, value, meta);
    } else if (kind === 'PersistentVolumeClaim') {
      checkFields(ctx, value, [], WORKLOAD_FIELDS);
      produced.push({ doc: ctx.doc, objects: [translatePersistentVolumeClaim(ctx, value, meta)] });
    }
  }

  const workloads: Workload[] = [];
  for (const { ctx, value, kind, meta } of docs) {
    let workload: Workload | undefined;
    if (['Deployment', 'DaemonSet', 'StatefulSet', 'Pod', 'Job'].includes(kind)) checkFields(ctx, value, [], WORKLOAD_FIELDS);
    if (kind === 'Deployment') workload = translateDeployment(ctx, value, meta, lookup);
    else if (kind === 'DaemonSet') workload = translateDaemonSet(ctx, value, meta, lookup);
    else if (kind === 'Pod') workload = translatePod(ctx, value, meta, lookup);
    else if (kind === 'Job') workload = translateJob(ctx, value, meta, lookup);
    else if (kind === 'StatefulSet') {
      const set = translateStatefulSet(ctx, value, meta, lookup);
      if (set) produced.push({ doc: ctx.doc, objects: set.volumes });
      workload = set?.workload;
    }
    if (workload) {
      workloads.push(workload);
      produced.push({ doc: ctx.doc, objects: workload.services });
    }
  }

  const state: JoinState = { modes: new Map(), aliasNetworks: new Set() };
  for (const { ctx, value, kind, meta } of docs) {
    if (kind === 'Service') joinService(ctx, value, meta, workloads, state);
  }
  // Container ports no Service lists are still worth knowing (`expose`: informational on the network).
  for (const workload of workloads) {
    for (const service of workload.services) {
      for (const port of workload.containerPorts) {
        const expose = (service.spec.expose ??= []);
        if (!expose.some((e) => e.port === port.port && e.protocol === port.protocol)) expose.push({ port: port.port, protocol: port.protocol });
      }
      if (service.spec.expose?.length === 0) delete service.spec.expose;
    }
  }

  const objects: TranslatedObject[] = [];
  for (const stack of [...state.aliasNetworks].sort()) {
    const first = workloads.find((w) => w.stack === stack)!;
    objects.push({
      doc: first.doc,
      object: { apiVersion: API_VERSION, kind: 'Network', metadata: { name: 'default', ...(stack ? { stack } : {}) }, spec: { driver: 'overlay' } },
    });
  }
  for (const { doc, objects: list } of produced.sort((a, b) => a.doc - b.doc)) {
    for (const object of list) {
      // The translation's own output must pass the same schema as a native manifest; a failure
      // here is a value that was passed through (a name, an image), reported on the document.
      const checked = validateStackObject(object);
      if (!checked.ok) {
        for (const issue of checked.issues)
          findings
            .forDoc(doc)
            .invalid(
              [],
              `translates to a ${object.kind} ${object.metadata.name} the cluster would refuse: ${formatPath(issue.path) || '(root)'}: ${issue.message}`,
            );
        continue;
      }
      objects.push({ doc, object: checked.object });
    }
  }
  return { objects, errors: findings.errors, warnings: findings.warnings };
}
