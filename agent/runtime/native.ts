import { existsSync } from 'node:fs';
// Typed face of the tessera_native addon (native/*.cc, built by `node-gyp rebuild`).
// Every call that fails in the kernel throws an Error whose `code` is the errno name
// (e.g. 'EBUSY'), like Node's own fs errors.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { NativeSecurityPlan } from './security-plan.js';

/** Names of MS_* mount flags the addon understands. */
export type MountFlag =
  | 'rdonly'
  | 'nosuid'
  | 'nodev'
  | 'noexec'
  | 'synchronous'
  | 'remount'
  | 'mandlock'
  | 'dirsync'
  | 'noatime'
  | 'nodiratime'
  | 'bind'
  | 'move'
  | 'rec'
  | 'silent'
  | 'private'
  | 'slave'
  | 'shared'
  | 'unbindable'
  | 'relatime'
  | 'strictatime'
  | 'lazytime';

/** Namespaces the addon can create for a container (CLONE_NEW*). */
export type NamespaceKind = 'pid' | 'mount' | 'uts' | 'ipc' | 'network' | 'cgroup';

/** One mount the container's init performs inside its rootfs, before pivot_root. */
export interface NativeMount {
  source: string;
  /** Path inside the container, absolute ("/proc"). Resolved inside the rootfs, never outside it. */
  destination: string;
  fstype: string;
  flags: MountFlag[];
  data: string;
  /** Bind mounts asked to be read-only need a second, remount call. */
  remountReadonly: boolean;
  /** What to create at the destination when missing: a directory, or an empty file (binds of files). */
  targetKind: 'dir' | 'file';
  /** Propagation set on the new mount afterwards, e.g. ['slave', 'rec'] for rslave; [] or absent for none. */
  propagation?: MountFlag[];
  /** Not a mount: a symbolic link to this target is made at `destination` (e.g. cpu -> cpu,cpuacct). */
  symlinkTarget?: string;
}

/** Everything the child needs, computed up front: the child may not allocate memory. */
export interface NativeSpawnPlan extends NativeSecurityPlan {
  /** Absolute host path of the root filesystem. */
  rootfs: string;
  rootReadonly: boolean;
  namespaces: NamespaceKind[];
  hostname: string;
  /** Host paths of the files the child writes "0" into to join its cgroups first (v1 tasks, v2 cgroup.procs). */
  cgroupProcsFiles: string[];
  mounts: NativeMount[];
  maskedPaths: string[];
  readonlyPaths: string[];
  /** Host path of the file that receives stdout and stderr (opened O_APPEND). */
  logPath: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  cwd: string;
  /** Paths inside the container to try, in order, for args[0] (PATH resolved up front). */
  executableCandidates: string[];
  args: string[];
  env: string[];
  noNewPrivileges: boolean;
  /** OCI process.terminal: the init's stdio is a pty of its own devpts; the shim holds the master and logs it as stdout. */
  terminal?: boolean;
  /** stdin is a pipe the shim holds open and never writes (reads block), instead of /dev/null. Shim only. */
  stdinOpen?: boolean;
  /** linux.devices: nodes made in the container after its mounts (absent: none). */
  devices?: NativeDevice[];
}

/** A device node for the container (OCI linux.devices), resolved for the addon. */
export interface NativeDevice {
  /** Absolute path in the container, e.g. /dev/fuse. */
  path: string;
  /** c (character; OCI's u too), b (block) or p (FIFO). */
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
  /** Permission bits (0-0o7777), set exactly (the umask does not apply). */
  mode: number;
  uid: number;
  gid: number;
}

/** A container init that has finished its set-up and is blocked until started. */
export interface SpawnedChild {
  pid: number;
  /** Write end of the pipe that releases the child into execve. */
  startFd: number;
  /** Read end of the CLOEXEC pipe on which the child reports an execve failure. */
  statusFd: number;
}

export interface ProcessExit {
  /** Set when the process exited normally. */
  exitCode?: number;
  /** Signal number, set when the process was killed by a signal. */
  signal?: number;
}

interface NativeBinding {
  mount(source: string, target: string, fstype: string, flags: MountFlag[], data: string): void;
  umount(target: string, detach: boolean): void;
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Buffer): void;
  lgetxattr(path: string, name: string): Buffer | undefined;
  llistxattr(path: string): string[];
  createUserNamespace?(uidMap: string, gidMap: string): number;
  idmappedMount?(source: string, target: string, usernsFd: number): void;
  spawnContainer?(plan: NativeSpawnPlan): Promise<SpawnedChild>;
  startContainer?(startFd: number, statusFd: number): Promise<void>;
  abandonContainer?(startFd: number, statusFd: number): void;
  waitProcess?(pid: number): Promise<ProcessExit>;
  spawnShim?(plan: NativeSpawnPlan, options: ShimLaunchOptions): Promise<ShimSpawned>;
  execInContainer?(plan: NativeSpawnPlan, containerPid: number, tty: boolean, size?: TerminalSize): Promise<ExecSpawned>;
  setWindowSize?(fd: number, rows: number, cols: number): void;
  attachDeviceFilter?(cgroupDir: string, program: Int32Array): void;
}

/** How the addon launches tessera-shim (all strings: they become its argv). */
export interface ShimLaunchOptions {
  shimPath: string;
  /** The container's state directory: the shim puts shim.sock and exit.json there. */
  stateDir: string;
  /**
   * 'log' (default): the init's stdout and stderr are pipes the shim writes to logPath, its stdin
   * /dev/null. 'inherit': the init gets this process's fds 0-2 and the log options are unused.
   */
  stdio?: 'log' | 'inherit';
  logPath: string;
  logFormat: 'json' | 'raw';
  /** Bytes per log file before rotation; '0' = never rotate. */
  logMaxSize: string;
  /** Log files kept, the current one included. */
  logMaxFiles: string;
  /** memory.oom_control (v1) or memory.events (v2) of the container's cgroup; '' when none. */
  oomFile: string;
}

export interface ShimSpawned {
  /** The container init, blocked before execve; its parent is the shim. */
  pid: number;
  shimPid: number;
}

export interface ExecSpawned {
  /** The exec'd process, a child of this process in the container's pid namespace. */
  pid: number;
  /** [ptyMaster] with a TTY; [stdinWrite, stdoutRead, stderrRead] without. */
  fds: number[];
}

// From the sources (tsx) the addon is two levels up; from the compiled dist/agent/runtime, three.
const addonPath =
  ['../../build/Release/tessera_native.node', '../../../build/Release/tessera_native.node']
    .map((relative) => path.resolve(path.dirname(fileURLToPath(import.meta.url)), relative))
    .find((candidate) => existsSync(candidate)) ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/Release/tessera_native.node');
/** The tessera-shim executable built next to the addon. */
export const SHIM_PATH = path.join(path.dirname(addonPath), 'tessera-shim');
const binding = createRequire(import.meta.url)(addonPath) as NativeBinding;

function required<K extends keyof NativeBinding>(name: K): NonNullable<NativeBinding[K]> {
  const fn = binding[name];
  if (fn === undefined) throw new Error(`tessera_native addon lacks ${name}: rebuild it with \`npx node-gyp rebuild\``);
  return fn as NonNullable<NativeBinding[K]>;
}

/** mount(2). `flags` are MS_* names, `data` the fs-specific option string ('' for none). */
export function mount(source: string, target: string, fstype: string, flags: MountFlag[], data: string): void {
  binding.mount(source, target, fstype, flags, data);
}

/** umount2(2); `detach` is MNT_DETACH (lazy unmount). */
export function umount(target: string, detach: boolean): void {
  binding.umount(target, detach);
}

/** mknod(2). `mode` includes the type bits, e.g. fs.constants.S_IFCHR | 0o000 for an overlay whiteout. */
export function mknod(filePath: string, mode: number, major: number, minor: number): void {
  binding.mknod(filePath, mode, major, minor);
}

/** lsetxattr(2), e.g. lsetxattr(dir, 'trusted.overlay.opaque', Buffer.from('y')). */
export function lsetxattr(filePath: string, name: string, value: Buffer): void {
  binding.lsetxattr(filePath, name, value);
}

/** lgetxattr(2); undefined when the attribute is not set. */
export function lgetxattr(filePath: string, name: string): Buffer | undefined {
  return binding.lgetxattr(filePath, name);
}

/** llistxattr(2): the names of the extended attributes set on the path itself (a symlink's own). */
export function llistxattr(filePath: string): string[] {
  return binding.llistxattr(filePath);
}

/**
 * A user namespace with these maps ("inside outside count" lines, as /proc/<pid>/uid_map takes)
 * and no process in it, as an fd (close it with fs.closeSync). Only idmapped mounts use it.
 */
export function createUserNamespace(uidMap: string, gidMap: string): number {
  return required('createUserNamespace')(uidMap, gidMap);
}

/** Binds `source` at `target` with its owners moved by the maps of the user namespace `usernsFd` (nothing on disk changes). */
export function idmappedMount(source: string, target: string, usernsFd: number): void {
  required('idmappedMount')(source, target, usernsFd);
}

/**
 * Clones the container init into new namespaces; it joins its cgroups, does its mounts and
 * pivot_root, then blocks before execve. Rejects with the failed step and errno if set-up fails
 * (the child is reaped by then).
 */
export function spawnContainer(plan: NativeSpawnPlan): Promise<SpawnedChild> {
  return required('spawnContainer')(plan);
}

/** Releases a spawned child into execve; resolves once execve succeeded, rejects if it failed. Closes both fds. */
export function startContainer(startFd: number, statusFd: number): Promise<void> {
  return required('startContainer')(startFd, statusFd);
}

/** Closes a spawned child's fds without starting it: the child sees EOF and exits. */
export function abandonContainer(startFd: number, statusFd: number): void {
  required('abandonContainer')(startFd, statusFd);
}

/** waitpid(2) on a dedicated thread (not libuv's small pool, which many containers would starve). */
export function waitProcess(pid: number): Promise<ProcessExit> {
  return required('waitProcess')(pid);
}

/**
 * posix_spawns tessera-shim with the plan on a pipe; the shim forks away from this process, clones
 * the container init (blocked before execve) and becomes its parent. Rejects with the failed step and errno if the set-up fails (nothing is left then).
 */
export function spawnShim(plan: NativeSpawnPlan, options: ShimLaunchOptions): Promise<ShimSpawned> {
  return required('spawnShim')(plan, { ...options, stdio: options.stdio ?? 'log' });
}

/** A terminal's size in character cells; 0 leaves a dimension as the kernel has it. */
export interface TerminalSize {
  rows: number;
  cols: number;
}

/**
 * Starts plan.args inside the namespaces and cgroup of containerPid with the plan's process
 * settings; with a TTY of `size` when given (set before the process starts).
 */
export function execInContainer(plan: NativeSpawnPlan, containerPid: number, tty: boolean, size?: TerminalSize): Promise<ExecSpawned> {
  return size === undefined ? required('execInContainer')(plan, containerPid, tty) : required('execInContainer')(plan, containerPid, tty, size);
}

/** Sets a pty's window size (TIOCSWINSZ on its master); the foreground process group gets SIGWINCH. */
export function setWindowSize(fd: number, rows: number, cols: number): void {
  required('setWindowSize')(fd, rows, cols);
}

/**
 * Loads a BPF_PROG_TYPE_CGROUP_DEVICE program (five integers per instruction: code, dst, src, off,
 * imm; see cgroups/device-bpf.ts) and attaches it to a cgroup2 directory with BPF_F_ALLOW_MULTI.
 * Synchronous. Throws with `code` the errno name and, when the verifier refused the program,
 * `verifierLog` (also in the message).
 */
export function attachDeviceFilter(cgroupDir: string, program: Int32Array): void {
  required('attachDeviceFilter')(cgroupDir, program);
}
