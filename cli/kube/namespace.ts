// v1 Namespace → a stack. A stack exists through its objects, so the Namespace itself becomes no
// object; objects with metadata.namespace: NAME land in stack NAME ("default" is the default stack).
import { checkFields, type DocContext } from './findings.js';
import { DNS_LABEL } from '../../common/resources/names.js';
import { readMap, type YamlMap } from './read.js';
import type { KubeMeta } from './types.js';

export function translateNamespace(ctx: DocContext, doc: YamlMap, meta: KubeMeta): void {
  checkFields(ctx, doc, [], { apiVersion: true, kind: true, metadata: true, spec: true, status: true });
  if (meta.stack !== '') ctx.invalid(['metadata', 'namespace'], 'a Namespace is not in a namespace');
  if (!DNS_LABEL.test(meta.name)) ctx.invalid(['metadata', 'name'], 'expected a DNS label (a namespace becomes a stack name)');
  const spec = readMap(ctx, doc['spec'], ['spec']);
  if (spec) checkFields(ctx, spec, ['spec'], { finalizers: 'Tessera has no finalizers' });
}
