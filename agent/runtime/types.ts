// The TypeScript face of the native runtime. Input is an OCI runtime-spec bundle
// (config.json + rootfs), so runc can run the same bundle as an oracle.

/** The subset of the OCI runtime-spec config.json the first cut honours. */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal?: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env?: string[];
    cwd: string;
    noNewPrivileges?: boolean;
  };
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: Array<{ destination: string; type?: string; source?: string; options?: string[] }>;
  linux?: {
    namespaces?: Array<{ type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup'; path?: string }>;
    cgroupsPath?: string;
    resources?: {
      memory?: { limit?: number; swap?: number };
      pids?: { limit: number };
      cpu?: { shares?: number; quota?: number; period?: number };
    };
    maskedPaths?: string[];
    readonlyPaths?: string[];
  };
  annotations?: Record<string, string>;
}

export interface CreateOptions {
  /** File that receives the container's stdout and stderr. */
  logPath: string;
}

export interface ContainerState {
  id: string;
  pid: number;
  status: 'created' | 'running' | 'stopped';
  bundle: string;
}

export interface ExitStatus {
  /** Exit code, or 128+signal when killed by a signal (shell convention). */
  exitCode: number;
  signal?: string;
  oomKilled: boolean;
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
  /** Removes what create made (cgroup, state); the container must be stopped. */
  delete(id: string): Promise<void>;
}
