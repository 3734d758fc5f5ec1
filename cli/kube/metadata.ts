// metadata of any Kubernetes object: name, namespace (→ stack) and labels.
import type { IssuePath } from '../../common/resources/schema.js';
import { DNS_LABEL } from '../../common/resources/names.js';
import { checkFields, type DocContext } from './findings.js';
import { readMap, readString, readStringMap } from './read.js';
import type { KubeMeta } from './types.js';

/** The namespace "default" is Tessera's default stack (""); any other namespace is a stack of that name. */
export function stackOfNamespace(namespace: string | undefined): string {
  return namespace === undefined || namespace === 'default' ? '' : namespace;
}

export function readMeta(ctx: DocContext, doc: Readonly<Record<string, unknown>>): KubeMeta | undefined {
  const path: IssuePath = ['metadata'];
  const metadata = readMap(ctx, doc['metadata'], path);
  if (!metadata) {
    ctx.invalid(path, 'required field is missing (expected a mapping with at least name)');
    return undefined;
  }
  checkFields(ctx, metadata, path, {
    name: true,
    namespace: true,
    labels: true,
    // Annotations carry no behaviour of their own; the ones that do (e.g. ingress classes) belong to kinds refused anyway.
    annotations: true,
    // Written by a Kubernetes API server; present in `kubectl get -o yaml` output and meaningless here.
    uid: true,
    resourceVersion: true,
    creationTimestamp: true,
    generation: true,
    managedFields: true,
    selfLink: true,
    generateName: 'names are chosen by the manifest: set metadata.name',
    finalizers: 'Tessera has no finalizers',
    ownerReferences: 'Tessera has no owner references',
  });
  const name = readString(ctx, metadata['name'], [...path, 'name']);
  if (name === undefined) {
    if (metadata['name'] === undefined) ctx.invalid([...path, 'name'], 'required field is missing');
    return undefined;
  }
  const namespace = readString(ctx, metadata['namespace'], [...path, 'namespace']);
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) {
    ctx.invalid([...path, 'namespace'], `expected a DNS label (a namespace becomes a stack name), got ${JSON.stringify(namespace)}`);
  }
  const labels = readStringMap(ctx, metadata['labels'], [...path, 'labels']);
  return { name, stack: stackOfNamespace(namespace), ...(labels && Object.keys(labels).length > 0 ? { labels } : {}) };
}
