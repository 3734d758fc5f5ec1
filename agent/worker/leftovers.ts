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
  const ids = (await readdir(containersDir).catch(() => [] as string[])).filter((id) => !deps.keep?.has(id));
  for (const id of ids) {
    try {
      const state = await runtime.state(id);
      if (state && state.status !== 'stopped' && processAlive(state.pid)) {
        await runtime.kill(id, 'SIGKILL').catch(() => {});
        for (let i = 0; i < 50 && processAlive(state.pid); i++) await sleep(100);
        // Let the shim record the exit, so delete does not find it still running.
        await Promise.race([runtime.wait(id).catch(() => undefined), sleep(5000)]);
      }
      await network.detach(id).catch(() => {});
      if (state) await runtime.delete(id);
    } catch (err) {
      log(`leftover container ${id}: ${(err as Error).message}`);
    }
    const dir = join(containersDir, id);
    await unmountRootfs(dir).catch((err: Error) => log(`leftover rootfs ${id}: ${err.message}`));
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
  if (deps.teardownNetwork !== false) await network.teardown().catch((err: Error) => log(`leftover network: ${err.message}`));
  if (ids.length > 0) log(`removed ${ids.length} container(s) left by an earlier tsd`);
  return ids.length;
}
