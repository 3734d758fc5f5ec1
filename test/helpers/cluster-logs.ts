// Keeps a failed test's daemon logs for the post-mortem: copies each node's tsd.log (or any log
// files) into a folder. Test-only, so it lives here rather than with the local cluster it reads.
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { unlessAbsent } from '../../agent/fs-errors.js';
import type { NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';

/** Copies every node's tsd.log into `dir` (for a failed test's post-mortem); missing logs are skipped. */
export async function saveClusterLogs(state: NetnsClusterState, dir: string): Promise<void> {
  await copyLogs(
    dir,
    state.nodes.map((node) => ({ path: join(node.dataRoot, 'tsd.log'), name: `${node.name}.log` })),
  );
}

/**
 * Copies log files into `dir` under the given names. A missing one is skipped (that node's tsd never
 * started). Any other failure is written to standard error, not thrown: callers copy in their clean-up,
 * which must go on, and a post-mortem that is short should say so.
 */
export async function copyLogs(dir: string, logs: Array<{ path: string; name: string }>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const log of logs) {
    await unlessAbsent(copyFile(log.path, join(dir, log.name)), undefined).catch((err: Error) =>
      process.stderr.write(`could not keep ${log.path} in ${dir}: ${err.message}\n`),
    );
  }
}
