// The process-security part of the spawn plan: capabilities, seccomp, rlimits, umask,
// oom_score_adj, sysctls, domain name, namespaces joined by path and user-namespace id maps.
// Pure: everything here is decided from the validated spec alone.

import { nativeCapabilities, withRaisableAmbient, type NativeCapabilities } from './capabilities.js';
import { nativeSeccomp, type NativeSeccomp } from './seccomp.js';
import type { NamespaceKind } from './native.js';
import type { OciIdMapping, OciSpec } from './types.js';

/** setrlimit(2) resources by OCI name. */
export const RLIMIT_NUMBERS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};
export const RLIMIT_NAMES = Object.keys(RLIMIT_NUMBERS);

/** Sysctls whose state belongs to a namespace the container has its own copy of. */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

export type SysctlNamespace = 'network' | 'ipc';

/** Which namespace a sysctl lives in, or undefined when it is global to the host. */
export function sysctlNamespace(key: string): SysctlNamespace | undefined {
  if (key.startsWith('net.')) return 'network';
  if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) return 'ipc';
  return undefined;
}

/** Why a sysctl key cannot be set in a container, or undefined when it can. */
export function sysctlProblem(key: string): string | undefined {
  if (!/^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$/.test(key)) return `'${key}' is not a sysctl name (dotted, e.g. net.ipv4.ip_forward)`;
  if (sysctlNamespace(key) === undefined) {
    return `'${key}' is not namespaced (it would change the host); allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*`;
  }
  return undefined;
}

export interface NativeRlimit {
  resource: number;
  /** Values at or above 2^64 - 1 (JSON cannot hold it exactly) mean RLIM_INFINITY. */
  soft: number;
  hard: number;
}

export interface NativeSecurityPlan {
  /** null: the init keeps root's full capabilities, as runc does when the spec has no process.capabilities. */
  capabilities: NativeCapabilities | null;
  rlimits: NativeRlimit[];
  /** umask of the container process; -1 for the default 022. */
  umask: number;
  /** null: inherit tsd's. */
  oomScoreAdj: number | null;
  /** /proc/sys files and values, written inside the container's namespaces. */
  sysctls: Array<{ path: string; value: string }>;
  domainname: string;
  /**
   * linux.rootfsPropagation. private and slave (always recursive) apply to every mount in the
   * container's mount namespace before its mounts are made. shared and unbindable keep them
   * private until after pivot_root (which refuses a shared root) and then apply to the container's
   * root mount, in the container's own namespace only (the r* forms to every mount below it too).
   */
  rootPropagation: 'private' | 'slave' | 'shared' | 'rshared' | 'unbindable' | 'runbindable';
  /** Existing namespaces the init joins with setns instead of creating them. */
  namespacePaths: Array<{ type: NamespaceKind; path: string }>;
  /** uid_map and gid_map contents, written by the runtime after clone; null without a user namespace. */
  userNamespace: { uidMap: string; gidMap: string } | null;
  seccomp: NativeSeccomp | null;
  /**
   * What the spec asks for that the container runs without, as runc does (e.g. ambient
   * capabilities that are not inheritable). Not read by the addon: the runtime keeps them in the
   * container's state.
   */
  warnings: string[];
}

/** Namespace kinds that may be joined by path; the others must be created. */
const JOINABLE: ReadonlySet<string> = new Set(['network', 'ipc', 'uts', 'cgroup', 'pid', 'mount']);

function idMap(mappings: OciIdMapping[] | undefined, field: string): string {
  if (mappings === undefined || mappings.length === 0) throw new Error(`${field}: a user namespace needs at least one mapping`);
  const ranges: Array<[number, number]> = [];
  for (const [i, m] of mappings.entries()) {
    if (m.hostID + m.size > 0x1_0000_0000 || m.containerID + m.size > 0x1_0000_0000) {
      throw new Error(`${field}[${i}]: range ${m.containerID}+${m.size} / host ${m.hostID}+${m.size} exceeds 32-bit ids`);
    }
    for (const [start, end] of ranges) {
      if (m.containerID < end && start < m.containerID + m.size) throw new Error(`${field}[${i}]: containerID range overlaps an earlier mapping`);
    }
    ranges.push([m.containerID, m.containerID + m.size]);
  }
  return mappings.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

function rootPropagationOf(spec: OciSpec, source: string): NativeSecurityPlan['rootPropagation'] {
  const p = spec.linux?.rootfsPropagation;
  if (p === undefined || p === 'private' || p === 'rprivate') return 'private';
  if (p === 'slave' || p === 'rslave') return 'slave';
  if (p === 'shared' || p === 'rshared' || p === 'unbindable' || p === 'runbindable') return p;
  throw new Error(`${source}: linux.rootfsPropagation '${p}' is not supported (use shared, slave, private or unbindable, optionally r-prefixed)`);
}

/**
 * Builds the security plan. `ownNamespaces` are the namespaces created for the container (the
 * sysctls of a shared namespace would change whoever else is in it: the host, or another container).
 */
export function buildSecurityPlan(spec: OciSpec, source: string, ownNamespaces: readonly string[]): NativeSecurityPlan {
  const proc = spec.process;
  if (proc.apparmorProfile !== undefined && proc.apparmorProfile !== '') {
    throw new Error(`${source}: process.apparmorProfile: AppArmor is not supported by this runtime; remove the field`);
  }
  if (proc.selinuxLabel !== undefined && proc.selinuxLabel !== '') {
    throw new Error(`${source}: process.selinuxLabel: SELinux is not supported by this runtime; remove the field`);
  }
  const rlimits: NativeRlimit[] = [];
  for (const [i, r] of (proc.rlimits ?? []).entries()) {
    const resource = RLIMIT_NUMBERS[r.type];
    if (resource === undefined) throw new Error(`${source}: process.rlimits[${i}].type: unknown rlimit '${r.type}'`);
    if (rlimits.some((x) => x.resource === resource)) throw new Error(`${source}: process.rlimits[${i}]: ${r.type} is set twice`);
    if (r.soft > r.hard) throw new Error(`${source}: process.rlimits[${i}]: soft ${r.soft} exceeds hard ${r.hard}`);
    rlimits.push({ resource, soft: r.soft, hard: r.hard });
  }

  const namespacePaths: NativeSecurityPlan['namespacePaths'] = [];
  let hasUserNs = false;
  for (const [i, ns] of (spec.linux?.namespaces ?? []).entries()) {
    if (ns.type === 'user') {
      if (ns.path !== undefined) throw new Error(`${source}: linux.namespaces[${i}]: joining a user namespace by path is not supported`);
      hasUserNs = true;
      continue;
    }
    if (ns.path === undefined) continue;
    if (!JOINABLE.has(ns.type)) {
      throw new Error(`${source}: linux.namespaces[${i}]: joining a ${ns.type} namespace by path is not supported (only ${[...JOINABLE].join(', ')})`);
    }
    if (!ns.path.startsWith('/')) throw new Error(`${source}: linux.namespaces[${i}].path must be absolute`);
    namespacePaths.push({ type: ns.type, path: ns.path });
  }
  if (hasUserNs && namespacePaths.length > 0) {
    // setns needs privilege over the target's owning user namespace, which a fresh one lacks.
    throw new Error(`${source}: linux.namespaces: joining namespaces by path together with a new user namespace is not supported`);
  }
  const uidMappings = spec.linux?.uidMappings;
  const gidMappings = spec.linux?.gidMappings;
  if (!hasUserNs && ((uidMappings?.length ?? 0) > 0 || (gidMappings?.length ?? 0) > 0)) {
    throw new Error(`${source}: linux.uidMappings/gidMappings are set but linux.namespaces has no user namespace`);
  }
  const userNamespace = hasUserNs
    ? { uidMap: idMap(uidMappings, `${source}: linux.uidMappings`), gidMap: idMap(gidMappings, `${source}: linux.gidMappings`) }
    : null;

  const sysctls: NativeSecurityPlan['sysctls'] = [];
  for (const [key, value] of Object.entries(spec.linux?.sysctl ?? {})) {
    const problem = sysctlProblem(key);
    if (problem !== undefined) throw new Error(`${source}: linux.sysctl: ${problem}`);
    const ns = sysctlNamespace(key);
    if (ns === undefined || !ownNamespaces.includes(ns)) {
      throw new Error(
        `${source}: linux.sysctl: '${key}' needs the container's own ${ns ?? '?'} namespace (a shared one would change the host or another container)`,
      );
    }
    if (value.includes('\0')) throw new Error(`${source}: linux.sysctl.${key}: value contains a NUL byte`);
    sysctls.push({ path: `/proc/sys/${key.replaceAll('.', '/')}`, value });
  }

  const domainname = spec.domainname ?? '';
  if (domainname !== '' && !ownNamespaces.includes('uts')) {
    throw new Error(`${source}: domainname is set but the container has no uts namespace of its own`);
  }

  const capsField = `${source}: process.capabilities`;
  const capabilities =
    proc.capabilities === undefined ? undefined : withRaisableAmbient(nativeCapabilities(proc.capabilities, capsField), 'process.capabilities');
  return {
    capabilities: capabilities?.capabilities ?? null,
    rlimits,
    umask: proc.user.umask ?? -1,
    oomScoreAdj: proc.oomScoreAdj ?? null,
    sysctls,
    domainname,
    rootPropagation: rootPropagationOf(spec, source),
    namespacePaths,
    userNamespace,
    seccomp: spec.linux?.seccomp === undefined ? null : nativeSeccomp(spec.linux.seccomp, `${source}: linux.seccomp`),
    warnings: capabilities?.warnings ?? [],
  };
}
