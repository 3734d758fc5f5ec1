// Rewrites the short forms of one (valid, interpolated) Compose file into the long forms, so that
// merging and translation see one shape per key: "K=V" lists become mappings, port and volume
// strings become {target, published...} / {type, source, target}, secret names become {source}.
// Only the compose-spec's own key names are used, so the key table applies to the result.

import type { IssuePath } from '../../common/resources/schema.js';

export type Dict = Record<string, unknown>;

export interface NormalizeIssue {
  path: IssuePath;
  message: string;
}

export function isDict(value: unknown): value is Dict {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A scalar's text, as String() writes it. The structure check (load.ts) lets only scalars reach the
 * places that call this; should a mapping or list slip through, its JSON names it better in a message
 * than "[object Object]" would. */
export function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === null || value === undefined) return String(value);
  return JSON.stringify(value);
}

/** Where each list item made by normalisation came from, to point messages at the right line. */
export const itemOrigins = new WeakMap<object, { file: string; path: IssuePath }>();

const LIST_OR_DICT_KEYS = ['environment', 'labels', 'annotations', 'sysctls'] as const;

/** ["A=1", "B"] or {A: 1, B: null} → {A: "1", B: null}; null means "take it from the environment". */
export function listOrDictToMap(value: unknown, separator = '='): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (Array.isArray(value)) {
    for (const item of value) {
      const text = String(item);
      const at = text.indexOf(separator);
      Object.defineProperty(out, at < 0 ? text : text.slice(0, at), {
        value: at < 0 ? null : text.slice(at + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  } else if (isDict(value)) {
    for (const [key, v] of Object.entries(value)) {
      Object.defineProperty(out, key, { value: v === null ? null : scalarText(v), enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

const PORT_RANGE = /^(\d+)(?:-(\d+))?$/;
const MAX_PORT = 65535;

/** A port or range of ports; undefined when it is not one (beyond 65535 is no port, and a range
 * "1-99999999999" would otherwise become 10^11 port objects). */
function range(text: string): [number, number] | undefined {
  const m = PORT_RANGE.exec(text);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  return end >= start && end <= MAX_PORT ? [start, end] : undefined;
}

/** "[host_ip:][published:]target[/protocol]" with ranges → long-form ports. */
export function parsePortString(text: string): Dict[] | string {
  const [spec = '', protocol = 'tcp', extra] = text.split('/');
  if (extra !== undefined) return `invalid port ${JSON.stringify(text)}: more than one "/"`;
  let hostIp: string | undefined;
  let rest = spec;
  // An IPv6 host address is written in brackets: "[::1]:8080:80".
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1];
    rest = v6[2] ?? '';
  }
  const parts = rest.split(':');
  if (!v6 && parts.length === 3) hostIp = parts.shift();
  if (parts.length > 2) return `invalid port ${JSON.stringify(text)}: expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]`;
  const targetText = parts.pop() ?? '';
  const publishedText = parts.pop();
  const target = range(targetText);
  if (!target) return `invalid port ${JSON.stringify(text)}: target ${JSON.stringify(targetText)} is not a port or range like 8000-8010`;
  const published = publishedText === undefined || publishedText === '' ? undefined : range(publishedText);
  if (publishedText && !published) return `invalid port ${JSON.stringify(text)}: published ${JSON.stringify(publishedText)} is not a port or range`;
  const count = target[1] - target[0] + 1;
  if (published && published[1] - published[0] + 1 !== count && published[0] !== published[1]) {
    return `invalid port ${JSON.stringify(text)}: the published range and the target range differ in length`;
  }
  const out: Dict[] = [];
  for (let i = 0; i < count; i++) {
    const p: Dict = { target: target[0] + i, protocol };
    if (published) p['published'] = published[0] === published[1] ? published[0] : published[0] + i;
    if (hostIp !== undefined && hostIp !== '') p['host_ip'] = hostIp;
    p['mode'] = 'ingress';
    out.push(p);
  }
  return out;
}

const BIND_SOURCE = /^(\.|~|\/|[A-Za-z]:[\\/])/;
const PROPAGATIONS = new Set(['shared', 'slave', 'private', 'rshared', 'rslave', 'rprivate']);

/** "[source:]target[:options]" → a long-form volume. */
export function parseVolumeString(text: string): Dict | string {
  const parts = text.split(':');
  if (parts.length === 1) return { type: 'volume', target: text };
  if (parts.length > 3) return `invalid volume ${JSON.stringify(text)}: expected [SOURCE:]TARGET[:MODE]`;
  const [source = '', target = '', options] = parts;
  if (source === '' || target === '') return `invalid volume ${JSON.stringify(text)}: empty source or target`;
  const bind = BIND_SOURCE.test(source);
  const volume: Dict = { type: bind ? 'bind' : 'volume', source, target };
  if (bind) volume['bind'] = { create_host_path: true };
  for (const option of options?.split(',') ?? []) {
    if (option === 'ro') volume['read_only'] = true;
    else if (option === 'rw') volume['read_only'] = false;
    else if (option === 'nocopy' && !bind) volume['volume'] = { nocopy: true };
    else if ((option === 'z' || option === 'Z') && bind) volume['bind'] = { ...(volume['bind'] as Dict), selinux: option };
    else if (PROPAGATIONS.has(option) && bind) volume['bind'] = { ...(volume['bind'] as Dict), propagation: option };
    else
      return `invalid volume ${JSON.stringify(text)}: unknown option ${JSON.stringify(option)} (expected ro, rw${bind ? ', z, Z or a propagation like rprivate' : ' or nocopy'})`;
  }
  return volume;
}

function stringList(value: unknown): unknown {
  return typeof value === 'string' ? [value] : value;
}

/** Normalises one service in place-free style; `path` is ['services', name]. */
function normalizeService(service: Dict, file: string, path: IssuePath, issues: NormalizeIssue[]): Dict {
  const out: Dict = { ...service };
  for (const key of LIST_OR_DICT_KEYS) if (key in out) out[key] = listOrDictToMap(out[key]);
  // `build: ./dir` is `build: {context: ./dir}`; its args and labels are lists or mappings too.
  if (typeof out['build'] === 'string') out['build'] = { context: out['build'] };
  if (isDict(out['build'])) {
    const build: Dict = { ...out['build'] };
    for (const key of ['args', 'labels']) if (key in build) build[key] = listOrDictToMap(build[key]);
    out['build'] = build;
  }
  if (Array.isArray(out['depends_on'])) {
    out['depends_on'] = Object.fromEntries((out['depends_on'] as string[]).map((name) => [name, { condition: 'service_started', required: true }]));
  }
  if (Array.isArray(out['networks'])) {
    out['networks'] = Object.fromEntries((out['networks'] as string[]).map((name) => [name, null]));
  }
  if (Array.isArray(out['extra_hosts'])) {
    const hosts: Dict = {};
    for (const entry of out['extra_hosts'] as string[]) {
      // "host:ip" (Docker) or "host=ip" (Compose v2); an IPv6 address contains ":", so split at the first.
      const at = entry.search(/[=:]/);
      if (at < 0) {
        issues.push({ path: [...path, 'extra_hosts'], message: `invalid extra host ${JSON.stringify(entry)}: expected "host:address" or "host=address"` });
        continue;
      }
      const host = entry.slice(0, at);
      hosts[host] = [...((hosts[host] as string[] | undefined) ?? []), entry.slice(at + 1)];
    }
    out['extra_hosts'] = hosts;
  } else if (isDict(out['extra_hosts'])) {
    out['extra_hosts'] = Object.fromEntries(Object.entries(out['extra_hosts']).map(([h, a]) => [h, Array.isArray(a) ? a : [a]]));
  }
  for (const key of ['dns', 'dns_search', 'tmpfs']) if (key in out) out[key] = stringList(out[key]);
  if (has('env_file', out)) {
    const files = stringList(out['env_file']) as Array<string | Dict>;
    out['env_file'] = files.map((f) => (typeof f === 'string' ? { path: f, required: true } : { required: true, ...f }));
  }
  if (Array.isArray(out['ports'])) {
    const ports: Dict[] = [];
    (out['ports'] as unknown[]).forEach((p, index) => {
      const here = [...path, 'ports', index];
      let made: Dict[];
      if (typeof p === 'number') made = [{ target: p, protocol: 'tcp', mode: 'ingress' }];
      else if (typeof p === 'string') {
        const parsed = parsePortString(p);
        if (typeof parsed === 'string') {
          issues.push({ path: here, message: parsed });
          return;
        }
        made = parsed;
      } else made = [{ ...(p as Dict) }];
      for (const m of made) {
        itemOrigins.set(m, { file, path: here });
        ports.push(m);
      }
    });
    out['ports'] = ports;
  }
  if (Array.isArray(out['volumes'])) {
    const volumes: Dict[] = [];
    (out['volumes'] as unknown[]).forEach((v, index) => {
      const here = [...path, 'volumes', index];
      const made = typeof v === 'string' ? parseVolumeString(v) : { ...(v as Dict) };
      if (typeof made === 'string') {
        issues.push({ path: here, message: made });
        return;
      }
      itemOrigins.set(made, { file, path: here });
      volumes.push(made);
    });
    out['volumes'] = volumes;
  }
  for (const key of ['secrets', 'configs']) {
    if (!Array.isArray(out[key])) continue;
    out[key] = (out[key] as unknown[]).map((ref, index) => {
      const made: Dict = typeof ref === 'string' ? { source: ref } : { ...(ref as Dict) };
      itemOrigins.set(made, { file, path: [...path, key, index] });
      return made;
    });
  }
  return out;
}

function has(name: string, dict: Dict): boolean {
  return Object.hasOwn(dict, name) && dict[name] !== undefined;
}

/** Normalises a whole Compose file (already validated and interpolated). */
export function normalizeFile(model: Dict, file: string): { model: Dict; issues: NormalizeIssue[] } {
  const issues: NormalizeIssue[] = [];
  const out: Dict = { ...model };
  if (isDict(model['services'])) {
    out['services'] = Object.fromEntries(
      Object.entries(model['services']).map(([name, service]) => [
        name,
        isDict(service) ? normalizeService(service, file, ['services', name], issues) : service,
      ]),
    );
  }
  for (const top of ['networks', 'volumes', 'secrets', 'configs']) {
    if (!isDict(model[top])) continue;
    out[top] = Object.fromEntries(
      Object.entries(model[top]).map(([name, def]) => {
        if (!isDict(def)) return [name, def ?? {}];
        return [name, 'labels' in def ? { ...def, labels: listOrDictToMap(def['labels']) } : def];
      }),
    );
  }
  return { model: out, issues };
}
