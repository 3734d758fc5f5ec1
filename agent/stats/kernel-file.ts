// A file the kernel writes on read (procfs, cgroupfs), read synchronously: it comes from kernel
// memory and never waits for a disk, and fs.promises.readFile's several round trips through
// libuv's thread pool cost ~10x the read itself (bench:scrape reads three per container per scrape).
import { readFileSync } from 'node:fs';

import { isAbsent } from '../fs-errors.js';

/** The file's text, at most `maxBytes` of it; undefined when it is absent (the process has gone). */
export function readKernelFile(path: string, maxBytes: number): string | undefined {
  try {
    return readFileSync(path, 'utf8').slice(0, maxBytes);
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}
