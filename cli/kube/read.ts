// Typed reads of parsed YAML. Each returns undefined (and records why) when the value has the wrong
// shape, so a translation can go on and report every problem of a file at once.
import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import type { DocContext } from './findings.js';

export type YamlMap = Readonly<Record<string, unknown>>;

export function isMap(value: unknown): value is YamlMap {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function readMap(ctx: DocContext, value: unknown, path: IssuePath): YamlMap | undefined {
  if (value === undefined || value === null) return undefined;
  if (isMap(value)) return value;
  ctx.invalid(path, `expected a mapping, got ${describeValue(value)}`);
  return undefined;
}

/** A mapping that must be there: its absence is an error at `path`. */
export function readRequiredMap(ctx: DocContext, value: unknown, path: IssuePath): YamlMap | undefined {
  if (value === undefined || value === null) {
    ctx.invalid(path, 'required field is missing');
    return undefined;
  }
  return readMap(ctx, value, path);
}

export function readList(ctx: DocContext, value: unknown, path: IssuePath): readonly unknown[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value;
  ctx.invalid(path, `expected a list, got ${describeValue(value)}`);
  return undefined;
}

export function readString(ctx: DocContext, value: unknown, path: IssuePath): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  ctx.invalid(path, `expected a string, got ${describeValue(value)}`);
  return undefined;
}

export function readInt(ctx: DocContext, value: unknown, path: IssuePath, minimum = 0): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= minimum) return value;
  ctx.invalid(path, `expected an integer >= ${minimum}, got ${describeValue(value)}`);
  return undefined;
}

export function readBool(ctx: DocContext, value: unknown, path: IssuePath): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  ctx.invalid(path, `expected true or false, got ${describeValue(value)}`);
  return undefined;
}

/** A list of strings; numbers are taken as their text (YAML turns `- 8080` into a number). */
export function readStringList(ctx: DocContext, value: unknown, path: IssuePath): string[] | undefined {
  const list = readList(ctx, value, path);
  if (!list) return undefined;
  const out: string[] = [];
  list.forEach((item, i) => {
    if (typeof item === 'string') out.push(item);
    else if (typeof item === 'number' || typeof item === 'boolean') out.push(String(item));
    else ctx.invalid([...path, i], `expected a string, got ${describeValue(item)}`);
  });
  return out;
}

/** A mapping of string to string (labels, ConfigMap data, nodeSelector). */
export function readStringMap(ctx: DocContext, value: unknown, path: IssuePath): Record<string, string> | undefined {
  const map = readMap(ctx, value, path);
  if (!map) return undefined;
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(map)) {
    if (typeof item === 'string') out[key] = item;
    else if (typeof item === 'number' || typeof item === 'boolean') out[key] = String(item);
    else ctx.invalid([...path, key], `expected a string, got ${describeValue(item)}`);
  }
  return out;
}

/** A port's protocol (Kubernetes spells TCP and UDP in upper case; SCTP is refused), as ours. */
export function readProtocol(ctx: DocContext, value: unknown, path: IssuePath): 'tcp' | 'udp' | undefined {
  const text = readString(ctx, value, path) ?? 'TCP';
  if (text === 'TCP') return 'tcp';
  if (text === 'UDP') return 'udp';
  if (['TCP', 'UDP', 'SCTP'].includes(text.toUpperCase()) && text !== 'SCTP') {
    ctx.invalid(path, `expected ${JSON.stringify(text.toUpperCase())} (Kubernetes spells protocols in upper case), got ${JSON.stringify(text)}`);
  } else {
    ctx.refuse(path, `only TCP and UDP, got ${JSON.stringify(text)}`);
  }
  return undefined;
}
