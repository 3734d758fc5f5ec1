// The tsctl context file, like a kubeconfig: where the cluster's API is, the client certificate for
// it (remote users), and how the local cluster was started, so that later commands (and
// `cluster down`) find it. Kept at $TESSERA_CONTEXT or ~/.tessera/context.json, mode 0600.
import { mkdir, open, rename, rm, stat, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

import { isAbsent } from '../agent/fs-errors.js';
import { type CliContext, validateContext } from './context-schema.js';

export type { CliContext, ContextTls } from './context-schema.js';

/** A manager's root-only API socket at the default data root: what tsctl talks to when nothing says otherwise. */
export const DEFAULT_SERVER = 'unix:/var/lib/tessera/tsd.sock';

/** A context file is a few certificates and a cluster's state; anything larger is not one. */
const MAX_CONTEXT_FILE_BYTES = 4 * 1024 * 1024;

export function contextPath(): string {
  return process.env.TESSERA_CONTEXT ?? join(homedir(), '.tessera', 'context.json');
}

/** The file's text, undefined when there is none; refuses one too large to be a context before reading it. */
async function readContextText(path: string): Promise<string | undefined> {
  let file;
  try {
    file = await open(path, 'r');
  } catch (err) {
    if (isAbsent(err)) return undefined; // no cluster was set up from here
    throw err;
  }
  try {
    const { size } = await file.stat();
    if (size > MAX_CONTEXT_FILE_BYTES) throw new Error(`${size} bytes, more than the ${MAX_CONTEXT_FILE_BYTES} a context may hold`);
    return await file.readFile('utf8');
  } finally {
    await file.close();
  }
}

/** The context at `path` (default: contextPath()), undefined when the file does not exist. */
export async function readContext(path = contextPath()): Promise<CliContext | undefined> {
  let text: string | undefined;
  try {
    text = await readContextText(path);
  } catch (err) {
    // Unreadable is not "none": going on without it would talk to the default server instead.
    throw new Error(`${path}: cannot read the tsctl context (${(err as Error).message})`);
  }
  if (text === undefined) return undefined;
  try {
    return validateContext(JSON.parse(text));
  } catch (err) {
    throw new Error(`${path}: not a valid tsctl context (${(err as Error).message}); remove it or run tsctl cluster up`);
  }
}

/** The context as the file's text (what writeContext and `tsctl cluster user add` write). */
export function contextText(context: CliContext): string {
  return `${JSON.stringify(context, null, 2)}\n`;
}

/**
 * Writes the context through a new 0600 file renamed over the old one: a reader (another tsctl)
 * sees the old or the new file whole, never half of one, and the mode is 0600 whatever the old
 * file's was.
 */
export async function writeContext(context: CliContext): Promise<void> {
  const path = contextPath();
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  const file = await open(temporary, 'w', 0o600);
  try {
    await file.chmod(0o600); // a temporary left by a crashed tsctl of the same PID may be wider
    await file.writeFile(contextText(context));
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/** When the context's manager list was last written or confirmed (the file's mtime); undefined without a file. */
export async function contextCheckedAt(path = contextPath()): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

/** Marks the manager list as confirmed now without rewriting the file. */
export async function markContextChecked(path = contextPath()): Promise<void> {
  const now = new Date();
  await utimes(path, now, now);
}

export async function removeContext(): Promise<void> {
  await rm(contextPath(), { force: true });
}

/** --server, else $TESSERA_SERVER, else the context's server, else the local root socket. */
export function chooseServer(flag: string | undefined, context: CliContext | undefined): string {
  return flag ?? process.env.TESSERA_SERVER ?? context?.server ?? DEFAULT_SERVER;
}

export async function serverAddress(flag: string | undefined): Promise<string> {
  return chooseServer(flag, await readContext());
}
