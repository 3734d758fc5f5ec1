// nodeSelector, nodeName and the simple shapes of node affinity → placement constraints.
import type { IssuePath } from '../../common/resources/schema.js';
import { checkFields, type DocContext } from './findings.js';
import { readList, readMap, readString, readStringList, readStringMap } from './read.js';

const HOSTNAME_LABEL = 'kubernetes.io/hostname';
const AFFINITY_SHAPE = 'only a required node affinity with one term of In/NotIn expressions of one value each is translated';

function constraint(key: string, op: '==' | '!=', value: string): string {
  return key === HOSTNAME_LABEL ? `node.hostname${op}${value}` : `node.labels.${key}${op}${value}`;
}

function nodeAffinity(ctx: DocContext, value: unknown, path: IssuePath): string[] {
  const affinity = readMap(ctx, value, path);
  if (!affinity) return [];
  checkFields(ctx, affinity, path, {
    requiredDuringSchedulingIgnoredDuringExecution: true,
    preferredDuringSchedulingIgnoredDuringExecution: 'preferences are not weighed; use a required affinity or placement preferences in a native manifest',
  });
  const reqPath: IssuePath = [...path, 'requiredDuringSchedulingIgnoredDuringExecution'];
  const required = readMap(ctx, affinity['requiredDuringSchedulingIgnoredDuringExecution'], reqPath);
  if (!required) return [];
  checkFields(ctx, required, reqPath, { nodeSelectorTerms: true });
  const terms = readList(ctx, required['nodeSelectorTerms'], [...reqPath, 'nodeSelectorTerms']) ?? [];
  if (terms.length !== 1) {
    ctx.refuse([...reqPath, 'nodeSelectorTerms'], `${AFFINITY_SHAPE} (alternatives between terms cannot be expressed as constraints)`);
    return [];
  }
  const termPath: IssuePath = [...reqPath, 'nodeSelectorTerms', 0];
  const term = readMap(ctx, terms[0], termPath);
  if (!term) return [];
  checkFields(ctx, term, termPath, { matchExpressions: true, matchFields: AFFINITY_SHAPE });
  const constraints: string[] = [];
  readList(ctx, term['matchExpressions'], [...termPath, 'matchExpressions'])?.forEach((entry, i) => {
    const at: IssuePath = [...termPath, 'matchExpressions', i];
    const expr = readMap(ctx, entry, at);
    if (!expr) return;
    const key = readString(ctx, expr['key'], [...at, 'key']);
    const operator = readString(ctx, expr['operator'], [...at, 'operator']);
    const values = readStringList(ctx, expr['values'], [...at, 'values']) ?? [];
    if (key === undefined || operator === undefined) {
      ctx.invalid(at, 'expected key and operator');
      return;
    }
    if ((operator !== 'In' && operator !== 'NotIn') || values.length !== 1) {
      ctx.refuse(at, `${AFFINITY_SHAPE}, got ${operator} with ${values.length} value(s)`);
      return;
    }
    constraints.push(constraint(key, operator === 'In' ? '==' : '!=', values[0]!));
  });
  return constraints;
}

export function translatePlacement(ctx: DocContext, podSpec: Readonly<Record<string, unknown>>, path: IssuePath): string[] {
  const constraints: string[] = [];
  const selector = readStringMap(ctx, podSpec['nodeSelector'], [...path, 'nodeSelector']);
  for (const [key, value] of Object.entries(selector ?? {})) constraints.push(constraint(key, '==', value));
  const nodeName = readString(ctx, podSpec['nodeName'], [...path, 'nodeName']);
  if (nodeName !== undefined) constraints.push(`node.hostname==${nodeName}`);
  const affinity = readMap(ctx, podSpec['affinity'], [...path, 'affinity']);
  if (affinity) {
    checkFields(ctx, affinity, [...path, 'affinity'], {
      nodeAffinity: true,
      podAffinity: 'tasks are not placed relative to other tasks',
      podAntiAffinity: 'tasks are not placed relative to other tasks; placement.maxReplicasPerNode in a native manifest spreads replicas',
    });
    constraints.push(...nodeAffinity(ctx, affinity['nodeAffinity'], [...path, 'affinity', 'nodeAffinity']));
  }
  return constraints;
}
