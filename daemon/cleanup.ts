// Removes everything a tsd with this configuration may have left on the node, without a running tsd.
import { BridgeNetwork } from '../agent/network/node-network.js';
import { NativeRuntime } from '../agent/runtime/native-runtime.js';
import { sweepLeftovers } from '../agent/worker/leftovers.js';
import { defaultVolumesDir, sweepTaskFiles } from '../agent/worker/task-files-mounts.js';
import { sweepVolumeMounts } from '../agent/volumes/node-volumes.js';
import { dataPaths, type DaemonConfig } from './config.js';

export async function cleanupNode(config: DaemonConfig, log: (message: string) => void): Promise<number> {
  const paths = dataPaths(config);
  const runtime = new NativeRuntime({ stateRoot: paths.runtimeState });
  const network = new BridgeNetwork({ bridge: config.bridge, subnet: config.subnet, nftTable: config.nftTable, stateDir: paths.network });
  const removed = await sweepLeftovers({ runtime, network, containersDir: paths.containers, log });
  // Secret/config tmpfs mounts and driver-option volume mounts would outlive their containers.
  await sweepTaskFiles(paths.containers, new Set());
  await sweepVolumeMounts(defaultVolumesDir(paths.containers));
  return removed;
}
