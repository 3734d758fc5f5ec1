// The modes of tsd's data root, set at every start: what an older tsd made (directories 0755,
// files 0644, container rootfs mounts without nosuid) gets the modes this one makes. Other host
// users may pass through the data root (0711) and reach nothing in it: no container's environment,
// output or root file system (where a container can leave a setuid-root binary), no image, volume,
// Raft log or key. The table of modes is in agent/file-modes.ts; dataPaths (config.ts) names the places.
import { dirname } from 'node:path';

import { DATA_ROOT_MODE, ensureDirMode, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tightenIfPresent } from '../agent/file-modes.js';
import { StateStore } from '../agent/runtime/state-store.js';
import { tightenWorkerModes } from '../agent/worker/tighten-modes.js';
import { certPaths } from './identity/cert-files.js';
import { dataPaths, type DaemonConfig } from './config.js';

/**
 * Makes the data root and the directories every node uses with their modes, and tightens those
 * only some nodes have (raft, certs, audit) where they exist; they are made with their modes.
 */
export async function prepareDataRoot(config: DaemonConfig, log: (message: string) => void): Promise<void> {
  const paths = dataPaths(config);
  await ensureDirMode(config.dataRoot, DATA_ROOT_MODE);
  for (const dir of [paths.images, paths.runtimeState, paths.network, paths.run, paths.volumes]) await ensureDirMode(dir, PRIVATE_DIR_MODE);
  for (const dir of [paths.raft, certPaths(config.dataRoot).dir, dirname(paths.auditLog)]) await tightenIfPresent(dir, PRIVATE_DIR_MODE);
  await tightenIfPresent(paths.daemonLog, PRIVATE_FILE_MODE);
  await new StateStore(paths.runtimeState).tightenModes();
  await tightenWorkerModes({ containersDir: paths.containers, logsDir: paths.logs }, log);
}

/** The Raft directory, before a manager opens its store (a demotion removes it; a promotion makes it again). */
export async function prepareRaftDir(config: DaemonConfig): Promise<void> {
  await ensureDirMode(dataPaths(config).raft, PRIVATE_DIR_MODE);
}
