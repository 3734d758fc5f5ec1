// cgroup v2 (unified hierarchy): one directory per container; controllers are made available to it
// by enabling them in every ancestor's cgroup.subtree_control.
//
// Devices: v2 has no devices.* files. create() builds a BPF_CGROUP_DEVICE program from the spec's
// rules and the default set (device-bpf.ts) and attaches it to the container's directory before
// returning, so the init, created inside that directory, runs under it from its first instruction.
// A program that cannot be attached fails the create: a container without its device filter
// could open any device node it can mknod (CAP_MKNOD is in the default set).
// Hybrid hosts are driven by CgroupsV1 (detect.ts): the container does not join the unified
// mount there, and the v1 devices controller enforces the same list.

import path from 'node:path';
import type { ContainerStats } from '../types.js';
import { exists, throwAfterCleanup } from '../../fs-errors.js';
import type { CgroupDriver, CgroupRecord } from './driver.js';
import { deviceProgramFor, encodeProgram } from './device-bpf.js';
import { mkdirRecorded, readControl, readOptional, removeCreated, writeControl } from './fs-util.js';
import { planV2, type ControlWrite } from './plan.js';
import { validateResources } from './resources.js';
import { parseKeyValues } from './stats-parse.js';
import { statsFromV2Files, V2_METRICS_FILES, V2_STAT_FILES, type StatsScope } from './stats-files.js';

/** Enabled when available even without a limit, so stats have something to read. */
const STATS_CONTROLLERS = ['cpu', 'io', 'memory', 'pids'] as const;

/** Loads a device program (encodeProgram's form) and attaches it to a cgroup2 directory; throws on failure. */
export type AttachDeviceFilter = (cgroupDir: string, program: Int32Array) => void;

export interface CgroupsV2Options {
  /** Default: the addon's bpf(2) load and attach. Tests on a plain-directory tree pass a recorder. */
  attachDeviceFilter?: AttachDeviceFilter;
}

export class CgroupsV2 implements CgroupDriver {
  readonly version = 'v2' as const;
  private readonly attachDeviceFilter: AttachDeviceFilter | undefined;

  constructor(
    private readonly root: string,
    options: CgroupsV2Options = {},
  ) {
    this.attachDeviceFilter = options.attachDeviceFilter;
  }

  async create(relativePath: string, resources: unknown): Promise<CgroupRecord> {
    const validated = validateResources(resources ?? {});
    const plan = planV2(validated);
    // Built before anything is created: a rule list the program cannot hold is refused up front.
    const deviceProgram = encodeProgram(deviceProgramFor(validated.devices));
    const rootAvailable = await this.controllersOf(this.root);
    // The first field that needs each controller, for the error when it is missing.
    const neededBy = new Map<string, string>();
    for (const w of plan.writes) {
      const controller = w.file.slice(0, w.file.indexOf('.'));
      if (plan.controllers.has(controller) && !neededBy.has(controller)) neededBy.set(controller, w.field);
    }
    const wanted = new Set<string>([...plan.controllers, ...STATS_CONTROLLERS.filter((c) => rootAvailable.has(c))]);

    const record: CgroupRecord = { dirs: [], createdDirs: [] };
    if (plan.warnings.length > 0) record.warnings = plan.warnings;
    try {
      const parts = relativePath.split('/');
      let dir = this.root;
      // Controllers available in `dir`: read from the kernel for directories that existed, and
      // known for ones we made (a new child's cgroup.controllers is its parent's subtree_control).
      let available: Set<string> | undefined = rootAvailable;
      for (const part of parts) {
        available ??= await this.controllersOf(dir);
        for (const [controller, field] of neededBy) {
          if (!available.has(controller)) {
            throw new Error(
              `${field}: the cgroup v2 '${controller}' controller is not available in ${dir} (cgroup.controllers: ${[...available].join(' ') || 'none'})`,
            );
          }
        }
        const enable = [...wanted].filter((c) => available?.has(c) === true);
        await this.enable(dir, enable);
        const child = path.join(dir, part);
        const before = record.createdDirs.length;
        await mkdirRecorded(dir, part, record.createdDirs);
        available = record.createdDirs.length > before ? new Set(enable) : undefined;
        dir = child;
      }
      record.dirs.push(dir);
      for (const w of plan.writes) await applyWrite(dir, w);
      await this.attachDevices(dir, deviceProgram);
      return record;
    } catch (err) {
      // What was made so far goes; if it cannot, the error says so instead of dropping it.
      return throwAfterCleanup(err, `removing the partly created cgroup ${relativePath}`, () => this.remove(record));
    }
  }

  procsFiles(record: CgroupRecord): string[] {
    return record.dirs.map((d) => path.join(d, 'cgroup.procs'));
  }

  async oomKilled(record: CgroupRecord): Promise<boolean> {
    const dir = record.dirs[0];
    if (dir === undefined) return false;
    return (parseKeyValues(await readOptional(path.join(dir, 'memory.events'))).get('oom_kill') ?? 0) > 0;
  }

  /** Read synchronously, like the control files (fs-util.ts): ten reads of kernel memory, seven for metrics. */
  async stats(record: CgroupRecord, scope: StatsScope = 'all'): Promise<ContainerStats> {
    const dir = record.dirs[0] ?? '';
    const files = new Map<string, string>();
    for (const file of V2_STAT_FILES) {
      if (scope === 'metrics' && !V2_METRICS_FILES.has(file)) continue;
      const text = readControl(path.join(dir, file));
      if (text !== undefined) files.set(file, text);
    }
    return statsFromV2Files(files);
  }

  async remove(record: CgroupRecord): Promise<void> {
    await removeCreated(record.createdDirs, new Set(record.dirs));
  }

  private async attachDevices(dir: string, program: Int32Array): Promise<void> {
    // The addon is loaded only when a v2 container is made, not by whoever imports the drivers.
    const attach = this.attachDeviceFilter ?? (await import('../native.js')).attachDeviceFilter;
    try {
      attach(dir, program);
    } catch (err) {
      throw new Error(`linux.resources.devices: cannot attach the device filter (BPF_CGROUP_DEVICE) to ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async controllersOf(dir: string): Promise<Set<string>> {
    const text = await readOptional(path.join(dir, 'cgroup.controllers'));
    if (text === undefined) throw new Error(`${dir} is not a cgroup v2 directory (no cgroup.controllers)`);
    return new Set(
      text
        .trim()
        .split(/\s+/)
        .filter((c) => c !== ''),
    );
  }

  /** Adds controllers to dir's cgroup.subtree_control; ones already enabled are not rewritten. */
  private async enable(dir: string, controllers: string[]): Promise<void> {
    const current = new Set(((await readOptional(path.join(dir, 'cgroup.subtree_control'))) ?? '').trim().split(/\s+/));
    const missing = controllers.filter((c) => !current.has(c)).sort();
    if (missing.length === 0) return;
    await writeControl(dir, 'cgroup.subtree_control', missing.map((c) => `+${c}`).join(' '), `enabling controllers in ${dir}`);
  }
}

async function applyWrite(dir: string, w: ControlWrite): Promise<void> {
  if (w.ifExists === true && !(await exists(path.join(dir, w.file)))) return;
  if (w.alternatives !== undefined) {
    const choices = [{ file: w.file, value: w.value }, ...w.alternatives];
    for (const choice of choices) {
      if (await exists(path.join(dir, choice.file))) return writeControl(dir, choice.file, choice.value, w.field);
    }
    // None there yet: the last one is the kernel's generic file; let its write report the error.
    const last = choices[choices.length - 1] ?? choices[0];
    if (last !== undefined) await writeControl(dir, last.file, last.value, w.field);
    return;
  }
  await writeControl(dir, w.file, w.value, w.field);
}
