// Compose variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
// ${VAR?error}, ${VAR:+replacement}, ${VAR+replacement}, and $$ for a literal "$". Defaults and
// replacements may themselves contain interpolations, as in Compose v2.

import type { IssuePath } from '../../control-plane/resources/schema.js';

export type Lookup = (name: string) => string | undefined;

export class InterpolationError extends Error {
  override name = 'InterpolationError';
}

export interface InterpolationResult {
  value: string;
  /** Variables that were used but not set, substituted by "". */
  unset: string[];
}

const NAME_START = /[_a-zA-Z]/;
const NAME_CHAR = /[_a-zA-Z0-9]/;

/** Index of the "}" closing the "${" whose content starts at `from`, honouring nesting. */
function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '$') { i++; continue; }
    if (text[i] === '$' && text[i + 1] === '{') { depth++; i++; continue; }
    if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/** Interpolates one string. Throws InterpolationError for a malformed expression or a ${VAR?err}. */
export function interpolateString(text: string, lookup: Lookup): InterpolationResult {
  const unset: string[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c !== '$') { out += c; i++; continue; }
    const next = text[i + 1];
    if (next === '$') { out += '$'; i += 2; continue; }
    if (next === '{') {
      const end = closingBrace(text, i + 2);
      if (end < 0) throw new InterpolationError(`invalid interpolation ${JSON.stringify(text.slice(i))}: missing "}"`);
      out += substitute(text.slice(i + 2, end), lookup, unset);
      i = end + 1;
      continue;
    }
    if (next !== undefined && NAME_START.test(next)) {
      let j = i + 1;
      while (j < text.length && NAME_CHAR.test(text[j] ?? '')) j++;
      const name = text.slice(i + 1, j);
      const value = lookup(name);
      if (value === undefined) unset.push(name);
      out += value ?? '';
      i = j;
      continue;
    }
    // A lone "$" (end of string, or before a character that cannot start a name) stays as it is.
    out += c;
    i++;
  }
  return { value: out, unset };
}

function substitute(expression: string, lookup: Lookup, unset: string[]): string {
  const match = /^([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?+])([\s\S]*))?$/.exec(expression);
  if (!match) throw new InterpolationError(`invalid interpolation "\${${expression}}": expected \${NAME}, \${NAME:-default}, \${NAME:?error} or similar`);
  const [, name = '', operator, rest = ''] = match;
  const value = lookup(name);
  const nested = (): string => {
    const inner = interpolateString(rest, lookup);
    unset.push(...inner.unset);
    return inner.value;
  };
  switch (operator) {
    case undefined:
      if (value === undefined) unset.push(name);
      return value ?? '';
    case ':-': return value === undefined || value === '' ? nested() : value;
    case '-': return value === undefined ? nested() : value;
    case ':+': return value === undefined || value === '' ? '' : nested();
    case '+': return value === undefined ? '' : nested();
    case ':?':
      if (value === undefined || value === '') throw new InterpolationError(`required variable ${name} is ${value === undefined ? 'not set' : 'empty'}: ${nested() || 'no message'}`);
      return value;
    case '?':
      if (value === undefined) throw new InterpolationError(`required variable ${name} is not set: ${nested() || 'no message'}`);
      return value;
    default:
      throw new InterpolationError(`invalid interpolation "\${${expression}}"`);
  }
}

export interface InterpolationIssue {
  path: IssuePath;
  message: string;
}

export interface TreeInterpolation {
  value: unknown;
  issues: InterpolationIssue[];
  /** Unset variables with the first path that used each. */
  unset: Map<string, IssuePath>;
}

/** Interpolates every string value (not keys) of a parsed document. */
export function interpolateTree(value: unknown, lookup: Lookup): TreeInterpolation {
  const issues: InterpolationIssue[] = [];
  const unset = new Map<string, IssuePath>();
  const walk = (node: unknown, path: IssuePath): unknown => {
    if (typeof node === 'string') {
      try {
        const result = interpolateString(node, lookup);
        for (const name of result.unset) if (!unset.has(name)) unset.set(name, path);
        return result.value;
      } catch (error) {
        if (!(error instanceof InterpolationError)) throw error;
        issues.push({ path, message: error.message });
        return node;
      }
    }
    if (Array.isArray(node)) return node.map((item, index) => walk(item, [...path, index]));
    if (node !== null && typeof node === 'object') {
      // fromEntries defines own keys, so a "__proto__" key stays data.
      return Object.fromEntries(Object.entries(node).map(([key, child]) => [key, walk(child, [...path, key])]));
    }
    return node;
  };
  return { value: walk(value, []), issues, unset };
}
