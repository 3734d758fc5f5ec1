// The set-up most single-node end-to-end tests share: a work directory, one tsd in its own network
// namespace (tsd-node.ts) and the busybox image built and loaded into it; and the matching
// tear-down (TESSERA_TEST_KEEP_LOG=FILE keeps the node's log).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildBusyboxImage } from './busybox-image.js';
import { startTestNode, type TestNode, type TestNodeOptions } from './tsd-node.js';

export interface BusyboxNode {
  node: TestNode;
  workDir: string;
  /** The loaded image's reference, for manifests. */
  imageRef: string;
}

/** `workDirPrefix` names the test's temporary directory, e.g. "tessera-e2e-health-". */
export async function startBusyboxNode(workDirPrefix: string, nodeOptions: TestNodeOptions = {}): Promise<BusyboxNode> {
  const workDir = await mkdtemp(join(tmpdir(), workDirPrefix));
  let node: TestNode | undefined;
  try {
    const image = await buildBusyboxImage(join(workDir, 'image'));
    node = await startTestNode(nodeOptions);
    const loaded = await node.tsctl('image', 'load', image.tarballPath);
    const imageRef = /loaded (\S+)/.exec(loaded)?.[1];
    if (!imageRef) throw new Error(`image load printed nothing useful: ${loaded}`);
    return { node, workDir, imageRef };
  } catch (err) {
    await stopBusyboxNode(node, workDir);
    throw err;
  }
}

/** Stops the node and removes the work directory; either may be missing (a failed set-up). */
export async function stopBusyboxNode(node: TestNode | undefined, workDir: string | undefined): Promise<void> {
  if (node) {
    const keep = process.env['TESSERA_TEST_KEEP_LOG'];
    if (keep) await writeFile(keep, await node.log());
    await node.destroy();
  }
  if (workDir) await rm(workDir, { recursive: true, force: true });
}
