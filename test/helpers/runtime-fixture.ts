// A throw-away world for runtime tests: temp dirs, a busybox bundle, a unique cgroup parent and a
// NativeRuntime over them. cleanup() removes all of it and reports anything that was left behind.

import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { buildOciSpec, type ContainerSpecInput } from '../../agent/runtime/spec.js';
import type { ExitStatus, OciSpec } from '../../agent/runtime/types.js';
import { hostCgroups } from './host-cgroups.js';
import { makeBusyboxRootfs } from './rootfs.js';

export const CGROUP_MOUNT_ROOT = '/sys/fs/cgroup';

export interface RunResult {
  exit: ExitStatus;
  log: string;
}

export class RuntimeFixture {
  readonly runtime: NativeRuntime;
  readonly cgroupParent: string;
  private readonly containers = new Set<string>();
  private counter = 0;

  private constructor(
    readonly dir: string,
    readonly prefix: string,
  ) {
    this.cgroupParent = `tessera-test-${prefix}`;
    this.runtime = new NativeRuntime({ stateRoot: path.join(dir, 'state'), cgroupParent: this.cgroupParent });
  }

  static async create(): Promise<RuntimeFixture> {
    const prefix = `${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `tessera-rt-${prefix}-`));
    const fixture = new RuntimeFixture(dir, prefix);
    await makeBusyboxRootfs(fixture.rootfs);
    return fixture;
  }

  get rootfs(): string {
    return path.join(this.dir, 'busybox-rootfs');
  }

  newId(): string {
    this.counter += 1;
    return `ctr-${this.prefix}-${this.counter}`;
  }

  cgroupPathOf(id: string): string {
    return `${this.cgroupParent}/${id}`;
  }

  /** Writes a bundle (config.json) for a spec built from `input`, or for a raw spec. */
  async writeBundle(id: string, spec: OciSpec): Promise<string> {
    const bundle = path.join(this.dir, 'bundles', id);
    await fs.mkdir(bundle, { recursive: true });
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    return bundle;
  }

  specFor(id: string, input: Partial<ContainerSpecInput> & { args: string[] }): OciSpec {
    return buildOciSpec({ rootfsPath: this.rootfs, cgroupsPath: this.cgroupPathOf(id), ...input });
  }

  logPath(id: string): string {
    return path.join(this.dir, 'logs', `${id}.log`);
  }

  /** Creates a container (tracked for cleanup); returns its id. */
  async create(input: Partial<ContainerSpecInput> & { args: string[] }, id = this.newId()): Promise<string> {
    await fs.mkdir(path.join(this.dir, 'logs'), { recursive: true });
    const bundle = await this.writeBundle(id, this.specFor(id, input));
    this.containers.add(id);
    await this.runtime.create(id, bundle, { logPath: this.logPath(id) });
    return id;
  }

  /** Creates, starts and waits for a container; returns its exit and log. */
  async run(input: Partial<ContainerSpecInput> & { args: string[] }): Promise<RunResult & { id: string }> {
    const id = await this.create(input);
    await this.runtime.start(id);
    const exit = await this.runtime.wait(id);
    const log = await fs.readFile(this.logPath(id), 'utf8').catch(() => '');
    await this.runtime.delete(id);
    return { id, exit, log };
  }

  track(id: string): void {
    this.containers.add(id);
  }

  /**
   * Existing cgroup directories of this fixture's parent, across all hierarchies: under each
   * hierarchy's root (where ours puts a relative cgroupsPath) and under this process's own cgroup
   * (where runc puts it, in the oracle tests).
   */
  async leftoverCgroups(): Promise<string[]> {
    const own = new Map<string, string>();
    for (const line of (await fs.readFile('/proc/self/cgroup', 'utf8')).split('\n')) {
      const [, controllers, where] = line.split(':');
      // v1 lines name their controllers; the cgroup2 line ("0::/path") is kept under ''.
      for (const c of controllers?.split(',') ?? []) own.set(c, where ?? '/');
    }
    const host = await hostCgroups();
    const hierarchies: Array<{ root: string; controllers: string[] }> = [];
    for (const [controller, root] of host.v1Roots) {
      const known = hierarchies.find((h) => h.root === root);
      if (known === undefined) hierarchies.push({ root, controllers: [controller] });
      else known.controllers.push(controller);
    }
    if (host.v2Root !== undefined) hierarchies.push({ root: host.v2Root, controllers: [''] });
    const found: string[] = [];
    for (const { root, controllers } of hierarchies) {
      const bases = new Set(['/', ...controllers.map((c) => own.get(c) ?? '/')]);
      for (const base of bases) {
        const dir = path.join(root, base, this.cgroupParent);
        if (
          await fs.stat(dir).then(
            () => true,
            () => false,
          )
        )
          found.push(dir);
      }
    }
    return found;
  }

  /** Host mount points at or below the fixture's directory. */
  async leftoverMounts(): Promise<string[]> {
    const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
    return info
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((mp): mp is string => mp !== undefined && (mp === this.dir || mp.startsWith(`${this.dir}/`)));
  }

  /**
   * Kills and deletes every tracked container, removes the cgroup parent and temp dirs.
   * Returns what had to be removed by force (the test asserts it is empty). Safe to call twice.
   */
  async cleanup(): Promise<{ cgroups: string[]; mounts: string[] }> {
    for (const id of this.containers) {
      const state = await this.runtime.state(id).catch(() => undefined);
      if (state === undefined) continue;
      await this.runtime.kill(id, 'SIGKILL').catch(() => undefined);
      await withTimeout(this.runtime.wait(id), 5000).catch(() => undefined);
      await this.runtime.delete(id).catch(() => undefined);
    }
    this.containers.clear();
    const mounts = await this.leftoverMounts();
    for (const mp of mounts.reverse()) {
      const { umount } = await import('../../agent/runtime/native.js');
      try {
        umount(mp, true);
      } catch {
        // best effort
      }
    }
    const cgroups = await this.leftoverCgroups();
    for (const dir of cgroups) await removeCgroupTree(dir);
    await fs.rm(this.dir, { recursive: true, force: true });
    return { cgroups, mounts };
  }
}

async function removeCgroupTree(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(path.join(dir, e.name));
  await fs.rmdir(dir).catch(() => undefined);
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
