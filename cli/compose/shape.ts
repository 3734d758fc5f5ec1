// A small structural type language for the Compose file format, with a checker that reports every
// problem with its path. It mirrors the subset of JSON Schema (draft-07) the compose-spec uses, with
// the same meaning for each keyword, because the published compose-spec schema is the reference our
// loader must agree with (a test checks that against the real schema). Messages are ours.

import { describeValue, type IssuePath, type ValidationIssue } from '../../common/resources/schema.js';
import { quoteName } from '../../common/resources/limits.js';

export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'object' | 'array';

export interface Shape {
  /** Allowed JSON types ("integer" is a number without fraction); absent: any. */
  types?: readonly JsonType[];
  enum?: readonly unknown[];
  /** Unanchored, as in JSON Schema. */
  pattern?: RegExp;
  minimum?: number;
  maximum?: number;
  properties?: Readonly<Record<string, Shape>>;
  patternProperties?: ReadonlyArray<readonly [RegExp, Shape]>;
  /** false: keys matched by neither properties nor patternProperties are errors. */
  closed?: boolean;
  required?: readonly string[];
  items?: Shape;
  uniqueItems?: boolean;
  /** Exactly one must match. */
  oneOf?: readonly Shape[];
  /** What a reader should write here, for messages, e.g. 'a list of strings'. */
  noun?: string;
}

export function typeOf(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  return 'object';
}

function typeMatches(value: unknown, types: readonly JsonType[]): boolean {
  const actual = typeOf(value);
  return types.includes(actual) || (actual === 'integer' && types.includes('number'));
}

/** Structural equality as JSON Schema's uniqueItems defines it (key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return (
    ka.length === kb.length && ka.every((k) => Object.hasOwn(b as object, k) && jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

/**
 * A string equal for exactly the values jsonEqual finds equal (key order ignored; NaN equals NaN,
 * as ajv's deep equality has it), so duplicates are found with a Set instead of comparing each
 * item with every other: 100,000 items would otherwise take 10^10 comparisons.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'number') return Object.is(value, -0) ? '0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return String(value);
}

const TYPE_NOUNS: Record<JsonType, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  null: 'nothing (null)',
  object: 'a mapping',
  array: 'a list',
};

export function nounOf(shape: Shape): string {
  if (shape.noun) return shape.noun;
  if (shape.enum) return `one of ${shape.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (shape.oneOf) return shape.oneOf.map(nounOf).join(' or ');
  if (shape.types) return shape.types.map((t) => TYPE_NOUNS[t]).join(' or ');
  return 'anything';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Every problem with `value` against `shape`; empty when it conforms. */
export function check(shape: Shape, value: unknown, path: IssuePath = []): ValidationIssue[] {
  if (shape.types && !typeMatches(value, shape.types)) {
    return [{ path, message: `expected ${nounOf(shape)}, got ${describeValue(value)}` }];
  }
  const issues: ValidationIssue[] = [];
  if (shape.enum && !shape.enum.some((v) => jsonEqual(v, value))) {
    issues.push({ path, message: `expected one of ${shape.enum.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(value)}` });
  }
  if (typeof value === 'string' && shape.pattern && !new RegExp(shape.pattern.source, 'u').test(value)) {
    issues.push({ path, message: `${describeValue(value)} does not have the expected form (${shape.noun ?? shape.pattern.source})` });
  }
  if (typeof value === 'number') {
    if (shape.minimum !== undefined && value < shape.minimum) issues.push({ path, message: `expected a number >= ${shape.minimum}, got ${value}` });
    if (shape.maximum !== undefined && value > shape.maximum) issues.push({ path, message: `expected a number <= ${shape.maximum}, got ${value}` });
  }
  if (isRecord(value)) issues.push(...checkObject(shape, value, path));
  if (Array.isArray(value)) issues.push(...checkArray(shape, value, path));
  if (shape.oneOf) issues.push(...checkOneOf(shape, shape.oneOf, value, path));
  return issues;
}

function checkObject(shape: Shape, value: Record<string, unknown>, path: IssuePath): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const key of shape.required ?? []) {
    if (!Object.hasOwn(value, key)) issues.push({ path: [...path, key], message: `required key ${JSON.stringify(key)} is missing` });
  }
  for (const [key, child] of Object.entries(value)) {
    let matched = false;
    const own = shape.properties && Object.hasOwn(shape.properties, key) ? shape.properties[key] : undefined;
    if (own) {
      matched = true;
      issues.push(...check(own, child, [...path, key]));
    }
    for (const [pattern, sub] of shape.patternProperties ?? []) {
      if (!new RegExp(pattern.source, 'u').test(key)) continue;
      matched = true;
      issues.push(...check(sub, child, [...path, key]));
    }
    if (!matched && shape.closed) {
      const known = Object.keys(shape.properties ?? {});
      const hint = known.length === 0 ? '' : known.length <= 12 ? ` (known keys here: ${known.join(', ')})` : ' (docs/compose.md lists the keys)';
      issues.push({ path: [...path, key], message: `unknown key ${quoteName(key)}${hint}`, unknownField: true });
    }
  }
  return issues;
}

function checkArray(shape: Shape, value: unknown[], path: IssuePath): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (shape.items) value.forEach((item, index) => issues.push(...check(shape.items as Shape, item, [...path, index])));
  if (shape.uniqueItems) {
    const firstIndex = new Map<string, number>();
    value.forEach((item, index) => {
      const key = canonicalJson(item);
      const first = firstIndex.get(key);
      if (first === undefined) firstIndex.set(key, index);
      else issues.push({ path: [...path, index], message: `duplicate of item ${first + 1} of the list` });
    });
  }
  return issues;
}

function checkOneOf(shape: Shape, options: readonly Shape[], value: unknown, path: IssuePath): ValidationIssue[] {
  const results = options.map((option) => check(option, value, path));
  const matching = results.filter((r) => r.length === 0).length;
  if (matching === 1) return [];
  if (matching > 1) return [{ path, message: `${describeValue(value)} matches more than one form of ${nounOf(shape)}` }];
  // Report the problems of the one form whose type fits, which is what the writer meant.
  const typeFits = options.map((option, i) => ({ option, issues: results[i] ?? [] })).filter(({ option }) => !option.types || typeMatches(value, option.types));
  if (typeFits.length === 1 && typeFits[0]) return typeFits[0].issues;
  return [{ path, message: `expected ${nounOf(shape)}, got ${describeValue(value)}` }];
}
