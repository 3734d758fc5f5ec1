// Drives one task's container through its life on this node: prepare (image, rootfs, bundle),
// start (create, network, start), watch until exit, and clean up what it made. It reports every
// state change through the reporter; the manager's store is the only record of task state.
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { constants } from 'node:os';

import type { Task, TaskState, TaskStatus } from '../../common/resources/types.js';
import type { ImageStore } from '../../common/images/types.js';
import type { NodeNetwork } from '../network/types.js';
import { makeRootfsReadonly, mountOverlayRootfs, unmountRootfs } from '../runtime/rootfs.js';
import { buildOciSpec } from '../runtime/spec.js';
import type { ContainerRuntime, ExitStatus } from '../runtime/types.js';
import type { NodeViewAttachment } from '../../common/network/node-network-view.js';
import type { TaskOverlay } from './overlay-attachments.js';
import { parseGroup, parsePasswd, resolveProcess, resolveSecurity, resolveUser, taskHostname } from './container-config.js';
import { CAPABILITY_NUMBERS, DEFAULT_CAPABILITIES } from '../runtime/capabilities.js';
import { effectiveHealthConfig, type HealthConfig } from './health/health-state.js';
import type { HealthProber } from './health/health-prober.js';
import { startTaskHealth } from './health/task-health.js';
import { writeNameFiles } from '../network/container-files.js';
import { CONTAINER_INIT_PATH, installInit, withInit } from './container-init.js';
import type { FileLookup } from '../../common/dispatcher/stack-files.js';
import { prepareTaskMounts, releaseTaskMounts } from './task-files-mounts.js';
import { unlessAbsent } from '../fs-errors.js';
import { createPrivateFile, ensureDirMode, ensureRootfsParent, PRIVATE_DIR_MODE, writePrivateFile } from '../file-modes.js';
import type { UsernsAllocator } from '../userns/allocator.js';
import { directoriesOnTheWay, giveToContainerRoot, usernsServiceKey, wantsUserNamespace } from '../userns/container-ids.js';
import { grantSearch } from '../userns/search-acl.js';
import { makeMountPoints, mountPointsOf } from '../userns/mount-points.js';
import { assertUserNamespaces } from '../userns/kernel-support.js';
import { idMappingsOf, type ServiceIdRange } from '../userns/id-ranges.js';
import { StartPhaseTimer, type HealthProbeObserver, type TaskExitObserver, type TaskExitReason, type TaskStartObserver } from '../metrics/agent-metrics.js';

export interface TaskRunnerDeps {
  runtime: ContainerRuntime;
  images: ImageStore;
  network: NodeNetwork;
  /** Where container bundles live: <containersDir>/<container id>/ (both 0710 root:root: they lead to the rootfs) */
  containersDir: string;
  /** Where container logs live, kept after the container is gone: <logsDir>/<task name>.log (0700, logs 0600) */
  logsDir: string;
  /** Parent of every container's cgroup. */
  cgroupParent: string;
  insecureRegistries: string[];
  /** Overlay networks (cluster mode); absent: the node-local bridge only. */
  overlay?: TaskOverlay;
  /** Secrets, configs and volume specs the managers delivered (in memory); absent: none. */
  files?: FileLookup;
  /** Id ranges and shifted layers of services with `userns: auto`; absent: such tasks fail. */
  userns?: UsernsAllocator;
  report(task: Task, status: Partial<TaskStatus> & { state: TaskState }): Promise<void>;
  /** Called when the task starts or stops running, so published ports can follow. */
  onRunningChanged(task: Task): void;
  log(message: string): void;
  /** Task start phases and health probes (agent/metrics); absent: not recorded. */
  metrics?: TaskStartObserver & TaskExitObserver & HealthProbeObserver;
}

const DEFAULT_STOP_GRACE_MS = 10_000;

/** How a container ended, as the metrics count it; the same order of precedence as the status reported. */
export function exitReason(exit: ExitStatus, stopRequested: boolean): TaskExitReason {
  if (stopRequested) return 'stopped';
  if (exit.oomKilled) return 'oom_killed';
  return exit.exitCode === 0 ? 'completed' : 'failed';
}
/** What the agent writes into a rootfs as host root, handed to a user-namespaced container's root. */
const AGENT_WRITTEN_PATHS = ['etc', 'etc/hosts', 'etc/resolv.conf', 'etc/hostname', CONTAINER_INIT_PATH.slice(1)];
const LOG_MAX_BYTES = 10 * 1024 * 1024;
const LOG_MAX_FILES = 3;

/** The signal that asks the container to stop: the service's stop signal (TERM or SIGTERM), else SIGTERM. */
export function stopSignalOf(configured: string | undefined): NodeJS.Signals {
  if (!configured) return 'SIGTERM';
  const name = configured.startsWith('SIG') ? configured : `SIG${configured}`;
  return name in constants.signals ? (name as NodeJS.Signals) : 'SIGTERM';
}

export function containerIdFor(task: Task): string {
  return task.metadata.name.replace(/[^A-Za-z0-9_.-]/g, '-');
}

export function logPathFor(logsDir: string, taskName: string): string {
  return join(logsDir, `${taskName.replace(/[^A-Za-z0-9_.-]/g, '-')}.log`);
}

export class TaskRunner {
  readonly containerId: string;
  address: string | undefined;
  running = false;
  /** The task's overlay interfaces (eth1…), from the managers' allocation. */
  private overlayAttachments: NodeViewAttachment[] = [];
  private stopRequested = false;
  private created = false;
  private finished: Promise<void> | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  /** The running container's health check, when it has one. */
  private health: HealthProber | undefined;

  constructor(
    private task: Task,
    private readonly deps: TaskRunnerDeps,
  ) {
    this.containerId = containerIdFor(task);
  }

  get name(): string {
    return this.task.metadata.name;
  }

  get current(): Task {
    return this.task;
  }

  update(task: Task): void {
    this.task = task;
    if (task.desiredState === 'shutdown') void this.stop();
  }

  /** Starts the task's life; resolves when the container has exited and been cleaned up. */
  start(): Promise<void> {
    this.finished ??= this.lifecycle();
    return this.finished;
  }

  done(): Promise<void> {
    return this.finished ?? Promise.resolve();
  }

  /**
   * Takes over a container an earlier tsd started for this task (its shim kept it running): no
   * new state is reported while it runs; its end is reported as usual.
   */
  adopt(): Promise<void> {
    this.finished ??= this.adoptedLifecycle();
    return this.finished;
  }

  private async adoptedLifecycle(): Promise<void> {
    const { deps } = this;
    let exit: ExitStatus | undefined;
    let failure: { state: TaskState; message: string } | undefined;
    this.created = true;
    this.running = true;
    this.address = this.task.status.address;
    deps.onRunningChanged(this.task);
    void this.resumeHealth();
    try {
      exit = await deps.runtime.wait(this.containerId);
    } catch (err) {
      failure = { state: 'failed', message: `adopted container: ${(err as Error).message}` };
    } finally {
      this.health?.stop();
      if (this.killTimer) clearTimeout(this.killTimer);
      this.running = false;
      deps.onRunningChanged(this.task);
      await this.cleanup(join(deps.containersDir, this.containerId));
      await this.reportEnd(exit, failure);
    }
  }

  /**
   * Read through a method: stop() sets the flag while lifecycle() awaits, and a field read would be
   * narrowed to the value an earlier check in the same function saw.
   */
  private stopWasRequested(): boolean {
    return this.stopRequested;
  }

  async stop(): Promise<void> {
    if (this.stopRequested) return;
    this.stopRequested = true;
    // A container being stopped fails its probes; that is not news.
    this.health?.stop();
    if (!this.created) return;
    const grace = this.task.spec.spec.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_MS;
    const signal = stopSignalOf(this.task.spec.spec.stopSignal);
    // Armed before the first signal is sent: a signal that cannot be delivered must not leave
    // the container running past its grace period.
    this.killTimer = setTimeout(() => {
      void this.deps.runtime
        .kill(this.containerId, 'SIGKILL')
        .catch((err: Error) => this.deps.log(`task ${this.name}: SIGKILL after the grace period failed: ${err.message}`));
    }, grace);
    this.killTimer.unref();
    this.deps.log(`task ${this.name}: stopping (${String(signal)}, then SIGKILL after ${grace} ms)`);
    await this.deps.runtime.kill(this.containerId, signal).catch((err: Error) => this.deps.log(`task ${this.name}: ${String(signal)} failed: ${err.message}`));
  }

  private async lifecycle(): Promise<void> {
    const { deps, task } = this;
    const containerDir = join(deps.containersDir, this.containerId);
    let exit: ExitStatus | undefined;
    let failure: { state: TaskState; message: string } | undefined;
    // Reports to the manager between phases are charged to none of them.
    const phases = new StartPhaseTimer(deps.metrics);
    try {
      await deps.report(task, { state: 'accepted', message: 'accepted by node' });
      if (this.stopWasRequested()) return;
      await deps.report(task, { state: 'preparing', message: `pulling image ${task.spec.spec.image}` });
      let image;
      phases.enter('image');
      try {
        image = await deps.images.ensure(task.spec.spec.image, { insecureRegistries: deps.insecureRegistries });
      } catch (err) {
        phases.failed();
        failure = { state: 'rejected', message: `image ${task.spec.spec.image}: ${(err as Error).message}` };
        return;
      }
      if (this.stopWasRequested()) return;
      phases.enter('rootfs');
      const healthConfig = effectiveHealthConfig(task.spec.spec.healthcheck, image.config.healthcheck);

      // Set on every start, not only when made: the directories may be an older tsd's (0755).
      await ensureRootfsParent(deps.containersDir);
      await ensureRootfsParent(containerDir);
      await ensureDirMode(deps.logsDir, PRIVATE_DIR_MODE);
      const ids = await this.idRange();
      // With a range: lower layers owned by it, through idmapped mounts or shifted copies (agent/userns/range-rootfs.ts).
      const rootfs =
        ids && deps.userns
          ? await deps.userns.rootfs.mount(image.layerDirs, containerDir, ids, (message) => deps.log(message))
          : await mountOverlayRootfs(image.layerDirs, containerDir);
      // Overlay networks: the managers allocate the task's addresses; wait for them (and for the
      // networks to be programmed here) before the container exists.
      phases.enter('network');
      const overlay = deps.overlay ? await deps.overlay.prepare(task) : undefined;
      phases.enter('rootfs');
      await writeNameFiles(rootfs, { resolver: overlay?.dnsServer, dns: task.spec.spec.dns, extraHosts: task.spec.spec.extraHosts });
      this.overlayAttachments = overlay?.attachments ?? [];
      const hostname = taskHostname(task);
      const processConfig = resolveProcess(task.spec.spec, image.config, hostname);
      if (task.spec.spec.init === true) await installInit(rootfs);
      if (ids) await giveToContainerRoot(rootfs, AGENT_WRITTEN_PATHS, ids);
      // An image without these files has only numeric users; a file that cannot be read fails the task.
      const passwd = parsePasswd(await unlessAbsent(readFile(join(rootfs, 'etc/passwd'), 'utf8'), ''));
      const groups = parseGroup(await unlessAbsent(readFile(join(rootfs, 'etc/group'), 'utf8'), ''));
      const { uid, gid } = resolveUser(processConfig.user, passwd, groups);
      const limits = task.spec.spec.resources?.limits;
      const security = resolveSecurity(task.spec.spec, DEFAULT_CAPABILITIES, Object.keys(CAPABILITY_NUMBERS));
      const extraMounts = await prepareTaskMounts({
        task,
        containerId: this.containerId,
        containerDir,
        containersDir: deps.containersDir,
        rootfs,
        ...(deps.files ? { files: deps.files } : {}),
        ...(ids ? { ids } : {}),
      });
      const spec = buildOciSpec({
        capabilities: security.capabilities,
        rlimits: security.rlimits,
        sysctls: security.sysctls,
        readonlyRootfs: security.readonlyRootfs,
        annotations: security.annotations,
        args: task.spec.spec.init === true ? withInit(processConfig.args) : processConfig.args,
        env: processConfig.env,
        cwd: processConfig.cwd,
        uid,
        gid,
        hostname: processConfig.hostname,
        rootfsPath: rootfs,
        cgroupsPath: `${deps.cgroupParent}/${this.containerId}`,
        ...(task.spec.spec.tty === true ? { terminal: true } : {}),
        ...(limits?.memory !== undefined ? { memoryLimit: limits.memory } : {}),
        ...(limits?.pids !== undefined ? { pidsLimit: limits.pids } : {}),
        ...(limits?.cpus !== undefined ? { cpuQuota: Math.round(limits.cpus * 100_000) } : {}),
        ...(ids ? { userNamespace: idMappingsOf(ids) } : {}),
      });
      spec.mounts = [...(spec.mounts ?? []), ...extraMounts];
      if (ids) {
        // The init mounts these as the namespace's root, an unprivileged id on the host.
        const sources = [rootfs, ...extraMounts.flatMap((m) => (m.type === 'bind' && m.source !== undefined ? [m.source] : []))];
        await grantSearch(directoriesOnTheWay(dirname(deps.containersDir), sources), ids.gidStart);
        if (spec.root.readonly === true) {
          // Read-only from the host's side, last (the agent's own files and the mount points are in); see makeRootfsReadonly.
          await makeMountPoints(rootfs, await mountPointsOf(spec.mounts), ids);
          makeRootfsReadonly(rootfs);
          spec.root.readonly = false;
        }
      }
      // The environment is in it (credentials, often).
      await writePrivateFile(join(containerDir, 'config.json'), JSON.stringify(spec, null, 2));

      phases.enter(undefined);
      await deps.report(task, { state: 'starting', message: 'starting container', containerId: this.containerId });
      phases.enter('spawn');
      const logPath = logPathFor(deps.logsDir, task.metadata.name);
      // The runtime appends to the file; made here first, it keeps this mode (the runtime's own is 0640).
      await createPrivateFile(logPath);
      const state = await deps.runtime.create(this.containerId, containerDir, {
        logPath,
        // JSON lines with time and stream, rotated by size so a chatty task cannot fill the disk.
        logFormat: 'json',
        logMaxBytes: LOG_MAX_BYTES,
        logMaxFiles: LOG_MAX_FILES,
        // Nobody attaches to a task: an open stdin only keeps programs that exit at its end running.
        ...(task.spec.spec.stdinOpen === true ? { stdinOpen: true } : {}),
      });
      this.created = true;
      phases.enter('network');
      const attachment = await deps.network.attach(this.containerId, state.pid);
      this.address = attachment.address;
      if (deps.overlay && this.overlayAttachments.length > 0) await deps.overlay.attach(this.containerId, state.pid, this.overlayAttachments);
      phases.enter('spawn');
      if (this.stopWasRequested()) {
        // Stopped before it started: the created container goes; wait below returns when it has.
        await deps.runtime
          .kill(this.containerId, 'SIGKILL')
          .catch((err: Error) => deps.log(`task ${task.metadata.name}: SIGKILL of the created container failed: ${err.message}`));
      } else {
        await deps.runtime.start(this.containerId);
        phases.started();
        this.running = true;
        await deps.report(task, {
          state: 'running',
          message: 'started',
          containerId: this.containerId,
          pid: state.pid,
          address: attachment.address,
          ...(healthConfig ? { health: 'starting' as const } : {}),
        });
        deps.onRunningChanged(this.task);
        if (healthConfig) this.startHealth(healthConfig);
      }
      exit = await deps.runtime.wait(this.containerId);
      if (this.stopWasRequested()) deps.log(`task ${task.metadata.name}: container stopped (exit ${exit.exitCode})`);
    } catch (err) {
      // Once the container ran this records nothing: the start did not fail.
      phases.failed();
      failure = { state: 'failed', message: (err as Error).message };
    } finally {
      this.health?.stop();
      if (this.killTimer) clearTimeout(this.killTimer);
      const wasRunning = this.running;
      this.running = false;
      if (wasRunning) deps.onRunningChanged(this.task);
      await this.cleanup(containerDir);
      await this.reportEnd(exit, failure);
    }
  }

  /** The service's id range when its tasks run in a user namespace of their own; undefined otherwise. */
  private async idRange(): Promise<ServiceIdRange | undefined> {
    if (!wantsUserNamespace(this.task)) return undefined;
    if (!this.deps.userns) throw new Error('userns: auto: this node agent has no user-namespace id ranges configured');
    await assertUserNamespaces();
    return this.deps.userns.acquire(usernsServiceKey(this.task));
  }

  /** An adopted container's check goes on from the health last reported (the image is in the store already). */
  private async resumeHealth(): Promise<void> {
    try {
      const image = await this.deps.images.get(this.task.spec.spec.image);
      const config = effectiveHealthConfig(this.task.spec.spec.healthcheck, image?.config.healthcheck);
      const { health, failingStreak } = this.task.status;
      if (config && this.running) this.startHealth(config, health ? { status: health, failingStreak: failingStreak ?? 0 } : undefined);
    } catch (err) {
      this.deps.log(`task ${this.name}: health check not resumed: ${(err as Error).message}`);
    }
  }

  private startHealth(config: HealthConfig, resume?: { status: 'starting' | 'healthy' | 'unhealthy'; failingStreak: number }): void {
    if (this.stopRequested) return;
    this.health = startTaskHealth({
      ...(resume ? { resume } : {}),
      config,
      runtime: this.deps.runtime,
      containerId: this.containerId,
      ...(this.deps.metrics ? { metrics: this.deps.metrics } : {}),
      report: (fields) => {
        if (this.running && !this.stopRequested) {
          void this.deps
            .report(this.task, { state: 'running', ...fields })
            .catch((err: Error) => this.deps.log(`task ${this.name}: health report: ${err.message}`));
        }
      },
      log: (message) => this.deps.log(`task ${this.name}: ${message}`),
    });
  }

  private async reportEnd(exit: ExitStatus | undefined, failure: { state: TaskState; message: string } | undefined): Promise<void> {
    const { deps, task } = this;
    // A container that ran and ended (a start that failed is counted by its phase instead).
    if (exit && !failure) deps.metrics?.taskExited(exitReason(exit, this.stopRequested));
    try {
      if (failure) {
        await deps.report(task, { state: failure.state, message: failure.message, error: failure.message });
      } else if (this.stopRequested) {
        await deps.report(task, {
          state: 'shutdown',
          message: 'stopped',
          ...(exit ? { exitCode: exit.exitCode } : {}),
        });
      } else if (exit) {
        const message = exit.oomKilled
          ? 'killed: out of memory (cgroup memory limit)'
          : exit.signal
            ? `killed by signal ${exit.signal}`
            : `exited with code ${exit.exitCode}`;
        await deps.report(task, {
          state: exit.exitCode === 0 && !exit.oomKilled ? 'complete' : 'failed',
          message,
          exitCode: exit.exitCode,
          oomKilled: exit.oomKilled,
          ...(exit.exitCode !== 0 ? { error: message } : {}),
        });
      }
    } catch (err) {
      deps.log(`task ${task.metadata.name}: could not report its end: ${(err as Error).message}`);
    }
  }

  private async cleanup(containerDir: string): Promise<void> {
    const { deps } = this;
    const steps: Array<[string, () => Promise<unknown>]> = [
      [
        'overlay detach',
        () => (deps.overlay && this.overlayAttachments.length > 0 ? deps.overlay.detach(this.containerId, this.overlayAttachments) : Promise.resolve()),
      ],
      ['network detach', () => deps.network.detach(this.containerId)],
      ['container delete', () => (this.created ? deps.runtime.delete(this.containerId) : Promise.resolve())],
      ['secrets, configs and volumes release', () => releaseTaskMounts(this.containerId, deps.containersDir)],
      ['rootfs unmount', () => unmountRootfs(containerDir)],
      ['bundle removal', () => rm(containerDir, { recursive: true, force: true })],
    ];
    for (const [what, step] of steps) {
      // A step that hangs keeps the task from being reported as ended: say which one.
      const slow = setTimeout(() => deps.log(`task ${this.task.metadata.name}: ${what} still not done after 5 s`), 5000);
      slow.unref();
      try {
        await step();
      } catch (err) {
        deps.log(`task ${this.task.metadata.name}: ${what} failed: ${(err as Error).message}`);
      } finally {
        clearTimeout(slow);
      }
    }
  }
}
