// The tsctl context file: where the cluster's API is and how the local cluster was started, so
// that later commands (and `cluster down`) find it. Kept at $TESSERA_CONTEXT or ~/.tessera/context.json.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

import { isAbsent } from '../agent/fs-errors.js';
import type { DaemonConfig } from '../daemon/config.js';
import type { NetnsClusterState } from './local-cluster/netns-cluster.js';

export interface CliContext {
  server: string;
  /** Present when this machine's `tsctl cluster up` started the cluster. */
  local?: { pid: number; config: DaemonConfig };
  /** Present when `tsctl cluster up --nodes N` built a cluster of network namespaces. */
  netns?: NetnsClusterState;
}

export function contextPath(): string {
  return process.env.TESSERA_CONTEXT ?? join(homedir(), '.tessera', 'context.json');
}

export async function readContext(): Promise<CliContext | undefined> {
  let text: string;
  try {
    text = await readFile(contextPath(), 'utf8');
  } catch (err) {
    if (isAbsent(err)) return undefined; // no cluster was set up from here
    // Unreadable is not "none": going on without it would talk to the default server instead.
    throw new Error(`${contextPath()}: cannot read the tsctl context (${(err as Error).message})`);
  }
  try {
    const parsed = JSON.parse(text) as Partial<CliContext>;
    if (typeof parsed.server !== 'string') throw new Error('missing "server"');
    return parsed as CliContext;
  } catch (err) {
    throw new Error(`${contextPath()}: not a valid tsctl context (${(err as Error).message}); remove it or run tsctl cluster up`);
  }
}

export async function writeContext(context: CliContext): Promise<void> {
  await mkdir(dirname(contextPath()), { recursive: true });
  await writeFile(contextPath(), `${JSON.stringify(context, null, 2)}\n`, { mode: 0o600 });
}

export async function removeContext(): Promise<void> {
  await rm(contextPath(), { force: true });
}

export async function serverAddress(flag: string | undefined): Promise<string> {
  return flag ?? process.env.TESSERA_SERVER ?? (await readContext())?.server ?? '127.0.0.1:7420';
}
