// Pure merge of a service's spec with its image's defaults into what the container runs, with the
// Kubernetes rule: `command` replaces the image's Entrypoint, `args` replaces its Cmd, and giving a
// command without args drops the image's Cmd.
import type { ServiceSpec, Task } from '../../common/resources/types.js';
import type { ImageRuntimeConfig } from '../../common/images/types.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ContainerProcessConfig {
  args: string[];
  env: string[];
  cwd: string;
  hostname: string;
  /** The user as written ("1000", "1000:1000", "nobody", "nobody:nogroup"), resolved against the rootfs later. */
  user: string;
}

export function resolveProcess(spec: ServiceSpec, image: ImageRuntimeConfig, hostname: string): ContainerProcessConfig {
  const entrypoint = spec.command ?? image.entrypoint ?? [];
  const cmd = spec.args ?? (spec.command ? [] : (image.cmd ?? []));
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new Error('no command to run: the service gives no command and the image has no Entrypoint or Cmd');
  }
  const env = new Map<string, string>();
  env.set('PATH', DEFAULT_PATH);
  for (const entry of image.env ?? []) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  env.set('HOSTNAME', hostname);
  for (const [name, value] of Object.entries(spec.env ?? {})) env.set(name, value);
  return {
    args,
    env: [...env].map(([k, v]) => `${k}=${v}`),
    cwd: spec.workdir ?? (image.workingDir || '/'),
    hostname: spec.hostname ?? hostname,
    user: spec.user ?? (image.user || '0'),
  };
}

/** A hostname for a task's container: "<service>-<slot>-<task id suffix>", a valid DNS label. */
export function taskHostname(task: Task): string {
  const suffix = task.metadata.name.split('.').pop() ?? '';
  const label = `${task.spec.serviceName}-${task.spec.slot}-${suffix}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  return label.slice(0, 63).replace(/-+$/, '');
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
export interface GroupEntry {
  name: string;
  gid: number;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 4 || line.startsWith('#')) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) entries.push({ name: fields[0]!, uid, gid });
  }
  return entries;
}

export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3 || line.startsWith('#')) continue;
    const gid = Number(fields[2]);
    if (Number.isInteger(gid)) entries.push({ name: fields[0]!, gid });
  }
  return entries;
}

/** Resolves "user[:group]" (names or numbers) the way Docker does, against the image's passwd and group files. */
export function resolveUser(user: string, passwd: PasswdEntry[], groups: GroupEntry[]): { uid: number; gid: number } {
  const [userPart = '0', groupPart] = user.split(':');
  let uid: number;
  let gid: number;
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    gid = passwd.find((p) => p.uid === uid)?.gid ?? 0;
  } else {
    const entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw new Error(`user "${userPart}" is not in the image's /etc/passwd`);
    uid = entry.uid;
    gid = entry.gid;
  }
  if (groupPart !== undefined) {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const group = groups.find((g) => g.name === groupPart);
      if (!group) throw new Error(`group "${groupPart}" is not in the image's /etc/group`);
      gid = group.gid;
    }
  }
  return { uid, gid };
}

/** Docker's spelling of rlimit names in ulimits (nofile, nproc, …) → the OCI RLIMIT_* type. */
const ULIMIT_NAMES: Readonly<Record<string, string>> = {
  core: 'RLIMIT_CORE',
  cpu: 'RLIMIT_CPU',
  data: 'RLIMIT_DATA',
  fsize: 'RLIMIT_FSIZE',
  locks: 'RLIMIT_LOCKS',
  memlock: 'RLIMIT_MEMLOCK',
  msgqueue: 'RLIMIT_MSGQUEUE',
  nice: 'RLIMIT_NICE',
  nofile: 'RLIMIT_NOFILE',
  nproc: 'RLIMIT_NPROC',
  rss: 'RLIMIT_RSS',
  rtprio: 'RLIMIT_RTPRIO',
  rttime: 'RLIMIT_RTTIME',
  sigpending: 'RLIMIT_SIGPENDING',
  stack: 'RLIMIT_STACK',
  as: 'RLIMIT_AS',
};

function capName(name: string): string {
  const upper = name.toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

/**
 * The service's security and process options as runtime inputs: capabilities (Docker's default
 * set, plus cap_add, minus cap_drop; "ALL" on either side), rlimits, sysctls, read-only rootfs,
 * container labels as annotations.
 */
export function resolveSecurity(spec: ServiceSpec, defaults: readonly string[], all: readonly string[]) {
  let caps = new Set(defaults);
  const add = (spec.capAdd ?? []).map(capName);
  const drop = (spec.capDrop ?? []).map(capName);
  if (drop.includes('CAP_ALL')) caps = new Set();
  for (const c of drop) caps.delete(c);
  if (add.includes('CAP_ALL')) for (const c of all) caps.add(c);
  for (const c of add) if (c !== 'CAP_ALL') caps.add(c);
  const rlimits = Object.entries(spec.ulimits ?? {}).map(([name, { soft, hard }]) => {
    const type = ULIMIT_NAMES[name];
    if (!type) throw new Error(`ulimits.${name}: unknown limit (expected one of ${Object.keys(ULIMIT_NAMES).join(', ')})`);
    return { type, soft, hard };
  });
  return {
    capabilities: [...caps].sort(),
    rlimits,
    sysctls: { ...spec.sysctls },
    readonlyRootfs: spec.readOnly === true,
    annotations: { ...spec.containerLabels },
  };
}

/** One entry of config.json's mounts. */
export type OciMount = { destination: string; type?: string; source?: string; options?: string[] };

/**
 * The service's mounts and its secret/config files in the order the runtime makes them: parents
 * before children (a bind at /run/secrets after a tmpfs at /run), stable otherwise, as Docker sorts
 * them. Two mounts at one destination are refused naming it.
 */
export function orderMounts(mounts: readonly OciMount[]): OciMount[] {
  const seen = new Set<string>();
  for (const m of mounts) {
    const destination = m.destination.replace(/\/+$/, '') || '/';
    if (seen.has(destination)) throw new Error(`two mounts have the target ${destination}`);
    seen.add(destination);
  }
  const depth = (m: OciMount) => m.destination.split('/').filter((s) => s !== '').length;
  return mounts
    .map((m, i) => ({ m, i }))
    .sort((a, b) => depth(a.m) - depth(b.m) || a.i - b.i)
    .map(({ m }) => m);
}
