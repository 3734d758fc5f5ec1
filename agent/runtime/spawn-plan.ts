// Turns a validated OciSpec into the addon's spawn plan: everything resolved up front, because
// the cloned init may not allocate memory.

import fs from 'node:fs/promises';
import path from 'node:path';
import { planMounts, type CgroupMountContext } from './mount-plan.js';
import type { NamespaceKind, NativeDevice, NativeSpawnPlan } from './native.js';
import { buildSecurityPlan } from './security-plan.js';
import type { OciSpec } from './types.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Resolves root.path against the bundle and insists on a real directory. */
export async function resolveRootfs(spec: OciSpec, bundleDir: string, source: string): Promise<string> {
  const rootfs = path.resolve(bundleDir, spec.root.path);
  let real: string;
  try {
    real = await fs.realpath(rootfs);
  } catch (err) {
    throw new Error(`${source}: root.path ${rootfs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!(await fs.stat(real)).isDirectory()) throw new Error(`${source}: root.path ${rootfs} is not a directory`);
  return real;
}

/**
 * The namespaces to create. A kind the spec does not list is the runtime's own (runtime-spec
 * config-linux.md#namespaces), so no list at all means none. Without a mount namespace (new or
 * joined) the container's mounts are made in the host's namespace under its rootfs, and it is
 * chrooted (see NativeSpawnPlan's hostMountNamespace): that is no isolation of the file system.
 */
export function namespacesOf(spec: OciSpec, source: string): NamespaceKind[] {
  const listed = spec.linux?.namespaces ?? [];
  const kinds: NamespaceKind[] = [];
  const seen = new Set<string>();
  for (const [i, ns] of listed.entries()) {
    if (seen.has(ns.type)) throw new Error(`${source}: linux.namespaces[${i}]: ${ns.type} is listed twice`);
    seen.add(ns.type);
    // Joined namespaces (path) and the user namespace are in the security plan.
    if (ns.path !== undefined || ns.type === 'user') continue;
    kinds.push(ns.type);
  }
  if (spec.hostname !== undefined && !seen.has('uts')) {
    throw new Error(`${source}: hostname is set but linux.namespaces has no uts namespace`);
  }
  return kinds;
}

/** True when the container has no mount namespace of its own, new or joined (it shares the host's). */
export function sharesHostMountNamespace(plan: Pick<NativeSpawnPlan, 'namespaces' | 'namespacePaths'>): boolean {
  return !plan.namespaces.includes('mount') && !plan.namespacePaths.some((ns) => ns.type === 'mount');
}

/** Paths inside the container to try for args[0], following PATH from the spec's env like execvp. */
export function executableCandidates(args0: string, env: string[]): string[] {
  if (args0.includes('/')) return [args0];
  const pathEntry = [...env].reverse().find((e) => e.startsWith('PATH='));
  const searchPath = pathEntry === undefined ? DEFAULT_PATH : pathEntry.slice('PATH='.length);
  return searchPath.split(':').map((dir) => (dir === '' ? `./${args0}` : `${dir.replace(/\/+$/, '')}/${args0}`));
}

export interface SpawnPlanInputs {
  spec: OciSpec;
  rootfs: string;
  cgroupProcsFiles: string[];
  /** The container's cgroups (driver version, mount root, CgroupRecord.dirs), shown by a `cgroup` mount. */
  cgroups?: Omit<CgroupMountContext, 'namespace'>;
  logPath: string;
  /** Names the config in error messages. */
  source: string;
  /** stdin stays open and never delivers data (see LoggedCreateOptions.stdinOpen). */
  stdinOpen?: boolean;
}

export async function buildSpawnPlan(inputs: SpawnPlanInputs): Promise<NativeSpawnPlan> {
  const { spec, source } = inputs;
  const env = spec.process.env ?? [`PATH=${DEFAULT_PATH}`];
  const args0 = spec.process.args[0];
  if (args0 === undefined || args0 === '') throw new Error(`${source}: process.args[0] must name the program to run`);
  const namespaces = namespacesOf(spec, source);
  const security = buildSecurityPlan(spec, source, namespaces);
  for (const ns of security.namespacePaths) await checkNamespacePath(ns.type, ns.path, source);
  return {
    ...security,
    rootfs: inputs.rootfs,
    rootReadonly: spec.root.readonly ?? false,
    namespaces,
    hostname: spec.hostname ?? '',
    cgroupProcsFiles: inputs.cgroupProcsFiles,
    mounts: await planMounts(spec.mounts ?? [], `${source}: mounts`, cgroupMountContext(inputs, namespaces, security.namespacePaths)),
    maskedPaths: spec.linux?.maskedPaths ?? [],
    readonlyPaths: spec.linux?.readonlyPaths ?? [],
    logPath: inputs.logPath,
    uid: spec.process.user.uid,
    gid: spec.process.user.gid,
    additionalGids: spec.process.user.additionalGids ?? [],
    cwd: spec.process.cwd,
    executableCandidates: executableCandidates(args0, env),
    args: spec.process.args,
    env,
    noNewPrivileges: spec.process.noNewPrivileges ?? false,
    ...(spec.process.terminal === true ? { terminal: true } : {}),
    ...(inputs.stdinOpen === true ? { stdinOpen: true } : {}),
    ...(spec.linux?.devices !== undefined && spec.linux.devices.length > 0 ? { devices: spec.linux.devices.map(nativeDevice) } : {}),
  };
}

/** An OCI device for the addon: mode 0666 and owner root unless the spec says otherwise. */
function nativeDevice(d: NonNullable<NonNullable<OciSpec['linux']>['devices']>[number]): NativeDevice {
  return {
    path: d.path,
    type: d.type === 'u' ? 'c' : d.type,
    major: d.major ?? 0,
    minor: d.minor ?? 0,
    mode: d.fileMode ?? 0o666,
    uid: d.uid ?? 0,
    gid: d.gid ?? 0,
  };
}

function cgroupMountContext(
  inputs: SpawnPlanInputs,
  created: readonly NamespaceKind[],
  joined: ReadonlyArray<{ type: NamespaceKind }>,
): CgroupMountContext | undefined {
  if (inputs.cgroups === undefined) return undefined;
  return { ...inputs.cgroups, namespace: created.includes('cgroup') || joined.some((ns) => ns.type === 'cgroup') };
}

/** The namespace file a spec wants joined must exist and be a namespace (nsfs), checked before anything is made. */
async function checkNamespacePath(type: string, nsPath: string, source: string): Promise<void> {
  const field = `${source}: linux.namespaces (${type}) path ${nsPath}`;
  const st = await fs.stat(nsPath).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${field}: ${err.code ?? err.message}`);
  });
  // nsfs inodes are neither regular files nor directories; a plain file there is a mistake.
  if (st.isDirectory()) throw new Error(`${field}: is a directory, not a namespace file`);
  const statfs = await fs.statfs(nsPath).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${field}: ${err.code ?? err.message}`);
  });
  const NSFS_MAGIC = 0x6e736673;
  const PROC_MAGIC = 0x9fa0;
  if (statfs.type !== NSFS_MAGIC && statfs.type !== PROC_MAGIC) {
    throw new Error(`${field}: is not a namespace file (expected /proc/<pid>/ns/${type === 'network' ? 'net' : type} or a bind mount of one)`);
  }
}
