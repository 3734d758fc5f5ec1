// v1 ConfigMap → one Config per key (see keyed-data.ts); env references and volumes resolve against it.
import type { Config } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { keyedObjects } from './keyed-data.js';
import { readBool, readStringMap, type YamlMap } from './read.js';
import type { KeyedData, KubeMeta } from './types.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function translateConfigMap(ctx: DocContext, doc: YamlMap, meta: KubeMeta): { objects: Config[]; data: KeyedData } {
  checkFields(ctx, doc, [], {
    apiVersion: true,
    kind: true,
    metadata: true,
    data: true,
    binaryData: true,
    immutable: true,
  });
  if (readBool(ctx, doc['immutable'], ['immutable']) === true) ctx.refuse(['immutable'], 'Tessera configs can be changed by applying again');
  const content = new Map<string, { base64: string; path: (string | number)[] }>();
  for (const [key, value] of Object.entries(readStringMap(ctx, doc['data'], ['data']) ?? {})) {
    content.set(key, { base64: Buffer.from(value, 'utf8').toString('base64'), path: ['data', key] });
  }
  for (const [key, value] of Object.entries(readStringMap(ctx, doc['binaryData'], ['binaryData']) ?? {})) {
    const clean = value.replace(/\s+/g, '');
    if (!BASE64.test(clean)) ctx.invalid(['binaryData', key], 'expected base64 data');
    else if (content.has(key)) ctx.invalid(['binaryData', key], `key ${JSON.stringify(key)} is also in data`);
    else content.set(key, { base64: clean, path: ['binaryData', key] });
  }
  return keyedObjects(ctx, 'Config', meta, content);
}
