// ContainerRuntime on top of the tessera_native addon: namespaces, mounts and exec happen in the
// addon's cloned init; cgroups and state files are managed here.

import os from 'node:os';
import path from 'node:path';
import { CgroupsV1, detectCgroupVersion, normalizeCgroupsPath, type CgroupRecord } from './cgroups-v1.js';
import { abandonContainer, spawnContainer, startContainer, waitProcess, type ProcessExit } from './native.js';
import { readBundleConfig } from './oci-config.js';
import { buildSpawnPlan, resolveRootfs } from './spawn-plan.js';
import { processStartTime, StateStore, validateContainerId, type StoredState } from './state-store.js';
import type { ContainerRuntime, ContainerState, CreateOptions, ExitStatus } from './types.js';

export interface NativeRuntimeOptions {
  /** Directory holding one <id>/state.json per container. */
  stateRoot: string;
  /** Where the cgroup hierarchies are mounted; default /sys/fs/cgroup. */
  cgroupMountRoot?: string;
  /** Parent cgroup for specs without linux.cgroupsPath: the container goes to <parent>/<id>. Default "tessera". */
  cgroupParent?: string;
}

/** What only this process knows about a container it created: the init's pipes and its reaper. */
interface LiveHandle {
  startFd?: number;
  statusFd?: number;
  exit: Promise<ExitStatus>;
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(os.constants.signals).map(([name, num]) => [num, name]));

export class NativeRuntime implements ContainerRuntime {
  private readonly store: StateStore;
  private readonly cgroupMountRoot: string;
  private readonly cgroupParent: string;
  private readonly live = new Map<string, LiveHandle>();
  private cgroups?: Promise<CgroupsV1>;

  constructor(options: NativeRuntimeOptions) {
    this.store = new StateStore(path.resolve(options.stateRoot));
    this.cgroupMountRoot = options.cgroupMountRoot ?? '/sys/fs/cgroup';
    this.cgroupParent = normalizeCgroupsPath(options.cgroupParent ?? 'tessera', 'cgroupParent');
  }

  async create(id: string, bundleDir: string, options: CreateOptions): Promise<ContainerState> {
    validateContainerId(id);
    const bundle = path.resolve(bundleDir);
    const source = path.join(bundle, 'config.json');
    const spec = await readBundleConfig(bundle);
    const rootfs = await resolveRootfs(spec, bundle, source);
    const cgroups = await this.cgroupDriver();
    const cgroupPath =
      spec.linux?.cgroupsPath !== undefined
        ? normalizeCgroupsPath(spec.linux.cgroupsPath, `${source}: linux.cgroupsPath`)
        : `${this.cgroupParent}/${id}`;

    await this.store.claim(id);
    let cgroup: CgroupRecord | undefined;
    try {
      cgroup = await cgroups.create(cgroupPath, spec.linux?.resources);
      const plan = await buildSpawnPlan({
        spec,
        rootfs,
        cgroupProcsFiles: cgroups.procsFiles(cgroup),
        logPath: path.resolve(options.logPath),
        source,
      });
      const child = await spawnContainer(plan);
      const state: StoredState = {
        id,
        pid: child.pid,
        pidStartTime: (await processStartTime(child.pid)) ?? '',
        bundle,
        status: 'created',
        cgroup,
        createdAt: new Date().toISOString(),
      };
      await this.store.write(state);
      const handle: LiveHandle = { startFd: child.startFd, statusFd: child.statusFd, exit: Promise.resolve({ exitCode: 0, oomKilled: false }) };
      handle.exit = this.reap(id, child.pid, cgroup, handle);
      // Callers may never wait; a failed reap must not become an unhandled rejection.
      handle.exit.catch(() => undefined);
      this.live.set(id, handle);
      return { id, pid: child.pid, status: 'created', bundle };
    } catch (err) {
      if (cgroup !== undefined) await cgroups.remove(cgroup).catch(() => undefined);
      await this.store.remove(id);
      throw new Error(`create container ${id}: ${(err as Error).message}`, { cause: err });
    }
  }

  async start(id: string): Promise<void> {
    const state = await this.mustRead(id);
    const handle = this.live.get(id);
    if (state.status !== 'created' || handle?.startFd === undefined || handle.statusFd === undefined) {
      throw new Error(`start container ${id}: it is ${state.status}${handle === undefined ? ' and was not created by this process' : ''}; only a freshly created container can start`);
    }
    const { startFd, statusFd } = handle;
    handle.startFd = undefined;
    handle.statusFd = undefined;
    await this.store.write({ ...state, status: 'running' });
    try {
      await startContainer(startFd, statusFd);
    } catch (err) {
      throw new Error(`start container ${id}: ${(err as Error).message}`, { cause: err });
    }
  }

  async kill(id: string, signal: NodeJS.Signals | number): Promise<void> {
    const state = await this.mustRead(id);
    // Signalling a stopped container is a no-op: the caller's intent (it is not running) holds.
    if (!(await this.isAlive(state))) return;
    try {
      process.kill(state.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw new Error(`kill container ${id}: ${(err as Error).message}`, { cause: err });
    }
  }

  async wait(id: string): Promise<ExitStatus> {
    const handle = this.live.get(id);
    if (handle !== undefined) return handle.exit;
    const state = await this.mustRead(id);
    if (state.exit !== undefined) return state.exit;
    // Not our child (created by an earlier tsd): it cannot be waitpid'ed, only watched.
    while (await this.isAlive(state)) await new Promise((r) => setTimeout(r, 200));
    const cgroups = await this.cgroupDriver();
    const exit: ExitStatus = { exitCode: -1, oomKilled: await cgroups.oomKilled(state.cgroup) };
    await this.store.write({ ...state, status: 'stopped', exit });
    return exit;
  }

  async state(id: string): Promise<ContainerState | undefined> {
    validateContainerId(id);
    const stored = await this.store.read(id);
    if (stored === undefined) return undefined;
    const status = stored.status !== 'stopped' && !(await this.isAlive(stored)) ? 'stopped' : stored.status;
    return { id: stored.id, pid: stored.pid, status, bundle: stored.bundle };
  }

  async delete(id: string): Promise<void> {
    validateContainerId(id);
    const state = await this.store.read(id);
    if (state === undefined) return;
    if (await this.isAlive(state)) throw new Error(`delete container ${id}: it is still running (pid ${state.pid}); kill it first`);
    const handle = this.live.get(id);
    if (handle !== undefined) await handle.exit;
    const cgroups = await this.cgroupDriver();
    await cgroups.remove(state.cgroup);
    await this.store.remove(id);
    this.live.delete(id);
  }

  private cgroupDriver(): Promise<CgroupsV1> {
    this.cgroups ??= detectCgroupVersion(this.cgroupMountRoot).then((version) => {
      if (version === 'v2') throw new Error(`cgroup v2 (unified hierarchy at ${this.cgroupMountRoot}) is not implemented yet`);
      return new CgroupsV1(this.cgroupMountRoot);
    });
    return this.cgroups;
  }

  /** Reaps the init (it is our child) and records how it ended. */
  private async reap(id: string, pid: number, cgroup: CgroupRecord, handle: LiveHandle): Promise<ExitStatus> {
    const ended: ProcessExit = await waitProcess(pid);
    if (handle.startFd !== undefined && handle.statusFd !== undefined) {
      abandonContainer(handle.startFd, handle.statusFd);
      handle.startFd = undefined;
      handle.statusFd = undefined;
    }
    const cgroups = await this.cgroupDriver();
    const exit: ExitStatus = {
      exitCode: ended.signal !== undefined ? 128 + ended.signal : (ended.exitCode ?? -1),
      oomKilled: await cgroups.oomKilled(cgroup),
    };
    if (ended.signal !== undefined) exit.signal = SIGNAL_NAMES.get(ended.signal) ?? String(ended.signal);
    const state = await this.store.read(id);
    if (state !== undefined && state.pid === pid) await this.store.write({ ...state, status: 'stopped', exit });
    return exit;
  }

  private async isAlive(state: StoredState): Promise<boolean> {
    const startTime = await processStartTime(state.pid);
    return startTime !== undefined && startTime === state.pidStartTime;
  }

  private async mustRead(id: string): Promise<StoredState> {
    validateContainerId(id);
    const state = await this.store.read(id);
    if (state === undefined) throw new Error(`container '${id}' does not exist`);
    return state;
  }
}
