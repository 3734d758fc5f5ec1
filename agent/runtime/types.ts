// The TypeScript face of the native runtime. Input is an OCI runtime-spec bundle
// (config.json + rootfs), so runc can run the same bundle as an oracle.

import type { OciCapabilities } from './capabilities.js';
import type { OciHooks } from './hooks.js';
import type { OciSeccomp } from './seccomp.js';

/** The subset of the OCI runtime-spec config.json the first cut honours. */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal?: boolean;
    user: { uid: number; gid: number; additionalGids?: number[]; umask?: number };
    args: string[];
    env?: string[];
    cwd: string;
    noNewPrivileges?: boolean;
    capabilities?: OciCapabilities;
    rlimits?: Array<{ type: string; hard: number; soft: number }>;
    oomScoreAdj?: number;
    apparmorProfile?: string;
    selinuxLabel?: string;
  };
  root: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: Array<{ destination: string; type?: string; source?: string; options?: string[] }>;
  linux?: {
    namespaces?: Array<{ type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup'; path?: string }>;
    cgroupsPath?: string;
    resources?: LinuxResources;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    seccomp?: OciSeccomp;
    sysctl?: Record<string, string>;
    uidMappings?: OciIdMapping[];
    gidMappings?: OciIdMapping[];
    /** Device nodes to make in the container (config-linux.md#devices). */
    devices?: Array<{ path: string; type: 'c' | 'u' | 'b' | 'p'; major?: number; minor?: number; fileMode?: number; uid?: number; gid?: number }>;
    /** Propagation of the container's root mount: shared, slave, private (and r* forms), unbindable. */
    rootfsPropagation?: string;
    mountLabel?: string;
  };
  hooks?: OciHooks;
  annotations?: Record<string, string>;
}

/** OCI linux.resources (runtime-spec config-linux.md#control-groups). */
export interface LinuxResources {
  memory?: {
    /** Bytes; -1 = unlimited. */
    limit?: number;
    /** Soft limit in bytes (v1 soft_limit_in_bytes, v2 memory.low); -1 = none. */
    reservation?: number;
    /** Memory plus swap in bytes (v1 memsw semantics); -1 = unlimited swap. */
    swap?: number;
    /** Deprecated by the kernel; accepted and ignored. */
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
    useHierarchy?: boolean;
    checkBeforeUpdate?: boolean;
  };
  cpu?: {
    shares?: number;
    /** CFS quota in microseconds per period; -1 = unlimited. */
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    /** cpuset list, e.g. "0-1,3". */
    cpus?: string;
    mems?: string;
    /** SCHED_IDLE for the cgroup (cpu.idle, 0 or 1). */
    idle?: number;
  };
  pids?: { limit: number };
  blockIO?: {
    weight?: number;
    leafWeight?: number;
    weightDevice?: Array<{ major: number; minor: number; weight?: number; leafWeight?: number }>;
    throttleReadBpsDevice?: Array<{ major: number; minor: number; rate: number }>;
    throttleWriteBpsDevice?: Array<{ major: number; minor: number; rate: number }>;
    throttleReadIOPSDevice?: Array<{ major: number; minor: number; rate: number }>;
    throttleWriteIOPSDevice?: Array<{ major: number; minor: number; rate: number }>;
  };
  /** Device cgroup rules, applied in order after "deny all"; the default device set is always allowed. */
  devices?: Array<{ allow: boolean; type?: 'a' | 'c' | 'b'; major?: number; minor?: number; access?: string }>;
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  /** cgroup v2 only: interface file name -> value, written last. */
  unified?: Record<string, string>;
}

/** Resource usage read from a container's cgroup; fields the kernel does not report are absent. */
export interface ContainerStats {
  cgroupVersion: 'v1' | 'v2';
  memory: {
    usageBytes: number;
    /** Absent when unlimited. */
    limitBytes?: number;
    /** Peak usage (v1 max_usage_in_bytes, v2 memory.peak when the kernel has it). */
    maxUsageBytes?: number;
    /** Page cache (v1 total_cache, v2 file). */
    cacheBytes?: number;
    /** Anonymous memory (v1 total_rss, v2 anon). */
    rssBytes?: number;
    /** Page cache the kernel can reclaim at once (v1 total_inactive_file, v2 inactive_file). */
    inactiveFileBytes?: number;
    swapBytes?: number;
    /** Times the limit was hit (v1 the larger of memory.failcnt and memory.memsw.failcnt, v2 memory.events max). */
    failCount?: number;
    /** Processes killed by the OOM killer in this cgroup. */
    oomKills: number;
  };
  cpu: {
    usageNanos: number;
    userNanos?: number;
    systemNanos?: number;
    /** v1 only (cpuacct.usage_percpu). */
    perCpuNanos?: number[];
    periods?: number;
    throttledPeriods?: number;
    throttledNanos?: number;
  };
  pids: {
    current: number;
    /** Absent when unlimited. */
    limit?: number;
  };
  blockIO: {
    devices: Array<{ major: number; minor: number; readBytes: number; writeBytes: number; readOps: number; writeOps: number }>;
  };
}

export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** How a container's stdio is wired: to a log its shim writes (the default), or inherited. */
export type CreateOptions = LoggedCreateOptions | InheritedStdioCreateOptions;

/**
 * The container's stdin, stdout and stderr are the creating process's own fds 0-2, as runc's
 * detached pass-through mode gives them (`runc create` run by a caller that reads files it passed
 * as stdio). The shim holds none of them, and there is no log.
 */
export interface InheritedStdioCreateOptions {
  stdio: 'inherit';
  stdinOpen?: undefined;
}

export interface LoggedCreateOptions {
  /** Default 'log': stdin is /dev/null, stdout and stderr go to logPath. */
  stdio?: 'log';
  /** File that receives the container's stdout and stderr (written by its shim). */
  logPath: string;
  /**
   * 'json': one JSON object per line, {"time": RFC3339Nano, "stream": "stdout"|"stderr", "log": "..."};
   * 'raw' (default, the first cut's format): the bytes of both streams as written.
   */
  logFormat?: 'json' | 'raw';
  /** Rotate the log when it would grow past this many bytes (default: never). */
  logMaxBytes?: number;
  /** Log files kept when rotating, the current one included: logPath, logPath.1, ... (default 1). */
  logMaxFiles?: number;
  /**
   * stdin is a pipe the shim holds open for the container's life and never writes, instead of
   * /dev/null: reads block rather than see EOF (`docker run -i` with nobody attached). With
   * process.terminal the terminal is stdin either way, and delivers nothing.
   */
  stdinOpen?: boolean;
}

export interface ExecOptions {
  args: string[];
  /** Default: the container's env. */
  env?: string[];
  /** NAME=value set over the container's env (when `env` is not given). */
  extraEnv?: string[];
  /** Default: the container's cwd. */
  cwd?: string;
  /** Default: the container's user. */
  user?: { uid: number; gid: number; additionalGids?: number[] };
  /** Allocate a pseudo-terminal (stdin/stdout/stderr all on it) instead of three pipes. */
  tty?: boolean;
  /** With tty: the terminal's size from the start (rows, cols; 0 leaves one as it is). */
  size?: { rows: number; cols: number };
}

/** A process started in a running container; the caller owns its stdio. */
export interface ExecProcess {
  pid: number;
  stdin: NodeJS.WritableStream & { end(): void };
  /** With a TTY this is the terminal: stdout and stderr together. */
  stdout: NodeJS.ReadableStream;
  /** Undefined with a TTY. */
  stderr?: NodeJS.ReadableStream;
  /** Resolves when the process exits. */
  exit: Promise<ExitStatus>;
  /** With a TTY: sets the terminal's size (the process gets SIGWINCH). */
  resize?(rows: number, cols: number): void;
}

export interface ContainerState {
  id: string;
  pid: number;
  status: 'created' | 'running' | 'stopped';
  bundle: string;
  /** What the container runs without although its spec or resources asked for it; absent when nothing. */
  warnings?: string[];
}

export interface ExitStatus {
  /** Exit code, or 128+signal when killed by a signal (shell convention). */
  exitCode: number;
  signal?: string;
  oomKilled: boolean;
}

export interface MetricsReading {
  status: ContainerState['status'];
  pid: number;
  /** Only when the container runs. */
  stats?: ContainerStats;
}

export interface ContainerRuntime {
  /** Creates the container's process paused before exec; namespaces and cgroup exist afterwards. */
  create(id: string, bundleDir: string, options: CreateOptions): Promise<ContainerState>;
  /** Lets the created container exec its process. */
  start(id: string): Promise<void>;
  kill(id: string, signal: NodeJS.Signals | number): Promise<void>;
  /** Resolves when the container's init process has exited. */
  wait(id: string): Promise<ExitStatus>;
  state(id: string): Promise<ContainerState | undefined>;
  /** Resource usage from the container's cgroup (optional: not every runtime has it). */
  stats?(id: string): Promise<ContainerStats>;
  /**
   * For a metrics scrape: the container's status and init pid, and when it runs the counters the
   * Prometheus families use (optional). One read of the container's state where state() and
   * stats() read it twice; undefined when the container does not exist.
   */
  metricsReading?(id: string): Promise<MetricsReading | undefined>;
  /** Removes what create made (cgroup, state); the container must be stopped. */
  delete(id: string): Promise<void>;
  /** Runs another process in the running container (its namespaces, cgroup and process settings). */
  exec?(id: string, options: ExecOptions): Promise<ExecProcess>;
}
