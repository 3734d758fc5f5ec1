// Merging Compose files given with several -c, by the compose-spec's merge rules: mappings merge
// key by key, scalars and the shell commands (command, entrypoint, healthcheck.test) are replaced,
// ports / volumes / secrets / configs merge by their unique key, other sequences are appended
// (without repeating an identical item). Works on normalised files (normalize.ts).

import { canonicalJson } from './shape.js';
import { isDict, scalarText, type Dict } from './normalize.js';

/** Assignment that keeps a "__proto__" key as data. */
function put(target: Dict, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const REPLACED = new Set(['command', 'entrypoint']);

function portKey(p: Dict): string {
  return JSON.stringify([p['host_ip'] ?? '', scalarText(p['target']), scalarText(p['published'] ?? ''), p['protocol'] ?? 'tcp']);
}

/** Default target of a secret/config reference, as the runtime will place it. */
function referenceKey(kind: 'secrets' | 'configs') {
  return (r: Dict): string => String(r['target'] ?? (kind === 'secrets' ? r['source'] : `/${String(r['source'])}`));
}

const UNIQUE_KEY: Record<string, (item: Dict) => string> = {
  ports: portKey,
  volumes: (v) => String(v['target']),
  secrets: referenceKey('secrets'),
  configs: referenceKey('configs'),
};

// Both merges index the items by key (a Map, a Set) so long lists cost their length, not its square.

function mergeByKey(base: unknown[], over: unknown[], keyOf: (item: Dict) => string): unknown[] {
  const out = [...base];
  const key = (item: unknown) => (isDict(item) ? keyOf(item) : JSON.stringify(item));
  const firstAt = new Map<string, number>();
  out.forEach((item, index) => {
    if (!firstAt.has(key(item))) firstAt.set(key(item), index);
  });
  for (const item of over) {
    const k = key(item);
    const at = firstAt.get(k);
    if (at !== undefined) out[at] = item;
    else {
      firstAt.set(k, out.length);
      out.push(item);
    }
  }
  return out;
}

function appendUnique(base: unknown[], over: unknown[]): unknown[] {
  const out = [...base];
  const present = new Set(out.map(canonicalJson));
  for (const item of over) {
    const k = canonicalJson(item);
    if (present.has(k)) continue;
    present.add(k);
    out.push(item);
  }
  return out;
}

function mergeService(base: Dict, over: Dict): Dict {
  const out: Dict = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const previous = out[key];
    if (REPLACED.has(key) || previous === undefined || previous === null || value === null) {
      out[key] = value;
    } else if (key === 'healthcheck' && isDict(previous) && isDict(value)) {
      out[key] = { ...previous, ...value };
    } else if (Array.isArray(previous) && Array.isArray(value)) {
      const keyOf = UNIQUE_KEY[key];
      out[key] = keyOf ? mergeByKey(previous, value, keyOf) : appendUnique(previous, value);
    } else {
      out[key] = mergeValue(previous, value);
    }
  }
  return out;
}

/** Generic merge: mappings recursively, sequences appended, anything else replaced. */
export function mergeValue(base: unknown, over: unknown): unknown {
  if (isDict(base) && isDict(over)) {
    const out: Dict = { ...base };
    for (const [key, value] of Object.entries(over)) {
      put(out, key, Object.hasOwn(out, key) ? mergeValue(out[key], value) : value);
    }
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over)) return appendUnique(base, over);
  return over;
}

/** Merges `over` onto `base` (both normalised Compose models). */
export function mergeModels(base: Dict, over: Dict): Dict {
  const out: Dict = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (key === 'services' && isDict(out[key]) && isDict(value)) {
      const services: Dict = { ...(out[key] as Dict) };
      for (const [name, service] of Object.entries(value)) {
        const previous = services[name];
        services[name] = isDict(previous) && isDict(service) ? mergeService(previous, service) : service;
      }
      out[key] = services;
    } else {
      put(out, key, Object.hasOwn(out, key) ? mergeValue(out[key], value) : value);
    }
  }
  return out;
}
