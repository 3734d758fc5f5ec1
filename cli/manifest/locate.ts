// Maps a field path of a parsed object back to where it was written in the YAML source, so schema
// issues can name a line and column. When the path does not exist (a missing required field), the
// nearest existing parent is used: "spec.image is missing" points at `spec:`.

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Pair } from 'yaml';
import type { IssuePath } from '../../common/resources/schema.js';

export interface SourcePosition {
  line: number;
  col: number;
}

function findPair(map: Node, key: string | number): Pair | undefined {
  if (!isMap(map)) return undefined;
  return map.items.find((pair) => {
    const k: unknown = pair.key;
    return isScalar(k) ? String(k.value) === String(key) : k === key;
  });
}

function startOf(node: unknown): number | undefined {
  if (node !== null && typeof node === 'object' && 'range' in node) {
    const range = (node as { range?: [number, number, number] | null }).range;
    return range?.[0];
  }
  return undefined;
}

/**
 * Offset of `path` inside `doc`: the value's position, or the key's when `atKey` (unknown fields,
 * bad map keys) or when the value is empty. Falls back to the deepest parent that exists.
 */
export function locateOffset(doc: Document, path: IssuePath, atKey: boolean): number {
  let node: unknown = doc.contents;
  let best = startOf(node) ?? 0;
  for (const [index, segment] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      const at = startOf(node);
      if (at === undefined) return best;
      best = at;
      continue;
    }
    const pair = isMap(node) ? findPair(node, segment) : undefined;
    if (!pair) return best;
    const keyAt = startOf(pair.key);
    const valueAt = startOf(pair.value);
    const last = index === path.length - 1;
    if (last && (atKey || valueAt === undefined)) return keyAt ?? best;
    // A missing child of this pair should point at the parent's key, where a reader looks for it.
    best = last ? (valueAt ?? best) : (keyAt ?? valueAt ?? best);
    node = pair.value;
  }
  return best;
}

export function locate(doc: Document, lineCounter: LineCounter, path: IssuePath, atKey: boolean): SourcePosition {
  return lineCounter.linePos(locateOffset(doc, path, atKey));
}
