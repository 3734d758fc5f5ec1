// A pure builder of the OciSpec the agent hands the runtime for one container.

import { DEFAULT_CAPABILITIES } from './capabilities.js';
import type { OciSeccomp } from './seccomp.js';
import { defaultSeccompProfile } from './seccomp-default.js';
import { DEFAULT_PATH } from './spawn-plan.js';
import type { OciIdMapping, OciSpec } from './types.js';

export interface ContainerSpecInput {
  args: string[];
  /** NAME=value entries; PATH is added when absent. */
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  additionalGids?: number[];
  hostname?: string;
  /** Bytes. */
  memoryLimit?: number;
  pidsLimit?: number;
  /** CFS quota in microseconds per CFS_PERIOD_US (100 ms) period, as OCI's cpu.quota: 150000 = 1.5 CPUs. */
  cpuQuota?: number;
  cpuShares?: number;
  cgroupsPath?: string;
  /** Absolute path of the container's root filesystem. */
  rootfsPath: string;
  readonlyRootfs?: boolean;
  /** Extra bind mounts, e.g. secrets or volumes. */
  binds?: Array<{ source: string; destination: string; readonly?: boolean }>;
  annotations?: Record<string, string>;
  /** CAP_* names for the bounding, effective and permitted sets; default Docker's set (DEFAULT_CAPABILITIES). */
  capabilities?: string[];
  /** A seccomp profile, or 'unconfined' for none; default the profile of seccomp-default.ts for the capabilities. */
  seccomp?: OciSeccomp | 'unconfined';
  rlimits?: Array<{ type: string; soft: number; hard: number }>;
  /** Namespaced sysctls only (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*). */
  sysctls?: Record<string, string>;
  umask?: number;
  oomScoreAdj?: number;
  /** Machine architecture for the default seccomp profile (Node's process.arch); injected for tests. */
  arch?: string;
  /** A user namespace of its own with these id maps (userns: auto); absent: the host's ids. */
  userNamespace?: { uidMappings: OciIdMapping[]; gidMappings: OciIdMapping[] };
  /** process.terminal: a pseudo-terminal as stdin/stdout/stderr; TERM=xterm is added when env has no TERM, as Docker does. */
  terminal?: boolean;
}

export const CFS_PERIOD_US = 100_000;

/** /proc entries that leak host information or allow host changes, as in Docker's defaults. */
export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_MOUNTS: NonNullable<OciSpec['mounts']> = [
  { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
  { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
];

export function buildOciSpec(input: ContainerSpecInput): OciSpec {
  if (input.args.length === 0) throw new Error('buildOciSpec: args must name the program to run');
  if (!input.rootfsPath.startsWith('/')) throw new Error('buildOciSpec: rootfsPath must be absolute');
  const env = input.env ?? [];
  for (const e of env) if (!e.includes('=')) throw new Error(`buildOciSpec: env entry '${e}' must be NAME=value`);
  const withPath = env.some((e) => e.startsWith('PATH=')) ? env : [`PATH=${DEFAULT_PATH}`, ...env];
  const terminal = input.terminal ?? false;
  // Programs on a terminal look TERM up (curses, readline); without one some refuse to draw.
  const withTerm = terminal && !withPath.some((e) => e.startsWith('TERM=')) ? [...withPath, 'TERM=xterm'] : withPath;

  const resources: NonNullable<NonNullable<OciSpec['linux']>['resources']> = {};
  if (input.memoryLimit !== undefined) resources.memory = { limit: positiveInt(input.memoryLimit, 'memoryLimit') };
  if (input.pidsLimit !== undefined) resources.pids = { limit: positiveInt(input.pidsLimit, 'pidsLimit') };
  if (input.cpuQuota !== undefined || input.cpuShares !== undefined) {
    resources.cpu = {};
    if (input.cpuShares !== undefined) resources.cpu.shares = positiveInt(input.cpuShares, 'cpuShares');
    if (input.cpuQuota !== undefined) {
      // The kernel refuses quotas below 1 ms.
      if (!Number.isInteger(input.cpuQuota) || input.cpuQuota < 1000) {
        throw new Error(`buildOciSpec: cpuQuota must be an integer number of microseconds >= 1000, got ${input.cpuQuota}`);
      }
      resources.cpu.period = CFS_PERIOD_US;
      resources.cpu.quota = input.cpuQuota;
    }
  }

  const binds = (input.binds ?? []).map((b) => ({
    destination: b.destination,
    type: 'bind',
    source: b.source,
    options: ['rbind', 'rprivate', ...(b.readonly === true ? ['ro'] : [])],
  }));

  const caps = [...(input.capabilities ?? DEFAULT_CAPABILITIES)];
  const seccomp = input.seccomp === 'unconfined' ? undefined : (input.seccomp ?? defaultSeccompProfile(caps, input.arch ?? process.arch));

  const spec: OciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal,
      user: { uid: input.uid ?? 0, gid: input.gid ?? 0, additionalGids: input.additionalGids ?? [] },
      args: [...input.args],
      env: withTerm,
      cwd: input.cwd ?? '/',
      noNewPrivileges: true,
      // Inheritable and ambient stay empty: a non-root process gets no capabilities across execve,
      // as under Docker since CVE-2022-24769.
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps], inheritable: [], ambient: [] },
    },
    root: { path: input.rootfsPath, readonly: input.readonlyRootfs ?? false },
    mounts: [...DEFAULT_MOUNTS.map((m) => ({ ...m, options: [...(m.options ?? [])] })), ...binds],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      resources,
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
  if (seccomp !== undefined && spec.linux !== undefined) spec.linux.seccomp = seccomp;
  if (input.sysctls !== undefined && spec.linux !== undefined) spec.linux.sysctl = { ...input.sysctls };
  if (input.rlimits !== undefined) spec.process.rlimits = input.rlimits.map((r) => ({ ...r }));
  if (input.umask !== undefined) spec.process.user.umask = input.umask;
  if (input.oomScoreAdj !== undefined) spec.process.oomScoreAdj = input.oomScoreAdj;
  if (input.hostname !== undefined) spec.hostname = input.hostname;
  if (input.cgroupsPath !== undefined && spec.linux !== undefined) spec.linux.cgroupsPath = input.cgroupsPath;
  if (input.annotations !== undefined) spec.annotations = { ...input.annotations };
  if (input.userNamespace !== undefined && spec.linux !== undefined) {
    spec.linux.namespaces?.push({ type: 'user' });
    spec.linux.uidMappings = input.userNamespace.uidMappings.map((m) => ({ ...m }));
    spec.linux.gidMappings = input.userNamespace.gidMappings.map((m) => ({ ...m }));
  }
  return spec;
}

function positiveInt(value: number, field: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`buildOciSpec: ${field} must be a positive integer, got ${value}`);
  return value;
}
