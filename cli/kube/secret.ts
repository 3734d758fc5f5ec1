// v1 Secret → one Secret per key (see keyed-data.ts). data is base64; stringData is plain text
// and wins over data for the same key, as in Kubernetes.
import type { Secret } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { keyedObjects } from './keyed-data.js';
import { readBool, readString, readStringMap, type YamlMap } from './read.js';
import type { KeyedData, KubeMeta } from './types.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function translateSecret(ctx: DocContext, doc: YamlMap, meta: KubeMeta): { objects: Secret[]; data: KeyedData } {
  checkFields(ctx, doc, [], {
    apiVersion: true,
    kind: true,
    metadata: true,
    data: true,
    stringData: true,
    type: true,
    immutable: true,
  });
  if (readBool(ctx, doc['immutable'], ['immutable']) === true) ctx.refuse(['immutable'], 'Tessera secrets can be changed by applying again');
  const type = readString(ctx, doc['type'], ['type']);
  if (type === 'kubernetes.io/service-account-token') ctx.refuse(['type'], 'Tessera has no service accounts');
  const content = new Map<string, { base64: string; path: (string | number)[] }>();
  for (const [key, value] of Object.entries(readStringMap(ctx, doc['data'], ['data']) ?? {})) {
    const clean = value.replace(/\s+/g, '');
    if (!BASE64.test(clean)) ctx.invalid(['data', key], 'expected base64 data (use stringData for plain text)');
    else content.set(key, { base64: clean, path: ['data', key] });
  }
  for (const [key, value] of Object.entries(readStringMap(ctx, doc['stringData'], ['stringData']) ?? {})) {
    content.set(key, { base64: Buffer.from(value, 'utf8').toString('base64'), path: ['stringData', key] });
  }
  return keyedObjects(ctx, 'Secret', meta, content);
}
