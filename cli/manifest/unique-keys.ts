// Problems with mapping keys, found in linear time, before the document is turned into values:
// - duplicates. The YAML library's own check (uniqueKeys) compares each key with every earlier key
//   of its mapping: 20,000 keys take it 4.5 s, and the 400,000 that fit in one 4 MiB file would take
//   half an hour. Loaders parse with uniqueKeys: false and call this instead.
// - keys that are lists, mappings or binary (`? [a, b]: x`, `{a: b}: x`, `!!binary k: x`). A
//   JavaScript object can only have string keys, so the library would quietly turn them into text.
//   Aliases as keys are refused too: they stand for a node whose kind is not checked here.

import { isAlias, isCollection, isMap, isScalar, visit, type Document } from 'yaml';

/** The library's words, so the message is the same as before this check replaced its own. */
export const DUPLICATE_KEY_MESSAGE = 'Map keys must be unique';
export const COLLECTION_KEY_MESSAGE = 'a key must be a plain value (a string or number), not a list, mapping or binary data';

export interface KeyProblem {
  offset: number;
  message: string;
}

/** Every key that repeats an earlier scalar key of its mapping, or is a collection. */
export function keyProblems(doc: Document.Parsed): KeyProblem[] {
  const problems: KeyProblem[] = [];
  visit(doc, {
    Map(_, map) {
      if (!isMap(map)) return;
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key: unknown = pair.key;
        const offset = (key as { range?: [number, number, number] } | null)?.range?.[0] ?? map.range?.[0] ?? 0;
        // A scalar can hold an object too: `!!binary k:` is a Uint8Array.
        const objectScalar = isScalar(key) && key.value !== null && typeof key.value === 'object';
        if (isCollection(key) || isAlias(key) || objectScalar) problems.push({ offset, message: COLLECTION_KEY_MESSAGE });
        else if (isScalar(key)) {
          if (seen.has(key.value)) problems.push({ offset, message: DUPLICATE_KEY_MESSAGE });
          else seen.add(key.value);
        }
      }
    },
  });
  return problems;
}
