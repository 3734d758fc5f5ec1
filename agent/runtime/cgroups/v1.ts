// cgroup v1: one directory per controller hierarchy under the mount root
// (/sys/fs/cgroup/memory/<path>, /sys/fs/cgroup/cpu/<path>, ...).

import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ContainerStats } from '../types.js';
import { exists, throwAfterCleanup, unlessAbsent } from '../../fs-errors.js';
import type { BlockDevice } from './block-devices.js';
import type { CgroupCreateOptions, CgroupDriver, CgroupRecord } from './driver.js';
import { controlExists, mkdirRecorded, readControl, readOptional, removeCreated, writeControl, writeLines } from './fs-util.js';
import { planV1, type V1Controller, type V1Write } from './plan.js';
import { validateResources } from './resources.js';
import { parseKeyValues } from './stats-parse.js';
import { statsFromV1Files, V1_FALLBACK_OF, V1_METRICS_FILES, V1_STAT_FILES, type StatsScope, type V1StatController } from './stats-files.js';

/** Hierarchies every container joins when mounted; memory, pids and devices are required. */
const JOINED: readonly V1Controller[] = ['memory', 'pids', 'cpu', 'cpuacct', 'cpuset', 'devices', 'blkio', 'hugetlb'];
const REQUIRED: ReadonlySet<V1Controller> = new Set(['memory', 'pids', 'devices']);

/** A file only this controller has, to find its directory among a record's dirs. */
const MARKER: Record<Exclude<V1Controller, 'hugetlb'>, string> = {
  memory: 'memory.limit_in_bytes',
  cpu: 'cpu.shares',
  cpuacct: 'cpuacct.usage',
  cpuset: 'cpuset.cpus',
  pids: 'pids.max',
  blkio: 'blkio.throttle.read_bps_device',
  devices: 'devices.list',
};

/** Records whose stats directories are remembered; past this the memory starts over (containers removed elsewhere). */
const MAX_REMEMBERED_RECORDS = 4096;

export class CgroupsV1 implements CgroupDriver {
  readonly version = 'v1' as const;
  private found?: Promise<Map<V1Controller, string>>;
  /**
   * Each record's directory per stats controller, once found: a container's cgroup does not move,
   * and looking for the marker files again cost each scrape ~17 failed access() per container.
   */
  private readonly statDirs = new Map<string, Map<V1StatController, string>>();

  constructor(private readonly mountRoot: string) {}

  async create(relativePath: string, resources: unknown, options: CgroupCreateOptions = {}): Promise<CgroupRecord> {
    const writes = planV1(validateResources(resources ?? {}));
    const hierarchies = await this.hierarchies();
    for (const w of writes) {
      if (!hierarchies.has(w.controller)) {
        throw new Error(`${w.field}: the cgroup v1 '${w.controller}' controller is not mounted at ${path.join(this.mountRoot, w.controller)}`);
      }
    }
    const record: CgroupRecord = { dirs: [], createdDirs: [] };
    try {
      // Hierarchies are independent: make and fill them concurrently, each in its own order.
      const roots = [...new Set(hierarchies.values())];
      record.dirs = roots.map((root) => path.join(root, relativePath));
      await settleAll(roots.map((root) => mkdirRecorded(root, relativePath, record.createdDirs)));
      await settleAll(
        [...hierarchies].map(async ([controller, root]) => {
          const dir = path.join(root, relativePath);
          if (controller === 'cpuset') await inheritCpuset(root, relativePath);
          // Before the spec's own writes, so a throttle rule of the spec's on the same disk wins.
          if (controller === 'blkio') startIoAccounting(dir, options.ioAccountedDisks ?? [], record);
          await applyWrites(
            dir,
            writes.filter((w) => w.controller === controller),
          );
        }),
      );
      return record;
    } catch (err) {
      // What was made so far goes; if it cannot, the error says so instead of dropping it.
      return throwAfterCleanup(err, `removing the partly created cgroup ${relativePath}`, () => this.remove(record));
    }
  }

  /**
   * The `tasks` files, not cgroup.procs: the joiner is always a single-threaded process writing
   * "0" (itself), and moving one thread skips the kernel's global threadgroup lock, whose first
   * writer after a quiet spell waits an RCU grace period (about 10 ms here, per container).
   */
  procsFiles(record: CgroupRecord): string[] {
    return record.dirs.map((d) => path.join(d, 'tasks'));
  }

  async oomKilled(record: CgroupRecord): Promise<boolean> {
    const memory = await findWith(record.dirs, MARKER.memory);
    if (memory === undefined) return false;
    return (parseKeyValues(await readOptional(path.join(memory, 'memory.oom_control'))).get('oom_kill') ?? 0) > 0;
  }

  /** Read synchronously, like the control files (fs-util.ts): up to 17 reads of kernel memory, 8 for metrics. */
  async stats(record: CgroupRecord, scope: StatsScope = 'all'): Promise<ContainerStats> {
    const dirs = new Map<V1StatController, string | undefined>();
    const files = new Map<string, string>();
    for (const [controller, file] of V1_STAT_FILES) {
      if (scope === 'metrics' && !V1_METRICS_FILES.has(file)) continue;
      const preferred = V1_FALLBACK_OF.get(file);
      if (preferred !== undefined && files.has(preferred)) continue;
      if (!dirs.has(controller)) dirs.set(controller, this.statDir(record, controller));
      const dir = dirs.get(controller);
      const text = dir === undefined ? undefined : readControl(path.join(dir, file));
      if (text !== undefined) files.set(file, text);
    }
    return statsFromV1Files(files);
  }

  async remove(record: CgroupRecord): Promise<void> {
    this.statDirs.delete(recordKey(record));
    await removeCreated(record.createdDirs, new Set(record.dirs));
  }

  /** The record's directory in `controller`'s hierarchy; a miss is looked for again next time. */
  private statDir(record: CgroupRecord, controller: V1StatController): string | undefined {
    const key = recordKey(record);
    const known = this.statDirs.get(key);
    const remembered = known?.get(controller);
    if (remembered !== undefined) return remembered;
    const dir = findWithNow(record.dirs, MARKER[controller]);
    if (dir === undefined) return undefined;
    if (known !== undefined) known.set(controller, dir);
    else {
      if (this.statDirs.size >= MAX_REMEMBERED_RECORDS) this.statDirs.clear();
      this.statDirs.set(key, new Map([[controller, dir]]));
    }
    return dir;
  }

  /** Controller -> the real path of its hierarchy root (cpu and cpuacct may share one). Mounts do not move: looked up once. */
  private hierarchies(): Promise<Map<V1Controller, string>> {
    this.found ??= this.findHierarchies();
    // A failed look-up is not cached: the caller gets its error, the next call looks again.
    this.found.catch(() => {
      this.found = undefined;
    });
    return this.found;
  }

  private async findHierarchies(): Promise<Map<V1Controller, string>> {
    const found = new Map<V1Controller, string>();
    for (const controller of JOINED) {
      const link = path.join(this.mountRoot, controller);
      const real = await unlessAbsent(fs.realpath(link), undefined);
      if (real === undefined || !(await exists(path.join(real, 'cgroup.procs')))) {
        if (REQUIRED.has(controller)) throw new Error(`cgroup v1 controller '${controller}' is not mounted at ${link}`);
        continue;
      }
      found.set(controller, real);
    }
    return found;
  }
}

/**
 * A new v1 cpuset cgroup starts with empty cpus and mems, and nothing can join it: copy them down
 * from the parent at each level that is empty (the parent may itself have been just created).
 */
async function inheritCpuset(root: string, relativePath: string): Promise<void> {
  let parent = root;
  for (const part of relativePath.split('/')) {
    const dir = path.join(parent, part);
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      const own = readControl(path.join(dir, file))?.trim();
      if (own === '') {
        const inherited = (readControl(path.join(parent, file)) ?? '').trim();
        await writeControl(dir, file, inherited, `cpuset inheritance from ${parent}`);
      }
    }
    parent = dir;
  }
}

/**
 * Writes "MAJ:MIN 0" (no limit) to the throttle file for each disk, which makes a blk-mq kernel
 * count the cgroup's I/O on it (see block-devices.ts). A disk that refuses gets a warning, not a
 * failed container: the container runs, its stats just lack that disk.
 */
function startIoAccounting(dir: string, disks: readonly BlockDevice[], record: CgroupRecord): void {
  for (const { major, minor } of disks) {
    try {
      fsSync.appendFileSync(path.join(dir, 'blkio.throttle.read_bps_device'), `${major}:${minor} 0\n`);
    } catch (err) {
      (record.warnings ??= []).push(`block I/O on ${major}:${minor} is not accounted: ${(err as Error).message}`);
    }
  }
}

/** Writes in order; consecutive writes to one file share an open file (the device rules). */
async function applyWrites(dir: string, writes: V1Write[]): Promise<void> {
  let run: V1Write[] = [];
  const flush = async () => {
    const first = run[0];
    if (first !== undefined)
      await writeLines(
        dir,
        first.file,
        run.map((w) => ({ value: w.value, field: w.field })),
      );
    run = [];
  };
  for (const w of writes) {
    if (w.ifExists === true || w.alternatives !== undefined) {
      await flush();
      await applyChoice(dir, w);
    } else {
      if (run[0] !== undefined && run[0].file !== w.file) await flush();
      run.push(w);
    }
  }
  await flush();
}

/** A write that depends on which files the kernel has (defaults, scheduler-specific weights). */
async function applyChoice(dir: string, w: V1Write): Promise<void> {
  if (w.ifExists === true && !(await exists(path.join(dir, w.file)))) return;
  const choices = [{ file: w.file, value: w.value }, ...(w.alternatives ?? [])];
  for (const choice of choices) {
    if (await exists(path.join(dir, choice.file))) return writeControl(dir, choice.file, choice.value, w.field);
  }
  const names = choices.map((c) => c.file).join(' or ');
  throw new Error(
    `${w.field}: not supported by this kernel: no ${names} in ${dir}${w.file.startsWith('blkio.') ? ' (the block I/O scheduler has no weights)' : ''}`,
  );
}

/** Like Promise.all, but waits for every task before reporting the first failure (no write races a cleanup). */
async function settleAll(tasks: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(tasks);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

function recordKey(record: CgroupRecord): string {
  return record.dirs.join('\n');
}

/** findWith, synchronously (for stats: see fs-util.ts). */
function findWithNow(dirs: string[], file: string): string | undefined {
  return dirs.find((dir) => controlExists(path.join(dir, file)));
}

async function findWith(dirs: string[], file: string): Promise<string | undefined> {
  for (const dir of dirs) if (await exists(path.join(dir, file))) return dir;
  return undefined;
}
