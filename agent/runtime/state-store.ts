// One directory per container under the runtime's state root, holding state.json (what create
// recorded), plan.json (the spawn plan, reused by exec) and the shim's shim.sock and exit.json.
// Written atomically (rename) so a crash never leaves a half-written file. Only root reads them
// (directories 0700, files 0600): the plan holds the container's environment.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { CgroupRecord } from './cgroups-v1.js';
import type { OciHooks } from './hooks.js';
import type { NativeSpawnPlan } from './native.js';
import type { ContainerState, ExitStatus } from './types.js';
import { isNotFound, unlessAbsent } from '../fs-errors.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tightenIfPresent, writePrivateFile } from '../file-modes.js';

export interface StoredState {
  id: string;
  pid: number;
  /** Start time of pid (field 22 of /proc/PID/stat), to tell our process from a reused pid. */
  pidStartTime: string;
  bundle: string;
  status: ContainerState['status'];
  cgroup: CgroupRecord;
  createdAt: string;
  /** The container's tessera-shim (its init's parent); with its start time against pid reuse. */
  shimPid?: number;
  shimStartTime?: string;
  exit?: ExitStatus;
  /** What the spec asked for that the container runs without (e.g. ambient capabilities the kernel would not raise). */
  warnings?: string[];
  /** The spec's hooks still to run after create, kept because config.json is not read again. */
  hooks?: Pick<OciHooks, 'prestart' | 'poststart' | 'poststop'>;
  /** The spec's annotations, for the state given to hooks. */
  annotations?: Record<string, string>;
}

/** The files of a container's state directory that an older version wrote 0644. */
const RECORD_FILES = ['state.json', 'plan.json'];

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function validateContainerId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new Error(`invalid container id '${id}': use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit`);
  }
}

export class StateStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return path.join(this.root, id);
  }

  /** Claims the id: fails if a container with that id already exists. */
  async claim(id: string): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: PRIVATE_DIR_MODE });
    try {
      await fs.mkdir(this.dir(id), { mode: PRIVATE_DIR_MODE });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`container '${id}' already exists`);
      throw err;
    }
  }

  async write(state: StoredState): Promise<void> {
    const file = path.join(this.dir(state.id), 'state.json');
    const tmp = `${file}.tmp`;
    await writePrivateFile(tmp, JSON.stringify(state, null, 2));
    await fs.rename(tmp, file);
  }

  async writePlan(id: string, plan: NativeSpawnPlan): Promise<void> {
    const file = path.join(this.dir(id), 'plan.json');
    await writePrivateFile(`${file}.tmp`, JSON.stringify(plan));
    await fs.rename(`${file}.tmp`, file);
  }

  /**
   * Gives what an older version left (directories 0755, records 0644) the modes this one makes
   * (0700, 0600); nothing else in the directories changes. A missing state root is fine.
   */
  async tightenModes(): Promise<void> {
    await tightenIfPresent(this.root, PRIVATE_DIR_MODE);
    for (const id of await this.list()) {
      await tightenIfPresent(this.dir(id), PRIVATE_DIR_MODE);
      for (const name of RECORD_FILES) await tightenIfPresent(path.join(this.dir(id), name), PRIVATE_FILE_MODE);
    }
  }

  /** The plan the container was created with (shape checked by the addon when it is used). */
  async readPlan(id: string): Promise<NativeSpawnPlan> {
    return JSON.parse(await fs.readFile(path.join(this.dir(id), 'plan.json'), 'utf8')) as NativeSpawnPlan;
  }

  /** Ids of every container with a state directory. */
  async list(): Promise<string[]> {
    // No state root yet: no container was ever created here.
    const entries = await unlessAbsent(fs.readdir(this.root, { withFileTypes: true }), []);
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  }

  async read(id: string): Promise<StoredState | undefined> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.dir(id), 'state.json'), 'utf8')) as StoredState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async remove(id: string): Promise<void> {
    await fs.rm(this.dir(id), { recursive: true, force: true });
  }
}

/** Start time of a live process, or undefined if it is gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch (err) {
    if (isNotFound(err)) return undefined; // no /proc/<pid>: the process is gone
    throw err;
  }
}
