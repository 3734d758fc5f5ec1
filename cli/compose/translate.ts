// A merged, normalised Compose model → the native objects of a stack: one Service per Compose
// service, and the Network, Volume, Secret and Config objects they use. Every key is either
// honoured here or rejected with the reason from keys.ts; nothing is dropped quietly.

import { isAbsolute, resolve as resolvePath } from 'node:path';
import { API_VERSION, type Mount, type NetworkAttachment, type ServiceDependency, type StackObject } from '../../common/resources/types.js';
import { validateStackObject, describeValue, type IssuePath } from '../../common/resources/schema.js';
import { parseCpuNanos, parseDurationMs, parseMemoryBytes } from '../../common/resources/quantity.js';
import { COMPOSE_KEYS, childPath, itemPath } from './keys.js';
import { isDict, scalarText, type Dict } from './normalize.js';
import type { Lookup } from './interpolate.js';
import { parseDotenv as parseDotenvText } from './dotenv.js';
import { readProjectFile, type ProjectFileOptions } from './project-files.js';
import { MAX_FILE_OBJECT_BYTES } from '../../common/resources/limits.js';
import { DNS_LABEL } from '../../common/resources/names.js';
import { describeBytes, MAX_INPUT_FILE_BYTES } from '../manifest/input-limits.js';
import { applyStackExtension, readStackExtension } from './stack-extension.js';
import { Reporter, toBool, type TranslateIssue } from './reporter.js';
import { checkServicePlatform, groupBuildJobs, serviceBuild, type ComposeBuildJob, type ServiceBuild } from './build-plan.js';

export type { TranslateIssue } from './reporter.js';

export interface TranslateOptions {
  stack: string;
  /** The first file's directory: relative paths (bind sources, env_file, secret files) start here. */
  projectDir: string;
  env: Lookup;
  /** How env_file, secret and config files are read: confined to the project directory, capped. */
  files: ProjectFileOptions;
}

export interface Translation {
  objects: StackObject[];
  issues: TranslateIssue[];
  /** Things that do not stop the deploy but change what it does (e.g. an ignored cache_from). */
  warnings: TranslateIssue[];
  /** The images to build before the objects are applied (empty when there are issues). */
  builds: ComposeBuildJob[];
}

type Issues = TranslateIssue[];

// ---- rejected keys --------------------------------------------------------------------------

/** Issues for every key present in the model that the table marks rejected. */
export function rejectedKeys(model: unknown): Issues {
  const issues: Issues = [];
  const walk = (node: unknown, table: string, path: IssuePath, item?: object): void => {
    if (Array.isArray(node)) {
      const items = itemPath(table);
      if (items) node.forEach((child, index) => walk(child, items, [...path, index], isDict(child) ? child : item));
      return;
    }
    if (!isDict(node)) return;
    for (const [key, child] of Object.entries(node)) {
      if (key.startsWith('x-')) continue;
      const sub = childPath(table, key);
      if (!sub) continue;
      const status = COMPOSE_KEYS[sub];
      if (status?.status === 'rejected') {
        issues.push({ path: [...path, key], message: `${key}: not supported: ${status.note ?? ''}`, ...(item ? { item } : {}) });
        continue;
      }
      walk(child, sub, [...path, key], item);
    }
  };
  walk(model, '', []);
  return issues;
}

// ---- value helpers ----------------------------------------------------------------------------

function toInt(value: unknown, path: IssuePath, r: Reporter, min = 0, item?: object): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : /^-?\d+$/.test(scalarText(value).trim()) ? Number(scalarText(value).trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) return r.add(path, `expected an integer >= ${min}, got ${describeValue(value)}`, item);
  return n;
}

function toNumber(value: unknown, path: IssuePath, r: Reporter): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : Number(scalarText(value).trim());
  if (!Number.isFinite(n) || scalarText(value).trim() === '') return r.add(path, `expected a number, got ${describeValue(value)}`);
  return n;
}

function duration(value: unknown, path: IssuePath, r: Reporter): number | undefined {
  if (value === undefined || value === null) return undefined;
  return r.parsed(parseDurationMs(scalarText(value)), path);
}

// Docker's byte sizes: k, m, g, t, p are powers of 1024 in any case, optionally followed by b/ib.
const DOCKER_SIZE = /^(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?$/i;
const DOCKER_UNITS: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

function memory(value: unknown, path: IssuePath, r: Reporter): number | undefined {
  if (value === undefined || value === null) return undefined;
  const m = DOCKER_SIZE.exec(scalarText(value).trim());
  if (m) return Math.ceil(Number(m[1]) * (m[2] ? (DOCKER_UNITS[m[2].toLowerCase()] ?? 1) : 1));
  return r.parsed(parseMemoryBytes(typeof value === 'number' ? value : scalarText(value)), path);
}

function cpus(value: unknown, path: IssuePath, r: Reporter): number | undefined {
  if (value === undefined || value === null) return undefined;
  const nanos = r.parsed(parseCpuNanos(typeof value === 'number' ? value : scalarText(value)), path);
  return nanos === undefined ? undefined : nanos / 1e9;
}

/** File modes: a number (YAML 0o440 or decimal) or an octal string like "0440". */
function fileMode(value: unknown, path: IssuePath, r: Reporter, item?: object): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number')
    return Number.isInteger(value) && value >= 0 && value <= 0o7777 ? value : r.add(path, `expected permission bits like 0440, got ${value}`, item);
  const text = scalarText(value).trim();
  if (!/^0?[0-7]{1,4}$/.test(text)) return r.add(path, `expected octal permission bits like "0440", got ${describeValue(value)}`, item);
  return Number.parseInt(text, 8);
}

function stringMap(value: unknown): Record<string, string> | undefined {
  if (!isDict(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = scalarText(v);
  return Object.keys(out).length > 0 ? out : undefined;
}

const strings = (value: unknown): string[] | undefined => (Array.isArray(value) ? value.map(String) : typeof value === 'string' ? [value] : undefined);

/** Compose's string form of command/entrypoint is split like a shell would (quotes, no expansion). */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] ?? '';
    if (/\s/.test(c)) {
      if (inWord) {
        words.push(word);
        word = '';
        inWord = false;
      }
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      word += text.slice(i + 1, end < 0 ? text.length : end);
      inWord = true;
      i = end < 0 ? text.length : end + 1;
    } else if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] ?? '')) i++;
        word += text[i];
        i++;
      }
      inWord = true;
      i++;
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function command(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? splitCommand(value) : strings(value);
}

// ---- top-level objects --------------------------------------------------------------------------

interface Declared {
  /** Key in the Compose file → name of the object (or of the external resource). */
  names: Map<string, string>;
  external: Set<string>;
}

function externalName(def: Dict, key: string, path: IssuePath, r: Reporter): { external: boolean; name: string } {
  const ext = def['external'];
  const explicit = typeof def['name'] === 'string' ? def['name'] : undefined;
  if (isDict(ext)) return { external: true, name: typeof ext['name'] === 'string' ? ext['name'] : (explicit ?? key) };
  const external = toBool(ext, [...path, 'external'], r) ?? false;
  return { external, name: explicit ?? key };
}

function meta(name: string, stack: string, labels: unknown): { name: string; stack: string; labels?: Record<string, string> } {
  const l = stringMap(labels);
  return { name, stack, ...(l ? { labels: l } : {}) };
}

/** The data of a secret or config, base64, within Swarm's size limit. */
function contentOf(def: Dict, path: IssuePath, o: TranslateOptions, r: Reporter, kind: string): string | undefined {
  const capped = (data: Buffer, at: IssuePath, what: string): string | undefined =>
    data.length > MAX_FILE_OBJECT_BYTES
      ? r.add(at, `${what} is ${data.length} bytes, larger than the ${describeBytes(MAX_FILE_OBJECT_BYTES)} a ${kind} may hold`)
      : data.toString('base64');
  if (typeof def['content'] === 'string') return capped(Buffer.from(def['content']), [...path, 'content'], 'the content');
  if (typeof def['environment'] === 'string') {
    const value = o.env(def['environment']);
    if (value === undefined) return r.add([...path, 'environment'], `environment variable ${def['environment']} is not set`);
    return capped(Buffer.from(value), [...path, 'environment'], `environment variable ${def['environment']}`);
  }
  if (typeof def['file'] === 'string') {
    const at = [...path, 'file'];
    const file = readProjectFile(def['file'], MAX_FILE_OBJECT_BYTES, o.files);
    if (file.ok) return file.data.toString('base64');
    if (file.missing) return r.add(at, `${kind} file ${file.path} does not exist`);
    return r.add(at, `${kind} file ${file.problem}`);
  }
  return r.add(path, `a ${kind} needs file, environment${kind === 'config' ? ', content' : ''} or external`);
}

function translateTopLevel(model: Dict, o: TranslateOptions, r: Reporter, objects: StackObject[]): Record<string, Declared> {
  const declared: Record<string, Declared> = {};
  for (const top of ['networks', 'volumes', 'secrets', 'configs'] as const) {
    const d: Declared = { names: new Map(), external: new Set() };
    declared[top] = d;
    const defs = isDict(model[top]) ? model[top] : {};
    for (const [key, raw] of Object.entries(defs)) {
      if (key.startsWith('x-') && top === 'networks') continue;
      const def = isDict(raw) ? raw : {};
      const path = [top, key];
      const { external, name } = externalName(def, key, path, r);
      d.names.set(key, name);
      if (external) {
        d.external.add(key);
        continue;
      }
      const metadata = meta(name, o.stack, def['labels']);
      if (top === 'networks') {
        const driver = def['driver'];
        if (driver !== undefined && driver !== 'overlay' && driver !== 'bridge') {
          r.add([...path, 'driver'], `driver: ${describeValue(driver)} is not supported: Tessera networks are overlays (overlay or bridge are accepted)`);
        }
        const ipam = isDict(def['ipam']) ? def['ipam'] : {};
        const subnets = (Array.isArray(ipam['config']) ? ipam['config'] : [])
          .map((c) => (isDict(c) && typeof c['subnet'] === 'string' ? c['subnet'] : undefined))
          .filter((s): s is string => s !== undefined);
        if (toBool(def['enable_ipv4'], [...path, 'enable_ipv4'], r) === false)
          r.add([...path, 'enable_ipv4'], 'enable_ipv4: false is not supported: IPv4 cannot be turned off');
        if (toBool(def['enable_ipv6'], [...path, 'enable_ipv6'], r) === true)
          r.add([...path, 'enable_ipv6'], 'enable_ipv6: true is not supported: Tessera networks have no IPv6 yet');
        const internal = toBool(def['internal'], [...path, 'internal'], r);
        const attachable = toBool(def['attachable'], [...path, 'attachable'], r);
        objects.push({
          apiVersion: API_VERSION,
          kind: 'Network',
          metadata,
          spec: {
            driver: 'overlay',
            ...(internal !== undefined ? { internal } : {}),
            ...(attachable !== undefined ? { attachable } : {}),
            ...(subnets.length > 0 ? { subnets } : {}),
          },
        });
      } else if (top === 'volumes') {
        const driver = def['driver'];
        if (driver !== undefined && driver !== 'local') r.add([...path, 'driver'], `driver: ${describeValue(driver)} is not supported: only the local driver`);
        const driverOpts = stringMap(def['driver_opts']);
        objects.push({ apiVersion: API_VERSION, kind: 'Volume', metadata, spec: { driver: 'local', ...(driverOpts ? { driverOpts } : {}) } });
      } else {
        const kind = top === 'secrets' ? 'Secret' : 'Config';
        const data = contentOf(def, path, o, r, kind.toLowerCase());
        if (data !== undefined) objects.push({ apiVersion: API_VERSION, kind, metadata, spec: { data } });
      }
    }
  }
  return declared as Record<'networks' | 'volumes' | 'secrets' | 'configs', Declared>;
}

// ---- services -----------------------------------------------------------------------------------

interface ServiceContext {
  name: string;
  path: IssuePath;
  service: Dict;
  o: TranslateOptions;
  r: Reporter;
  declared: Record<string, Declared>;
  services: Set<string>;
  /** The build: of each service translated so far, to be grouped into build jobs. */
  builds: ServiceBuild[];
}

function environment(c: ServiceContext): Record<string, string> | undefined {
  const env: Record<string, string> = {};
  const files = Array.isArray(c.service['env_file']) ? (c.service['env_file'] as Dict[]) : [];
  files.forEach((f, index) => {
    const at = [...c.path, 'env_file', index];
    const required = toBool(f['required'], [...at, 'required'], c.r) ?? true;
    const read = readProjectFile(String(f['path']), MAX_INPUT_FILE_BYTES, c.o.files);
    if (!read.ok) {
      // Optional means "may be missing", not "may be outside the project or too large".
      if (!read.missing) c.r.add(at, `env_file ${read.problem}`);
      else if (required) c.r.add(at, `env_file ${read.path} does not exist (set required: false to make it optional)`);
      return;
    }
    const file = read.path;
    const parsed = parseDotenvText(read.data.toString('utf8'), c.o.env);
    for (const issue of parsed.issues) c.r.add(at, `${file}:${issue.line}: ${issue.message}`);
    for (const [k, v] of parsed.values) env[k] = v;
  });
  if (isDict(c.service['environment'])) {
    for (const [k, v] of Object.entries(c.service['environment'])) {
      if (v !== null) env[k] = scalarText(v);
      else {
        // "- NAME" passes NAME through from this machine; when it is not set, the container has no NAME.
        const inherited = c.o.env(k);
        if (inherited !== undefined) env[k] = inherited;
      }
    }
  }
  return Object.keys(env).length > 0 ? env : undefined;
}

function ports(c: ServiceContext) {
  const list = Array.isArray(c.service['ports']) ? (c.service['ports'] as Dict[]) : [];
  const out: Array<{ target: number; published?: number; protocol: 'tcp' | 'udp'; mode?: 'ingress' | 'host' }> = [];
  list.forEach((p, index) => {
    const path = [...c.path, 'ports', index];
    const target = toInt(p['target'], [...path, 'target'], c.r, 1, p);
    if (p['target'] === undefined) {
      c.r.add(path, 'a port needs a target', p);
      return;
    }
    let published: number | undefined;
    if (p['published'] !== undefined && p['published'] !== '') {
      const text = scalarText(p['published']);
      if (/^\d+-\d+$/.test(text)) {
        c.r.add([...path, 'published'], `published range ${text} in the long syntax is not supported; list the ports one by one`, p);
        return;
      }
      published = toInt(p['published'], [...path, 'published'], c.r, 1, p);
    }
    const protocol = p['protocol'] ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp') {
      c.r.add([...path, 'protocol'], `protocol ${describeValue(protocol)} is not supported: tcp or udp`, p);
      return;
    }
    const mode = p['mode'] ?? 'ingress';
    if (mode !== 'ingress' && mode !== 'host') {
      c.r.add([...path, 'mode'], `mode ${describeValue(mode)} is not supported: ingress or host`, p);
      return;
    }
    if (target === undefined) return;
    out.push({ target, ...(published !== undefined ? { published } : {}), protocol, mode });
  });
  return out.length > 0 ? out : undefined;
}

function mounts(c: ServiceContext): Mount[] | undefined {
  const out: Mount[] = [];
  const list = Array.isArray(c.service['volumes']) ? (c.service['volumes'] as Dict[]) : [];
  list.forEach((v, index) => {
    const path = [...c.path, 'volumes', index];
    const type = v['type'];
    const target = typeof v['target'] === 'string' ? v['target'] : undefined;
    if (!target) {
      c.r.add(path, 'a volume needs a target path', v);
      return;
    }
    const readOnly = toBool(v['read_only'], [...path, 'read_only'], c.r, v);
    const common = { target, ...(readOnly !== undefined ? { readOnly } : {}) };
    const source = typeof v['source'] === 'string' && v['source'] !== '' ? v['source'] : undefined;
    if (type === 'volume') {
      const opts = isDict(v['volume']) ? v['volume'] : {};
      const noCopy = toBool(opts['nocopy'], [...path, 'volume', 'nocopy'], c.r, v);
      const subpath = typeof opts['subpath'] === 'string' ? opts['subpath'] : undefined;
      let name: string | undefined;
      if (source !== undefined) {
        name = c.declared['volumes']?.names.get(source);
        if (name === undefined) {
          c.r.add([...path, 'source'], `volume ${JSON.stringify(source)} is not declared under the top-level volumes:`, v);
          return;
        }
      }
      out.push({ type: 'volume', ...(name ? { source: name } : {}), ...common, ...(noCopy !== undefined ? { noCopy } : {}), ...(subpath ? { subpath } : {}) });
    } else if (type === 'bind') {
      if (!source) {
        c.r.add(path, 'a bind mount needs a source path', v);
        return;
      }
      const home = c.o.env('HOME');
      const expanded = source.startsWith('~') && home ? home + source.slice(1) : source;
      const absolute = isAbsolute(expanded) ? expanded : resolvePath(c.o.projectDir, expanded);
      const opts = isDict(v['bind']) ? v['bind'] : {};
      const createHostPath = toBool(opts['create_host_path'], [...path, 'bind', 'create_host_path'], c.r, v);
      const propagation = typeof opts['propagation'] === 'string' ? opts['propagation'] : undefined;
      out.push({
        type: 'bind',
        source: absolute,
        ...common,
        ...(propagation ? { propagation } : {}),
        ...(createHostPath !== undefined ? { createHostPath } : {}),
      });
    } else if (type === 'tmpfs') {
      const opts = isDict(v['tmpfs']) ? v['tmpfs'] : {};
      const sizeBytes = memory(opts['size'], [...path, 'tmpfs', 'size'], c.r);
      const mode = fileMode(opts['mode'], [...path, 'tmpfs', 'mode'], c.r, v);
      out.push({ type: 'tmpfs', ...common, ...(sizeBytes !== undefined ? { sizeBytes } : {}), ...(mode !== undefined ? { mode } : {}) });
    } else {
      c.r.add([...path, 'type'], `volume type ${describeValue(type)} is not supported: volume, bind or tmpfs`, v);
    }
  });
  for (const [index, target] of (strings(c.service['tmpfs']) ?? []).entries()) {
    // "/run:size=64k,mode=1777" — the options after ":" are mount options.
    const [path = '', options] = target.split(':');
    const mount: Mount = { type: 'tmpfs', target: path };
    for (const option of options?.split(',') ?? []) {
      const [k, v = ''] = option.split('=');
      if (k === 'size') {
        const size = memory(v, [...c.path, 'tmpfs', index], c.r);
        if (size !== undefined) mount.sizeBytes = size;
      } else if (k === 'mode') {
        const mode = fileMode(v, [...c.path, 'tmpfs', index], c.r);
        if (mode !== undefined) mount.mode = mode;
      } else c.r.add([...c.path, 'tmpfs', index], `tmpfs option ${JSON.stringify(option)} is not supported: size and mode`);
    }
    out.push(mount);
  }
  return out.length > 0 ? out : undefined;
}

function fileReferences(c: ServiceContext, key: 'secrets' | 'configs') {
  const list = Array.isArray(c.service[key]) ? (c.service[key] as Dict[]) : [];
  const out = list
    .map((ref, index) => {
      const path = [...c.path, key, index];
      const source = scalarText(ref['source'] ?? '');
      const name = c.declared[key]?.names.get(source);
      if (name === undefined) return c.r.add(path, `${key.slice(0, -1)} ${JSON.stringify(source)} is not declared under the top-level ${key}:`, ref);
      const target = typeof ref['target'] === 'string' ? ref['target'] : key === 'secrets' ? source : `/${source}`;
      const mode = fileMode(ref['mode'], [...path, 'mode'], c.r, ref);
      return {
        source: name,
        target,
        ...(ref['uid'] !== undefined ? { uid: scalarText(ref['uid']) } : {}),
        ...(ref['gid'] !== undefined ? { gid: scalarText(ref['gid']) } : {}),
        ...(mode !== undefined ? { mode } : {}),
      };
    })
    .filter((x) => x !== undefined);
  return out.length > 0 ? out : undefined;
}

function networks(c: ServiceContext): NetworkAttachment[] {
  const declared = c.declared['networks'];
  const attached = isDict(c.service['networks']) ? c.service['networks'] : { default: null };
  const containerName = typeof c.service['container_name'] === 'string' ? c.service['container_name'] : undefined;
  if (containerName !== undefined && !DNS_LABEL.test(containerName)) {
    c.r.add(
      [...c.path, 'container_name'],
      `container_name ${JSON.stringify(containerName)} becomes a network alias and must be a DNS label (lowercase letters, digits and "-")`,
    );
  }
  return Object.entries(attached).map(([key, options]) => {
    const name = declared?.names.get(key) ?? (key === 'default' ? 'default' : undefined);
    if (name === undefined) c.r.add([...c.path, 'networks', key], `network ${JSON.stringify(key)} is not declared under the top-level networks:`);
    const aliases = [...(isDict(options) ? (strings(options['aliases']) ?? []) : [])];
    if (containerName !== undefined && DNS_LABEL.test(containerName) && !aliases.includes(containerName)) aliases.push(containerName);
    return { name: name ?? key, ...(aliases.length > 0 ? { aliases } : {}) };
  });
}

function healthcheck(c: ServiceContext) {
  const h = c.service['healthcheck'];
  if (!isDict(h)) return undefined;
  const path = [...c.path, 'healthcheck'];
  let test: string[] | undefined;
  if (typeof h['test'] === 'string') test = ['CMD-SHELL', h['test']];
  else if (Array.isArray(h['test'])) {
    test = h['test'].map(String);
    if (!['CMD', 'CMD-SHELL', 'NONE'].includes(test[0] ?? '')) {
      c.r.add([...path, 'test'], 'a health check test list starts with "CMD", "CMD-SHELL" or "NONE"');
    }
  }
  const disable = toBool(h['disable'], [...path, 'disable'], c.r);
  const out = {
    ...(test ? { test } : {}),
    intervalMs: duration(h['interval'], [...path, 'interval'], c.r),
    timeoutMs: duration(h['timeout'], [...path, 'timeout'], c.r),
    retries: toInt(h['retries'], [...path, 'retries'], c.r),
    startPeriodMs: duration(h['start_period'], [...path, 'start_period'], c.r),
    startIntervalMs: duration(h['start_interval'], [...path, 'start_interval'], c.r),
    ...(disable !== undefined ? { disable } : {}),
  };
  return out;
}

function dependsOn(c: ServiceContext): ServiceDependency[] | undefined {
  const deps = c.service['depends_on'];
  if (!isDict(deps)) return undefined;
  return Object.entries(deps).map(([service, raw]) => {
    const d = isDict(raw) ? raw : {};
    const path = [...c.path, 'depends_on', service];
    if (!c.services.has(service)) c.r.add(path, `depends on ${JSON.stringify(service)}, which is not a service of this stack`);
    const restart = toBool(d['restart'], [...path, 'restart'], c.r);
    const required = toBool(d['required'], [...path, 'required'], c.r);
    return {
      service,
      condition: (d['condition'] ?? 'service_started') as ServiceDependency['condition'],
      ...(restart !== undefined ? { restart } : {}),
      ...(required !== undefined ? { required } : {}),
    };
  });
}

function updatePolicy(value: unknown, path: IssuePath, r: Reporter) {
  if (!isDict(value)) return undefined;
  const failureAction = value['failure_action'];
  if (failureAction !== undefined && !['pause', 'continue', 'rollback'].includes(scalarText(failureAction))) {
    r.add([...path, 'failure_action'], `expected pause, continue or rollback, got ${describeValue(failureAction)}`);
  }
  return {
    parallelism: toInt(value['parallelism'], [...path, 'parallelism'], r),
    delayMs: duration(value['delay'], [...path, 'delay'], r),
    failureAction: failureAction as 'pause' | 'continue' | 'rollback' | undefined,
    monitorMs: duration(value['monitor'], [...path, 'monitor'], r),
    maxFailureRatio: toNumber(value['max_failure_ratio'], [...path, 'max_failure_ratio'], r),
    order: value['order'] as 'stop-first' | 'start-first' | undefined,
  };
}

const RESTART = /^(no|always|unless-stopped|on-failure(?::(\d+))?)$/;

function restartPolicy(c: ServiceContext, deploy: Dict) {
  const policy = deploy['restart_policy'];
  const path = [...c.path, 'deploy', 'restart_policy'];
  if (isDict(policy)) {
    const condition = policy['condition'];
    if (condition !== undefined && !['none', 'on-failure', 'any'].includes(scalarText(condition))) {
      c.r.add([...path, 'condition'], `expected none, on-failure or any, got ${describeValue(condition)}`);
    }
    return {
      condition: condition as 'none' | 'on-failure' | 'any' | undefined,
      delayMs: duration(policy['delay'], [...path, 'delay'], c.r),
      maxAttempts: toInt(policy['max_attempts'], [...path, 'max_attempts'], c.r),
      windowMs: duration(policy['window'], [...path, 'window'], c.r),
    };
  }
  const restart = c.service['restart'];
  if (restart === undefined) return undefined;
  const m = RESTART.exec(scalarText(restart));
  if (!m) return c.r.add([...c.path, 'restart'], `expected no, always, on-failure[:N] or unless-stopped, got ${describeValue(restart)}`);
  if (m[1] === 'no') return { condition: 'none' as const };
  if (m[1]?.startsWith('on-failure')) return { condition: 'on-failure' as const, ...(m[2] ? { maxAttempts: Number(m[2]) } : {}) };
  return { condition: 'any' as const };
}

function resources(c: ServiceContext, deploy: Dict) {
  const res = isDict(deploy['resources']) ? deploy['resources'] : {};
  const lim = isDict(res['limits']) ? res['limits'] : {};
  const rsv = isDict(res['reservations']) ? res['reservations'] : {};
  const path = [...c.path, 'deploy', 'resources'];
  const s = c.service;
  const limits = {
    memory: lim['memory'] !== undefined ? memory(lim['memory'], [...path, 'limits', 'memory'], c.r) : memory(s['mem_limit'], [...c.path, 'mem_limit'], c.r),
    cpus: lim['cpus'] !== undefined ? cpus(lim['cpus'], [...path, 'limits', 'cpus'], c.r) : cpus(s['cpus'], [...c.path, 'cpus'], c.r),
    pids: lim['pids'] !== undefined ? toInt(lim['pids'], [...path, 'limits', 'pids'], c.r, 1) : toInt(s['pids_limit'], [...c.path, 'pids_limit'], c.r, 1),
  };
  const reservations = {
    memory:
      rsv['memory'] !== undefined
        ? memory(rsv['memory'], [...path, 'reservations', 'memory'], c.r)
        : memory(s['mem_reservation'], [...c.path, 'mem_reservation'], c.r),
    cpus: cpus(rsv['cpus'], [...path, 'reservations', 'cpus'], c.r),
  };
  return { limits, reservations };
}

function placement(c: ServiceContext, deploy: Dict) {
  const p = isDict(deploy['placement']) ? deploy['placement'] : {};
  const path = [...c.path, 'deploy', 'placement'];
  const preferences = Array.isArray(p['preferences'])
    ? p['preferences']
        .filter(isDict)
        .filter((x) => x['spread'] !== undefined)
        .map((x) => ({ spread: String(x['spread']) }))
    : undefined;
  return {
    constraints: strings(p['constraints']),
    preferences,
    maxReplicasPerNode: toInt(p['max_replicas_per_node'], [...path, 'max_replicas_per_node'], c.r),
  };
}

const MODES = ['replicated', 'global', 'replicated-job', 'global-job'];

/** The image the service runs; with build:, the one the build produces (build-plan.ts). */
function imageOf(c: ServiceContext): unknown {
  const image = c.service['image'];
  if (c.service['build'] === undefined) {
    if (typeof image !== 'string') c.r.add(c.path, 'image: is required (or build: to build one)');
    return image;
  }
  const build = serviceBuild(
    c.name,
    c.path,
    c.service,
    { stack: c.o.stack, projectDir: c.o.projectDir, allowOutside: c.o.files.allowOutside, env: c.o.env },
    c.r,
  );
  if (build === undefined) return image;
  c.builds.push(build);
  return build.image;
}

function translateService(c: ServiceContext): Record<string, unknown> {
  const s = c.service;
  const deploy = isDict(s['deploy']) ? s['deploy'] : {};
  const dpath = [...c.path, 'deploy'];
  const image = imageOf(c);
  checkServicePlatform(s, c.path, c.r);
  const mode = deploy['mode'] ?? 'replicated';
  if (!MODES.includes(scalarText(mode))) c.r.add([...dpath, 'mode'], `expected one of ${MODES.join(', ')}, got ${describeValue(mode)}`);
  const endpointMode = deploy['endpoint_mode'];
  if (endpointMode !== undefined && endpointMode !== 'vip' && endpointMode !== 'dnsrr')
    c.r.add([...dpath, 'endpoint_mode'], `expected vip or dnsrr, got ${describeValue(endpointMode)}`);
  const replicas = deploy['replicas'] !== undefined ? toInt(deploy['replicas'], [...dpath, 'replicas'], c.r) : toInt(s['scale'], [...c.path, 'scale'], c.r);
  const global = mode === 'global' || mode === 'global-job';
  if (global && replicas !== undefined) c.r.add([...dpath, 'replicas'], `replicas does not apply to mode ${String(mode)}: it runs one task per node`);
  const ulimits = isDict(s['ulimits'])
    ? Object.fromEntries(
        Object.entries(s['ulimits']).map(([name, v]) => {
          const path = [...c.path, 'ulimits', name];
          if (isDict(v)) return [name, { soft: toInt(v['soft'], [...path, 'soft'], c.r, -1) ?? 0, hard: toInt(v['hard'], [...path, 'hard'], c.r, -1) ?? 0 }];
          const n = toInt(v, path, c.r, -1) ?? 0;
          return [name, { soft: n, hard: n }];
        }),
      )
    : undefined;
  const extraHosts = isDict(s['extra_hosts'])
    ? Object.entries(s['extra_hosts']).flatMap(([hostname, addresses]) => (strings(addresses) ?? []).map((address) => ({ hostname, address })))
    : undefined;
  const dns = { servers: strings(s['dns']), search: strings(s['dns_search']), options: strings(s['dns_opt']) };
  const logging = isDict(s['logging']) ? { driver: s['logging']['driver'], options: stringMap(s['logging']['options']) } : undefined;
  const expose = Array.isArray(s['expose'])
    ? s['expose'].flatMap((e, index) => {
        const [port = '', protocol = 'tcp'] = String(e).split('/');
        const r = /^(\d+)(?:-(\d+))?$/.exec(port);
        const from = Number(r?.[1]);
        const to = r?.[2] === undefined ? from : Number(r[2]);
        // Checked before the range is expanded: "1-99999999999" must not become 10^11 entries.
        if (!r || to > 65535 || to < from || (protocol !== 'tcp' && protocol !== 'udp')) {
          c.r.add([...c.path, 'expose', index], `expected a port (at most 65535) like 80 or 8000-8010/udp, got ${describeValue(e)}`);
          return [];
        }
        return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => ({ port: from + i, protocol: protocol as 'tcp' | 'udp' }));
      })
    : undefined;
  const init = toBool(s['init'], [...c.path, 'init'], c.r);
  const readOnly = toBool(s['read_only'], [...c.path, 'read_only'], c.r);
  const tty = toBool(s['tty'], [...c.path, 'tty'], c.r);
  const stdinOpen = toBool(s['stdin_open'], [...c.path, 'stdin_open'], c.r);
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: meta(c.name, c.o.stack, deploy['labels']),
    spec: {
      image,
      command: command(s['entrypoint']),
      args: command(s['command']),
      env: environment(c),
      workdir: s['working_dir'],
      user: s['user'],
      hostname: s['hostname'],
      ...(global ? {} : { replicas: replicas ?? 1 }),
      ports: ports(c),
      resources: resources(c, deploy),
      placement: placement(c, deploy),
      restart: restartPolicy(c, deploy),
      stopGracePeriodMs: duration(s['stop_grace_period'], [...c.path, 'stop_grace_period'], c.r),
      mode: deploy['mode'],
      endpointMode,
      networks: networks(c),
      mounts: mounts(c),
      secrets: fileReferences(c, 'secrets'),
      configs: fileReferences(c, 'configs'),
      healthcheck: healthcheck(c),
      dependsOn: dependsOn(c),
      expose: expose && expose.length > 0 ? expose : undefined,
      ...(readOnly !== undefined ? { readOnly } : {}),
      userns: usernsMode(s['userns_mode'], [...c.path, 'userns_mode'], c.r),
      capAdd: strings(s['cap_add']),
      capDrop: strings(s['cap_drop']),
      ulimits,
      sysctls: stringMap(s['sysctls']),
      extraHosts: extraHosts && extraHosts.length > 0 ? extraHosts : undefined,
      dns: dns.servers || dns.search || dns.options ? dns : undefined,
      stopSignal: s['stop_signal'],
      ...(init !== undefined ? { init } : {}),
      ...(tty !== undefined ? { tty } : {}),
      ...(stdinOpen !== undefined ? { stdinOpen } : {}),
      logging,
      containerLabels: stringMap(s['labels']),
      updateConfig: updatePolicy(deploy['update_config'], [...dpath, 'update_config'], c.r),
      rollbackConfig: updatePolicy(deploy['rollback_config'], [...dpath, 'rollback_config'], c.r),
    },
  };
}

/** userns_mode: auto (Podman's word: a user namespace of the service's own) or host (Docker's: the host's ids). */
function usernsMode(value: unknown, path: IssuePath, r: Reporter): 'auto' | 'host' | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === 'auto' || value === 'host') return value;
  return r.add(path, `expected auto (a user namespace of the service's own) or host, got ${describeValue(value)}`);
}

/** Drops undefined values and empty mappings, so the native objects carry only what was given. */
function prune(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prune);
  if (!isDict(value)) return value;
  const out: Dict = {};
  for (const [k, v] of Object.entries(value)) {
    const p = prune(v);
    if (p === undefined || (isDict(p) && Object.keys(p).length === 0)) continue;
    out[k] = p;
  }
  return out;
}

/** Translates a merged, normalised Compose model into the objects of stack `o.stack`. */
export function translate(model: Dict, o: TranslateOptions): Translation {
  const issues: Issues = rejectedKeys(model);
  // A service with a rejected key is not validated as a whole: the spec made without that key
  // would only add errors about fields the user never wrote.
  const refusedServices = new Set(issues.filter((i) => i.path[0] === 'services').map((i) => i.path[1]));
  const r = new Reporter(issues);
  const extension = readStackExtension(model);
  issues.push(...extension.issues);
  const objects: StackObject[] = [];
  const declared = translateTopLevel(model, o, r, objects);
  const services = isDict(model['services']) ? model['services'] : {};
  if (Object.keys(services).length === 0) r.add([], 'no services: a stack needs at least one service');
  const names = new Set(Object.keys(services));
  let usesDefault = false;
  const builds: ServiceBuild[] = [];
  for (const [name, raw] of Object.entries(services)) {
    const path = ['services', name];
    if (!DNS_LABEL.test(name) || name.length > 63) {
      r.add(
        path,
        `service name ${JSON.stringify(name)} must be a DNS label (lowercase letters, digits and "-", at most 63), because other services reach it by that name`,
      );
      continue;
    }
    const service = isDict(raw) ? raw : {};
    if (!isDict(service['networks'])) usesDefault = true;
    const before = issues.length;
    const candidate = prune(translateService({ name, path, service, o, r, declared, services: names, builds }));
    if (issues.length > before || refusedServices.has(name)) continue;
    const result = validateStackObject(candidate);
    if (!result.ok) {
      for (const issue of result.issues) r.add(path, `translates to spec ${issue.path.slice(1).join('.')}, which Tessera refuses: ${issue.message}`);
      continue;
    }
    objects.push(result.object);
  }
  const jobs = groupBuildJobs(builds, r);
  if (usesDefault && !declared['networks']?.names.has('default')) {
    objects.unshift({ apiVersion: API_VERSION, kind: 'Network', metadata: { name: 'default', stack: o.stack }, spec: { driver: 'overlay' } });
  }
  for (const object of objects) {
    if (object.kind === 'Service') continue;
    const result = validateStackObject(object);
    if (!result.ok) {
      for (const issue of result.issues) {
        r.add(
          [`${object.kind.toLowerCase()}s`, object.metadata.name],
          `translates to a ${object.kind} that Tessera refuses: ${issue.path.join('.')}: ${issue.message}`,
        );
      }
    }
  }
  if (issues.length > 0) return { objects: [], issues, warnings: r.warnings, builds: [] };
  // The stack's admission level (x-tessera) on every object, and what that level refuses.
  const admitted = applyStackExtension(objects, extension.extension, o.stack);
  issues.push(...admitted.issues);
  const ok = issues.length === 0;
  return { objects: ok ? admitted.objects : [], issues, warnings: r.warnings, builds: ok ? jobs : [] };
}
