// A real docker-registry in a netns cluster's switch namespace, on the underlay every node
// reaches, filled with the busybox image — what the multi-node tests and benchmarks pull from.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { buildBusyboxImage } from './busybox-image.js';
import { eventually } from './eventually.js';

const run = promisify(execFile);

export interface UnderlayRegistry {
  /** host:port on the underlay (172.31.X.254:5000). */
  host: string;
  /** The pushed busybox image, host/tessera/busybox:1. */
  image: string;
  stop(): void;
}

/** `underlayOctet` must be the cluster's; the registry listens on its .254 address. */
export async function startUnderlayRegistry(cluster: NetnsClusterState, underlayOctet: number, workDir: string): Promise<UnderlayRegistry> {
  if (!cluster.switchNetns) throw new Error('the cluster has no switch namespace (hostBridge clusters are not for tests)');
  const host = `172.31.${underlayOctet}.254:5000`;
  const inSwitch = `--net=/run/netns/${cluster.switchNetns}`;
  const config = join(workDir, 'registry.yml');
  await writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${join(workDir, 'registry')}\nhttp:\n  addr: ${host}\n`);
  const registry: ChildProcess = spawn('nsenter', [inSwitch, '/usr/bin/docker-registry', 'serve', config], { stdio: 'ignore' });
  const stop = () => {
    if (registry.pid !== undefined && registry.exitCode === null) registry.kill('SIGTERM');
  };
  try {
    const built = await buildBusyboxImage(join(workDir, 'image'));
    const image = `${host}/tessera/busybox:1`;
    await eventually(
      'the registry to take the image',
      () =>
        run('nsenter', [
          inSwitch,
          'skopeo',
          'copy',
          '--insecure-policy',
          '--dest-tls-verify=false',
          `oci:${built.ociLayoutDir}:latest`,
          `docker://${image}`,
        ]).then(() => true),
      30_000,
      500,
    );
    return { host, image, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
