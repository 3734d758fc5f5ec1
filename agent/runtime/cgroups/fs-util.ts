// Small file operations shared by the v1 and v2 drivers.
//
// Control files, mkdir and rmdir in a cgroup hierarchy are synchronous on purpose: cgroupfs lives
// in kernel memory, each call takes microseconds and never waits for a disk, while a round trip
// through libuv's thread pool per call (a container's cgroups take about 30) cost more than the
// work itself: ~4 ms per container create on a loaded 2-core machine. The functions stay async
// so callers need not care. Stats are read the same way, one container's files at a time: a
// scrape of /metrics reads about 25 files of each running container, and through the pool that
// was most of the scrape (npm run bench:scrape).

import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isAbsent, unlessAbsent } from '../../fs-errors.js';

/** A file the kernel may not have (an interface of another version or config); undefined when absent. */
export async function readOptional(p: string): Promise<string | undefined> {
  return unlessAbsent(fs.readFile(p, 'utf8'), undefined);
}

/** A small control file read synchronously (see the top of this file); undefined when absent. */
export function readControl(p: string): string | undefined {
  try {
    return fsSync.readFileSync(p, 'utf8');
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

/** Whether something is at `p`, asked synchronously (see the top of this file); errors other than "absent" are thrown. */
export function controlExists(p: string): boolean {
  try {
    fsSync.accessSync(p);
    return true;
  } catch (err) {
    if (isAbsent(err)) return false;
    throw err;
  }
}

/**
 * Writes one value into a cgroup interface file, as `echo value >> file` does: the kernel takes
 * each write() as one command whatever the flags, and a plain-directory test tree then keeps every
 * line written (io.max and devices.allow take several). The error names the spec field and file.
 */
export async function writeControl(dir: string, file: string, value: string, field: string): Promise<void> {
  try {
    fsSync.appendFileSync(path.join(dir, file), `${value}\n`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint = explain(e.code, file);
    throw new Error(`${field}: cannot write "${value}" to ${path.join(dir, file)}: ${e.message}${hint}`, { cause: err });
  }
}

/**
 * Writes several values into one interface file through a single open file: the kernel takes
 * each write() as one command (devices.allow rules, io.max lines), in order. A file the kernel
 * does not have is reported as "not supported" with the first field that needed it.
 */
export async function writeLines(dir: string, file: string, entries: Array<{ value: string; field: string }>): Promise<void> {
  const target = path.join(dir, file);
  let fd: number;
  try {
    fd = fsSync.openSync(target, 'a');
  } catch (err) {
    const first = entries[0];
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`${first?.field ?? file}: not supported by this kernel: no ${file} in ${dir}`, { cause: err });
    throw new Error(`${first?.field ?? file}: cannot open ${target}: ${(err as Error).message}`, { cause: err });
  }
  try {
    for (const { value, field } of entries) {
      try {
        fsSync.writeSync(fd, `${value}\n`);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new Error(`${field}: cannot write "${value}" to ${target}: ${e.message}${explain(e.code, file)}`, { cause: err });
      }
    }
  } finally {
    fsSync.closeSync(fd);
  }
}

function explain(code: string | undefined, file: string): string {
  if (code === 'EBUSY' && file.startsWith('memory.')) return ' (the limit is below what the cgroup already uses)';
  if (code === 'EBUSY' && file === 'cgroup.subtree_control')
    return ' (the cgroup has processes of its own: v2 allows controllers only in cgroups without them)';
  if (code === 'EINVAL' && file.startsWith('cpu.rt_')) return ' (the parent cgroup has no real-time budget to give)';
  if (code === 'ENODEV') return ' (no such block device)';
  if (code === 'EINVAL') return ' (the kernel rejected the value)';
  return '';
}

/** Creates relativePath under root one level at a time, recording each directory it made. */
export async function mkdirRecorded(root: string, relativePath: string, created: string[]): Promise<void> {
  let current = root;
  for (const part of relativePath.split('/')) {
    current = path.join(current, part);
    try {
      fsSync.mkdirSync(current);
      created.push(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Removes directories made by mkdirRecorded (deepest first); a shared parent still in use is left. */
export async function removeCreated(createdDirs: string[], leaves: Set<string>): Promise<void> {
  const failures: string[] = [];
  for (const dir of [...createdDirs].reverse()) {
    try {
      await rmdirDraining(dir, leaves.has(dir));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A parent we made may now be shared with another container: leave it to the last one.
      if (!leaves.has(dir) && (code === 'EBUSY' || code === 'ENOTEMPTY')) continue;
      failures.push(`${dir}: ${(err as Error).message}`);
    }
  }
  if (failures.length > 0) throw new Error(`could not remove cgroup(s): ${failures.join('; ')}`);
}

async function rmdirDraining(dir: string, isLeaf: boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  for (let attempt = 0; ; attempt++) {
    try {
      fsSync.rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || !isLeaf || Date.now() > deadline) throw err;
      // Tasks of a dead pid namespace leave asynchronously; after a while, kill stragglers
      // (they can only be this container's own processes).
      if (attempt === 20) await killRemaining(dir);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

async function killRemaining(dir: string): Promise<void> {
  const text = await readOptional(path.join(dir, 'cgroup.procs'));
  for (const line of (text ?? '').split('\n')) {
    const pid = Number(line);
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone (ESRCH) between reading cgroup.procs and the kill.
      }
    }
  }
}
