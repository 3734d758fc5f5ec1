// Compose variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
// ${VAR?error}, ${VAR:+replacement}, ${VAR+replacement}, and $$ for a literal "$". Defaults and
// replacements may themselves contain interpolations, as in Compose v2.

// describeValue quotes only the start of a long text: a 16 MB value must not become a 16 MB error.
import { describeValue, type IssuePath } from '../../common/resources/schema.js';

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
const OPERATORS = [':-', ':?', ':+', '-', '?', '+'] as const;
type Operator = (typeof OPERATORS)[number];

/**
 * How deep `${A:-${B:-...}}` may nest. Real files nest two or three levels; the limit keeps a
 * hostile file from costing more than a bounded amount of work (and evaluation, which recurses
 * over the parsed expression, from exhausting the stack).
 */
export const MAX_INTERPOLATION_DEPTH = 32;

/** A parsed template: literal text, $NAME / ${NAME}, or ${NAME<op>template}. */
type Part = string | { name: string } | { name: string; operator: Operator; rest: Part[] };

/** An expression being parsed: its name and operator, and the parts of its default so far. */
interface OpenExpression {
  name: string;
  operator: Operator;
  parts: Part[];
  /** Offset of its "${" in the text, for messages. */
  start: number;
}

/** The "${...}" starting at `from` (up to its closing brace, or the end), for messages. */
function expressionAt(text: string, from: number): string {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '$') {
      i++;
      continue;
    }
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
      continue;
    }
    if (text[i] === '}' && --depth === 0) return text.slice(from, i + 1);
  }
  return text.slice(from);
}

/**
 * Parses a template without recursion: open `${NAME<op>` expressions sit on an explicit stack, so
 * the nesting a file can ask for is bounded by MAX_INTERPOLATION_DEPTH, not by the call stack.
 */
function parseTemplate(text: string): Part[] {
  const top: Part[] = [];
  const open: OpenExpression[] = [];
  const parts = (): Part[] => open.at(-1)?.parts ?? top;
  let literal = '';
  const flush = (): void => {
    if (literal !== '') parts().push(literal);
    literal = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '}' && open.length > 0) {
      flush();
      const done = open.pop() as OpenExpression;
      parts().push({ name: done.name, operator: done.operator, rest: done.parts });
      i++;
      continue;
    }
    if (c !== '$') {
      literal += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      literal += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const start = i;
      let j = i + 2;
      if (NAME_START.test(text[j] ?? '')) while (j < text.length && NAME_CHAR.test(text[j] ?? '')) j++;
      const name = text.slice(i + 2, j);
      const operator = OPERATORS.find((op) => text.startsWith(op, j));
      if (name !== '' && text[j] === '}') {
        flush();
        parts().push({ name });
        i = j + 1;
        continue;
      }
      if (name === '' || operator === undefined) {
        const expression = expressionAt(text, start);
        if (!expression.endsWith('}')) throw new InterpolationError(`invalid interpolation ${describeValue(text.slice(start))}: missing "}"`);
        throw new InterpolationError(`invalid interpolation ${describeValue(expression)}: expected \${NAME}, \${NAME:-default}, \${NAME:?error} or similar`);
      }
      if (open.length >= MAX_INTERPOLATION_DEPTH) {
        throw new InterpolationError(`interpolation nested more than ${MAX_INTERPOLATION_DEPTH} deep (\${NAME:-\${...}} inside each other)`);
      }
      flush();
      open.push({ name, operator, parts: [], start });
      i = j + operator.length;
      continue;
    }
    if (next !== undefined && NAME_START.test(next)) {
      let j = i + 1;
      while (j < text.length && NAME_CHAR.test(text[j] ?? '')) j++;
      flush();
      parts().push({ name: text.slice(i + 1, j) });
      i = j;
      continue;
    }
    // A lone "$" (end of string, or before a character that cannot start a name) stays as it is.
    literal += c;
    i++;
  }
  const unclosed = open[0];
  if (unclosed) throw new InterpolationError(`invalid interpolation ${describeValue(text.slice(unclosed.start))}: missing "}"`);
  flush();
  return top;
}

/** Evaluates parsed parts; recursion depth is bounded by MAX_INTERPOLATION_DEPTH. */
function evaluate(parts: readonly Part[], lookup: Lookup, unset: string[]): string {
  let out = '';
  for (const part of parts) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    const value = lookup(part.name);
    if (!('operator' in part)) {
      if (value === undefined) unset.push(part.name);
      out += value ?? '';
      continue;
    }
    const nested = (): string => evaluate(part.rest, lookup, unset);
    const { name } = part;
    switch (part.operator) {
      case ':-':
        out += value === undefined || value === '' ? nested() : value;
        break;
      case '-':
        out += value === undefined ? nested() : value;
        break;
      case ':+':
        out += value === undefined || value === '' ? '' : nested();
        break;
      case '+':
        out += value === undefined ? '' : nested();
        break;
      case ':?':
        if (value === undefined || value === '')
          throw new InterpolationError(`required variable ${name} is ${value === undefined ? 'not set' : 'empty'}: ${nested() || 'no message'}`);
        out += value;
        break;
      case '?':
        if (value === undefined) throw new InterpolationError(`required variable ${name} is not set: ${nested() || 'no message'}`);
        out += value;
        break;
    }
  }
  return out;
}

/** Interpolates one string. Throws InterpolationError for a malformed expression or a ${VAR?err}. */
export function interpolateString(text: string, lookup: Lookup): InterpolationResult {
  const unset: string[] = [];
  const value = evaluate(parseTemplate(text), lookup, unset);
  return { value, unset };
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
