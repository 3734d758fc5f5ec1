// Removes what an earlier tsd left on this node: containers still running, their cgroups, rootfs
// mounts and bundles, and the node's network set-up. Used at start-up (the store is in memory in
// this cut, so nothing left over is wanted) and by `tsctl cluster down` when tsd is already gone.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { NodeNetwork } from '../network/types.js';
import { unmountRootfs } from '../runtime/rootfs.js';
import type { ContainerRuntime } from '../runtime/types.js';
import { processAlive } from '../runtime/process-alive.js';
import { unlessAbsent } from '../fs-errors.js';

export async function sweepLeftovers(deps: {
  runtime: ContainerRuntime;
  network: NodeNetwork;
  containersDir: string;
  log: (message: string) => void;
  /** Containers to leave alone (taken over by this tsd). */
  keep?: ReadonlySet<string>;
  /** Also remove the node's network set-up (bridge, nftables table); default true. */
  teardownNetwork?: boolean;
}): Promise<number> {
  const { runtime, network, containersDir, log } = deps;
  // No containers dir: no container was ever made here.
  const ids = (await unlessAbsent(readdir(containersDir), [] as string[])).filter((id) => !deps.keep?.has(id));
  let removed = 0;
  for (const id of ids) {
    try {
      await removeContainer(runtime, network, id, log);
    } catch (err) {
      // Its bundle dir stays: it is how the next sweep finds this container again (it may still run).
      log(`leftover container ${id}: ${(err as Error).message}; left for the next sweep`);
      continue;
    }
    const dir = join(containersDir, id);
    try {
      await unmountRootfs(dir);
      await rm(dir, { recursive: true, force: true });
      removed++;
    } catch (err) {
      log(`leftover container ${id}: removing its bundle ${dir}: ${(err as Error).message}`);
    }
  }
  if (deps.teardownNetwork !== false) await network.teardown().catch((err: Error) => log(`leftover network: ${err.message}`));
  if (removed > 0) log(`removed ${removed} container(s) left by an earlier tsd`);
  return removed;
}

/** Kills the container if it runs, detaches it and deletes it from the runtime; throws what failed. */
async function removeContainer(runtime: ContainerRuntime, network: NodeNetwork, id: string, log: (message: string) => void): Promise<void> {
  const state = await runtime.state(id);
  if (state && state.status !== 'stopped' && processAlive(state.pid)) {
    await runtime.kill(id, 'SIGKILL');
    for (let i = 0; i < 50 && processAlive(state.pid); i++) await sleep(100);
    // Let the shim record the exit, so delete does not find it still running. A wait that fails
    // or takes longer is not the error to report: delete, next, says whether the container is gone.
    await Promise.race([runtime.wait(id).catch(() => undefined), sleep(5000)]);
  }
  // Detach is idempotent, so a failure is real; but it must not keep the container from going.
  await network.detach(id).catch((err: Error) => log(`leftover container ${id}: detaching its network: ${err.message}`));
  if (state) await runtime.delete(id);
}
