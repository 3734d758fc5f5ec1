// ContainerRuntime on top of the tessera_native addon and one tessera-shim per container.
// The shim (native/shim/) is the parent of the container's init, owns its stdout/stderr and
// records its exit, so every operation here works the same whether this process created the
// container or an earlier one did: start, kill, state and wait talk to the shim's socket, and
// once the shim has gone, exit.json in the state dir answers. cgroups and state.json are
// managed here.

import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { normalizeCgroupsPath, openCgroupDriver, wholeDisksBacking, type CgroupDriver, type CgroupRecord } from './cgroups/index.js';
import { startExec } from './exec.js';
import { runHooksOrFail, runHooksWarning, STATE_OCI_VERSION, type HookState } from './hooks.js';
import { SHIM_PATH, spawnShim, umount, type ShimLaunchOptions, type ShimSpawned } from './native.js';
import { readBundleConfig } from './oci-config.js';
import { ShimClient, ShimGoneError, readExitFile } from './shim-client.js';
import { buildSpawnPlan, resolveRootfs, sharesHostMountNamespace } from './spawn-plan.js';
import { processStartTime, StateStore, validateContainerId, type StoredState } from './state-store.js';
import type {
  ContainerRuntime,
  ContainerState,
  ContainerStats,
  CreateOptions,
  ExecOptions,
  ExecProcess,
  ExitStatus,
  MetricsReading,
  OciSpec,
} from './types.js';
import { exists } from '../fs-errors.js';

export interface NativeRuntimeOptions {
  /** Directory holding one <id>/ per container (state.json, plan.json, shim.sock, exit.json). */
  stateRoot: string;
  /** Where the cgroup hierarchies are mounted; default /sys/fs/cgroup. */
  cgroupMountRoot?: string;
  /** Parent cgroup for specs without linux.cgroupsPath: the container goes to <parent>/<id>. Default "tessera". */
  cgroupParent?: string;
  /** The tessera-shim executable; default the one built next to the addon. */
  shimPath?: string;
  /** Where failures that do not stop the lifecycle go (poststart and poststop hooks); default process.emitWarning. */
  warn?: (message: string) => void;
}

/** The exit reported when neither the shim nor exit.json can tell (the shim was killed). */
const UNKNOWN_EXIT: ExitStatus = { exitCode: -1, oomKilled: false };

export class NativeRuntime implements ContainerRuntime {
  private readonly store: StateStore;
  private readonly cgroupMountRoot: string;
  private readonly cgroupParent: string;
  private readonly shimPath: string;
  private readonly warn: (message: string) => void;
  private cgroups?: Promise<CgroupDriver>;

  constructor(options: NativeRuntimeOptions) {
    this.store = new StateStore(path.resolve(options.stateRoot));
    this.cgroupMountRoot = options.cgroupMountRoot ?? '/sys/fs/cgroup';
    this.cgroupParent = normalizeCgroupsPath(options.cgroupParent ?? 'tessera', 'cgroupParent');
    this.shimPath = options.shimPath ?? SHIM_PATH;
    this.warn = options.warn ?? ((message) => process.emitWarning(message));
  }

  async create(id: string, bundleDir: string, options: CreateOptions): Promise<ContainerState> {
    validateContainerId(id);
    const stdio = shimStdioOf(id, options);
    const bundle = path.resolve(bundleDir);
    const source = path.join(bundle, 'config.json');
    const spec = await readBundleConfig(bundle);
    // The shim holds the pty's master; inherited stdio has no shim in the way (runc wants a console socket there).
    if (options.stdio === 'inherit' && spec.process.terminal === true) {
      throw new Error(`${source}: process.terminal needs the container's output logged by its shim, not inherited stdio`);
    }
    const rootfs = await resolveRootfs(spec, bundle, source);
    const cgroups = await this.cgroupDriver();
    const cgroupPath =
      spec.linux?.cgroupsPath !== undefined ? normalizeCgroupsPath(spec.linux.cgroupsPath, `${source}: linux.cgroupsPath`) : `${this.cgroupParent}/${id}`;

    await this.store.claim(id);
    let cgroup: CgroupRecord | undefined;
    try {
      // Only v1 needs the disks (a throttle rule turns its I/O accounting on; v2's io.stat counts
      // without one). The rootfs may be an overlay (no block device of its own); the bundle sits
      // beside its upper dir.
      const ioAccountedDisks = cgroups.version === 'v1' ? await wholeDisksBacking([rootfs, bundle]) : [];
      cgroup = await cgroups.create(cgroupPath, spec.linux?.resources, { ioAccountedDisks });
      const plan = await buildSpawnPlan({
        spec,
        rootfs,
        cgroupProcsFiles: cgroups.procsFiles(cgroup),
        cgroups: { version: cgroups.version, mountRoot: this.cgroupMountRoot, dirs: cgroup.dirs },
        logPath: stdio.logPath,
        source,
        ...(options.stdinOpen === true ? { stdinOpen: true } : {}),
      });
      // plan.json is only read by exec, after create: write it while the shim starts.
      const planWritten = this.store.writePlan(id, plan);
      planWritten.catch(() => undefined); // awaited below; this only marks it handled while the shim starts
      let child: ShimSpawned;
      try {
        child = await spawnShim(plan, {
          shimPath: this.shimPath,
          stateDir: this.store.dir(id),
          ...stdio,
          oomFile: await oomFileOf(cgroup),
        });
      } catch (err) {
        // Only waited for, so no write is in flight when the state dir is removed below; the
        // spawn's error is the one to report, and plan.json goes with the dir either way.
        await planWritten.catch(() => undefined);
        await this.detachHostMounts(id).catch((detachError: Error) => {
          throw new Error(`${(err as Error).message} (and ${detachError.message})`, { cause: err });
        });
        throw err;
      }
      try {
        const [pidStartTime, shimStartTime] = await Promise.all([processStartTime(child.pid), processStartTime(child.shimPid), planWritten]);
        const state: StoredState = {
          id,
          pid: child.pid,
          pidStartTime: pidStartTime ?? '',
          bundle,
          status: 'created',
          cgroup,
          createdAt: new Date().toISOString(),
          shimPid: child.shimPid,
          shimStartTime: shimStartTime ?? '',
          ...(plan.warnings.length > 0 ? { warnings: plan.warnings } : {}),
          ...storedHooksOf(spec),
        };
        await this.store.write(state);
        await runHooksOrFail(spec.hooks?.createRuntime, hookStateOf(state, 'created'), 'createRuntime');
      } catch (err) {
        // The init (just created by us, blocked before execve) must not outlive a failed create;
        // its shim exits with it, before the cgroup can go.
        killQuietly(child.pid);
        await this.waitShimGone({ shimPid: child.shimPid, shimStartTime: (await processStartTime(child.shimPid)) ?? '' });
        throw err;
      }
      return { id, pid: child.pid, status: 'created', bundle };
    } catch (err) {
      // The create failed; a cgroup that cannot be removed after it is named in the error, not dropped.
      let leftBehind = '';
      if (cgroup !== undefined) {
        const created = cgroup;
        await cgroups.remove(created).catch((removeError: Error) => {
          leftBehind = ` (and its cgroup ${created.dirs.join(', ')} could not be removed: ${removeError.message})`;
        });
      }
      await this.store.remove(id);
      throw new Error(`create container ${id}: ${(err as Error).message}${leftBehind}`, { cause: err });
    }
  }

  /** Runs the prestart hooks, releases the init into execve, then runs the poststart hooks. */
  async start(id: string): Promise<void> {
    const state = await this.mustRead(id);
    // Not created (already started or stopped): the shim's refusal below says so.
    if (state.hooks?.prestart !== undefined && (await this.statusOf(state)) === 'created') {
      try {
        await runHooksOrFail(state.hooks.prestart, hookStateOf(state, 'created'), 'prestart');
      } catch (err) {
        // A failed prestart hook stops the container and the lifecycle goes on with its deletion
        // (runtime-spec runtime.md#lifecycle): poststop hooks run, cgroup and state go.
        const outcome = await this.kill(id, 'SIGKILL')
          .then(() => this.wait(id))
          .then(() => this.delete(id))
          .then(
            () => 'the container was stopped and deleted',
            (cleanupError: Error) => `stopping and deleting the container failed: ${cleanupError.message}`,
          );
        throw new Error(`start container ${id}: ${(err as Error).message}; ${outcome}`, { cause: err });
      }
    }
    try {
      await this.shim(id).start();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason =
        err instanceof ShimGoneError || code === 'EINVAL'
          ? `it is ${err instanceof ShimGoneError ? 'stopped' : (err as Error).message.replace(/^the container (was|has) /, '')}; only a freshly created container can start`
          : (err as Error).message;
      throw new Error(`start container ${id}: ${reason}`, { cause: err });
    }
    await this.store.write({ ...state, status: 'running' });
    await runHooksWarning(state.hooks?.poststart, hookStateOf(state, 'running'), 'poststart', this.warn);
  }

  async kill(id: string, signal: NodeJS.Signals | number): Promise<void> {
    await this.mustRead(id);
    const number = typeof signal === 'number' ? signal : os.constants.signals[signal];
    // A name that is not a signal (from a caller that cast it) gives undefined: not an integer either.
    if (!Number.isInteger(number) || number < 0 || number > 64) throw new Error(`kill container ${id}: unknown signal ${String(signal)}`);
    try {
      await this.shim(id).kill(number);
    } catch (err) {
      // Signalling a stopped container is a no-op: the caller's intent (it is not running) holds.
      if (err instanceof ShimGoneError) return;
      throw new Error(`kill container ${id}: ${(err as Error).message}`, { cause: err });
    }
  }

  async wait(id: string): Promise<ExitStatus> {
    const state = await this.mustRead(id);
    const dir = this.store.dir(id);
    const recorded = state.exit ?? (await readExitFile(dir));
    if (recorded !== undefined) return recorded;
    try {
      return await this.shim(id).wait();
    } catch (err) {
      if (!(err instanceof ShimGoneError)) throw new Error(`wait for container ${id}: ${(err as Error).message}`, { cause: err });
    }
    // The shim removes its socket just before it writes exit.json and exits: once it is gone the
    // file is there, unless it died abnormally.
    await this.waitShimGone(state);
    return (await readExitFile(dir)) ?? this.unknownExit(state);
  }

  /** Resource usage from the container's cgroup; works for containers an earlier tsd created. */
  async stats(id: string): Promise<ContainerStats> {
    const state = await this.mustRead(id);
    return (await this.cgroupDriver()).stats(state.cgroup);
  }

  async metricsReading(id: string): Promise<MetricsReading | undefined> {
    validateContainerId(id);
    const stored = await this.store.read(id);
    if (stored === undefined) return undefined;
    const status = stored.exit === undefined ? await this.liveStatus(stored) : 'stopped';
    if (status !== 'running') return { status, pid: stored.pid };
    return { status, pid: stored.pid, stats: await (await this.cgroupDriver()).stats(stored.cgroup, 'metrics') };
  }

  async state(id: string): Promise<ContainerState | undefined> {
    validateContainerId(id);
    const stored = await this.store.read(id);
    if (stored === undefined) return undefined;
    const warnings = [...(stored.warnings ?? []), ...(stored.cgroup.warnings ?? [])];
    return { id: stored.id, pid: stored.pid, bundle: stored.bundle, status: await this.statusOf(stored), ...(warnings.length > 0 ? { warnings } : {}) };
  }

  /** Removes the container's cgroup and state; refused while its init is alive (created or running). */
  async delete(id: string): Promise<void> {
    validateContainerId(id);
    const stored = await this.store.read(id);
    if (stored === undefined) return;
    const status = await this.statusOf(stored);
    if (status !== 'stopped') {
      throw new Error(`delete container ${id}: it is still running (pid ${stored.pid}, ${status}); kill it first`);
    }
    await this.waitShimGone(stored);
    await runHooksWarning(stored.hooks?.poststop, hookStateOf(stored, 'stopped'), 'poststop', this.warn);
    await this.detachHostMounts(id);
    const cgroups = await this.cgroupDriver();
    await cgroups.remove(stored.cgroup);
    await this.store.remove(id);
  }

  async exec(id: string, options: ExecOptions): Promise<ExecProcess> {
    const state = await this.state(id);
    if (state === undefined) throw new Error(`container '${id}' does not exist`);
    if (state.status !== 'running') throw new Error(`exec in container ${id}: it is ${state.status}, not running`);
    const plan = await this.store.readPlan(id);
    // Its init is chrooted in the host's mount namespace: joining that namespace would not put the
    // new process inside the container's root.
    if (sharesHostMountNamespace(plan)) throw new Error(`exec in container ${id}: it has no mount namespace of its own; exec is not supported then`);
    try {
      return await startExec(plan, state.pid, options);
    } catch (err) {
      throw new Error(`exec in container ${id}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Ids of every container in the state root (whichever process created them). */
  list(): Promise<string[]> {
    return this.store.list();
  }

  /** The container's state directory (state.json, plan.json, shim.sock, exit.json). */
  stateDir(id: string): string {
    validateContainerId(id);
    return this.store.dir(id);
  }

  /**
   * statusOf() for a container that is probably running: the shim answers first, and exit.json
   * (which a running container has not) is read only once the shim is gone.
   */
  private async liveStatus(stored: StoredState): Promise<ContainerState['status']> {
    try {
      return (await this.shim(stored.id).state()).status;
    } catch (err) {
      if (!(err instanceof ShimGoneError)) throw err;
      return this.statusOf(stored);
    }
  }

  private async statusOf(stored: StoredState): Promise<ContainerState['status']> {
    if (stored.exit !== undefined || (await readExitFile(this.store.dir(stored.id))) !== undefined) return 'stopped';
    try {
      return (await this.shim(stored.id).state()).status;
    } catch (err) {
      if (!(err instanceof ShimGoneError)) throw err;
      // A shim that is still starting has no socket yet; otherwise gone means stopped.
      return (await this.shimAlive(stored)) ? stored.status : 'stopped';
    }
  }

  /**
   * A container without a mount namespace of its own made its mounts in ours, under its rootfs
   * (the rootfs's own bind holds them all): they are detached with it. Nothing to do otherwise.
   */
  private async detachHostMounts(id: string): Promise<void> {
    const plan = await this.store.readPlan(id).catch(() => undefined);
    if (plan === undefined || !sharesHostMountNamespace(plan)) return;
    try {
      umount(plan.rootfs, true);
    } catch (err) {
      // EINVAL: not a mount point (the init failed before binding it); nothing was left.
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL')
        throw new Error(`delete container ${id}: detach its mounts under ${plan.rootfs}: ${(err as Error).message}`, { cause: err });
    }
  }

  private shim(id: string): ShimClient {
    return new ShimClient(this.store.dir(id));
  }

  private cgroupDriver(): Promise<CgroupDriver> {
    this.cgroups ??= openCgroupDriver(this.cgroupMountRoot);
    return this.cgroups;
  }

  private async unknownExit(state: StoredState): Promise<ExitStatus> {
    const cgroups = await this.cgroupDriver();
    return { ...UNKNOWN_EXIT, oomKilled: await cgroups.oomKilled(state.cgroup) };
  }

  private async shimAlive(state: Pick<StoredState, 'shimPid' | 'shimStartTime'>): Promise<boolean> {
    if (state.shimPid === undefined) return false;
    const startTime = await processStartTime(state.shimPid);
    return startTime !== undefined && startTime === state.shimStartTime;
  }

  /** The shim exits just after recording the exit (about a millisecond): poll briefly and often, up to 2 s. */
  private async waitShimGone(state: Pick<StoredState, 'shimPid' | 'shimStartTime'>): Promise<void> {
    const deadline = performance.now() + 2000;
    for (let delay = 0.5; (await this.shimAlive(state)) && performance.now() < deadline; delay = Math.min(delay * 2, 20)) {
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async mustRead(id: string): Promise<StoredState> {
    validateContainerId(id);
    const state = await this.store.read(id);
    if (state === undefined) throw new Error(`container '${id}' does not exist`);
    return state;
  }
}

type ShimStdio = Pick<ShimLaunchOptions, 'stdio' | 'logPath' | 'logFormat' | 'logMaxSize' | 'logMaxFiles'>;

/** The shim's stdio options from create's; log options are validated only when there is a log. */
function shimStdioOf(id: string, options: CreateOptions): ShimStdio {
  if (options.stdio === 'inherit') return { stdio: 'inherit', logPath: '', logFormat: 'raw', logMaxSize: '0', logMaxFiles: '1' };
  const logMaxBytes = options.logMaxBytes ?? 0;
  const logMaxFiles = options.logMaxFiles ?? 1;
  if (!Number.isSafeInteger(logMaxBytes) || logMaxBytes < 0)
    throw new Error(`create container ${id}: logMaxBytes must be a non-negative integer, got ${logMaxBytes}`);
  if (!Number.isSafeInteger(logMaxFiles) || logMaxFiles < 1 || logMaxFiles > 100)
    throw new Error(`create container ${id}: logMaxFiles must be an integer from 1 to 100, got ${logMaxFiles}`);
  return {
    stdio: 'log',
    logPath: path.resolve(options.logPath),
    logFormat: options.logFormat ?? 'raw',
    logMaxSize: String(logMaxBytes),
    logMaxFiles: String(logMaxFiles),
  };
}

/** The hooks and annotations state.json keeps for the hooks run after create. */
function storedHooksOf(spec: OciSpec): Pick<StoredState, 'hooks' | 'annotations'> {
  const { prestart, poststart, poststop } = spec.hooks ?? {};
  const hooks = { ...(prestart ? { prestart } : {}), ...(poststart ? { poststart } : {}), ...(poststop ? { poststop } : {}) };
  return { ...(Object.keys(hooks).length > 0 ? { hooks } : {}), ...(spec.annotations !== undefined ? { annotations: spec.annotations } : {}) };
}

/** The container's state as hooks read it on stdin; a stopped container has no pid. */
function hookStateOf(state: StoredState, status: HookState['status']): HookState {
  return {
    ociVersion: STATE_OCI_VERSION,
    id: state.id,
    status,
    ...(status !== 'stopped' ? { pid: state.pid } : {}),
    bundle: state.bundle,
    ...(state.annotations !== undefined ? { annotations: state.annotations } : {}),
  };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone (ESRCH): it is our own child, so no other error can come from the kill.
  }
}

async function oomFileOf(cgroup: CgroupRecord): Promise<string> {
  for (const dir of cgroup.dirs) {
    for (const name of ['memory.oom_control', 'memory.events']) {
      const file = path.join(dir, name);
      if (await exists(file)) return file;
    }
  }
  return '';
}
