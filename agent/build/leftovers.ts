// What a build of an earlier tsd (or one that crashed) left in the builder's work directory: RUN
// containers its shims may still run, overlay mounts of step root file systems, scratch files.
// tsd calls this at start, before it accepts builds; a build of a live process is left alone.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerRuntime } from '../runtime/types.js';
import { processAlive } from '../runtime/process-alive.js';
import { unmountRootfs } from '../runtime/rootfs.js';
import { unlessAbsent } from '../fs-errors.js';

const BUILD_DIR = /^build-(\d+)-([0-9a-f]+)$/;
const STEP_DIR = /^(?:step|from)-(\d+)$/;

/** Removes the leftovers of builds whose process is gone; returns how many build directories went. */
export async function sweepBuildLeftovers(deps: { runtime: ContainerRuntime; workDir: string; log: (message: string) => void }): Promise<number> {
  let removed = 0;
  for (const name of await unlessAbsent(readdir(deps.workDir), [] as string[])) {
    const match = BUILD_DIR.exec(name);
    if (match === null || Number(match[1]) === process.pid || processAlive(Number(match[1]))) continue;
    const buildDir = join(deps.workDir, name);
    try {
      for (const step of await readdir(buildDir)) {
        const stepNumber = STEP_DIR.exec(step)?.[1];
        if (stepNumber === undefined) continue;
        // The RUN container of step N is named build-<pid>-<hex>-N (build-run.ts).
        if (step.startsWith('step-')) await removeContainer(deps.runtime, `${name}-${stepNumber}`);
        await unmountRootfs(join(buildDir, step));
      }
      await rm(buildDir, { recursive: true, force: true });
      removed += 1;
    } catch (error) {
      // Left for the next start: a directory with a rootfs still mounted in it cannot be removed.
      deps.log(`build leftovers ${buildDir}: ${(error as Error).message}; left for the next sweep`);
    }
  }
  if (removed > 0) deps.log(`removed ${removed} build director${removed === 1 ? 'y' : 'ies'} left by an earlier tsd`);
  return removed;
}

async function removeContainer(runtime: ContainerRuntime, id: string): Promise<void> {
  const state = await runtime.state(id);
  if (state === undefined) return;
  if (state.status !== 'stopped') {
    await runtime.kill(id, 'SIGKILL');
    await runtime.wait(id);
  }
  await runtime.delete(id);
}
