// ConfigMap and Secret share a shape: keys with content. Tessera's Config and Secret hold one file
// each, so a ConfigMap/Secret NAME becomes one object per key, named NAME.KEY.
import { API_VERSION, type Config, type Secret } from '../../common/resources/types.js';
import type { DocContext } from './findings.js';
import type { KeyedData, KubeMeta } from './types.js';

const OBJECT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export function keyedObjects<K extends 'Config' | 'Secret'>(
  ctx: DocContext,
  kind: K,
  meta: KubeMeta,
  content: ReadonlyMap<string, { base64: string; path: (string | number)[] }>,
): { objects: Array<K extends 'Config' ? Config : Secret>; data: KeyedData } {
  const objects: Array<Config | Secret> = [];
  const objectNames = new Map<string, string>();
  const text = new Map<string, string>();
  for (const [key, { base64, path }] of content) {
    const name = `${meta.name}.${key}`;
    if (!OBJECT_NAME.test(name)) {
      ctx.invalid(path, `the ${kind} for this key would be named ${JSON.stringify(name)}: at most 63 letters, digits, "_", "." and "-"`);
      continue;
    }
    objectNames.set(key, name);
    text.set(key, Buffer.from(base64, 'base64').toString('utf8'));
    objects.push({
      apiVersion: API_VERSION,
      kind,
      metadata: { name, ...(meta.stack ? { stack: meta.stack } : {}), ...(meta.labels ? { labels: meta.labels } : {}) },
      spec: { data: base64 },
    } as Config | Secret);
  }
  return { objects: objects as Array<K extends 'Config' ? Config : Secret>, data: { doc: ctx.doc, objectNames, text } };
}
