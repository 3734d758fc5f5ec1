// One node's worker side for integration tests, all of it real: a data root prepared by the function
// tsd's start runs, a bridge network in a network namespace of the test's own, a unique cgroup
// parent, an image store with busybox loaded, and a Worker over the native runtime. The teardown
// stops the containers first (namespaces go with their processes, rootfs and tmpfs are unmounted),
// then removes the network, the namespace, the cgroups and the directories.
import type { ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { BridgeNetwork } from '../../agent/network/node-network.js';
import type { Task, TaskState, TaskStatus } from '../../common/resources/types.js';
import { Worker, type WorkerDeps } from '../../agent/worker/worker.js';
import { dataPaths, defaultConfig, type DaemonConfig } from '../../daemon/config.js';
import { prepareDataRoot } from '../../daemon/data-root.js';
import { buildBusyboxImage } from './busybox-image.js';
import { cgroupDirsUnder } from './host-cgroups.js';
import { createNetns } from './netns.js';

export interface TaskReport {
  task: string;
  state: TaskState;
  message?: string;
}

export interface WorkerHost {
  config: DaemonConfig;
  paths: ReturnType<typeof dataPaths>;
  images: LocalImageStore;
  cgroupParent: string;
  /** The loaded busybox image's reference. */
  imageRef: string;
  /** A directory of the test's own outside the data root, removed at teardown. */
  scratch: string;
  /** Every status the worker reported, in order. */
  reports: TaskReport[];
  /** Makes the host's worker (stopped at teardown): the given runtime, userns allocator and log sink over the host's store and network. */
  startWorker(deps: Pick<WorkerDeps, 'runtime' | 'log'> & Partial<Pick<WorkerDeps, 'userns' | 'metrics'>>): Worker;
}

export interface WorkerHostOptions {
  /** Short lower-case word naming the test's temp dirs, namespace, bridge, nft table and cgroup parent. */
  name: string;
  /** The bridge's subnet, e.g. `10.219.9.0/24` (the namespace is the test's own, but a distinct one reads better in logs). */
  subnet: string;
}

export async function startWorkerHost(t: ExecutionContext, options: WorkerHostOptions): Promise<WorkerHost> {
  const { name } = options;
  const dataRoot = await mkdtemp(join(tmpdir(), `tessera-${name}-`));
  const scratch = await mkdtemp(join(tmpdir(), `tessera-${name}-host-`));
  const config: DaemonConfig = { ...defaultConfig(), dataRoot };
  const paths = dataPaths(config);
  const netns = await createNetns(`ts${name}`);
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  const cgroupParent = `tessera-test-${name}-${id}`;
  const network = new BridgeNetwork({
    bridge: `ts${name.slice(0, 1)}${id}`.slice(0, 15),
    subnet: options.subnet,
    nftTable: `ts${name}${id}`,
    stateDir: paths.network,
    netns: netns.name,
  });
  let worker: Worker | undefined;
  t.teardown(async () => {
    await worker?.stopAll();
    await network.teardown().catch((err: Error) => t.log(`network teardown: ${err.message}`));
    await netns.delete();
    for (const dir of await cgroupDirsUnder(cgroupParent)) await rmdir(dir).catch(() => undefined);
    await rm(dataRoot, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });
  await prepareDataRoot(config, (m) => t.log(m));
  await network.setup();
  const images = new LocalImageStore({ root: paths.images });
  const imageDir = join(scratch, 'image');
  await mkdir(imageDir);
  const loaded = await images.load((await buildBusyboxImage(imageDir)).tarballPath);
  const imageRef = loaded[0]?.reference;
  if (imageRef === undefined) throw new Error('the busybox archive loaded no image');
  const reports: TaskReport[] = [];
  return {
    config,
    paths,
    images,
    cgroupParent,
    imageRef,
    scratch,
    reports,
    startWorker(deps) {
      worker = new Worker({
        ...deps,
        images,
        network,
        containersDir: paths.containers,
        logsDir: paths.logs,
        cgroupParent,
        insecureRegistries: [],
        report: (task: Task, status: Partial<TaskStatus> & { state: TaskState }) => {
          reports.push({ task: task.metadata.name, state: status.state, ...(status.message !== undefined ? { message: status.message } : {}) });
          return Promise.resolve();
        },
      });
      return worker;
    },
  };
}
