// Where `tsd join` reads its token: --token-file PATH, --token-file - (stdin), or the
// TESSERA_JOIN_TOKEN environment variable. Never argv, which any user can read in ps; and the
// token is never logged. A token file must not be readable by others.
import { readFile, stat } from 'node:fs/promises';

import type { DaemonConfig } from '../config.js';

/** A token is about 100 characters; more than this is not a token file. */
const MAX_TOKEN_FILE_BYTES = 1024;
export const TOKEN_ENV = 'TESSERA_JOIN_TOKEN';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_TOKEN_FILE_BYTES) throw new Error(`join token on stdin: more than ${MAX_TOKEN_FILE_BYTES} bytes, which is not a token`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readTokenFile(path: string): Promise<string> {
  const info = await stat(path).catch((err: Error) => {
    throw new Error(`--token-file ${path}: ${err.message}`);
  });
  if (!info.isFile()) throw new Error(`--token-file ${path}: not a regular file`);
  if ((info.mode & 0o077) !== 0) throw new Error(`--token-file ${path}: readable by other users (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  if (info.size > MAX_TOKEN_FILE_BYTES) throw new Error(`--token-file ${path}: ${info.size} bytes, which is not a token`);
  return readFile(path, 'utf8');
}

let tokenFromEnvironment: string | undefined;

/**
 * Takes the token out of the environment as tsd starts, whether it will be needed or not (a
 * restart, --token-file), so that no process tsd starts (shims, helpers) inherits it.
 */
export function takeJoinTokenFromEnvironment(): void {
  tokenFromEnvironment ??= process.env[TOKEN_ENV];
  delete process.env[TOKEN_ENV];
}

export async function readJoinToken(config: DaemonConfig): Promise<string> {
  takeJoinTokenFromEnvironment();
  if (config.tokenFile === '-') return readStdin();
  if (config.tokenFile !== undefined) return readTokenFile(config.tokenFile);
  if (tokenFromEnvironment) {
    // Used once, for this join: it is not kept in memory beyond it.
    const token = tokenFromEnvironment;
    tokenFromEnvironment = undefined;
    return token;
  }
  throw new Error(`tsd join: no join token: give --token-file FILE (or - for stdin) or set ${TOKEN_ENV} (get one with tsctl cluster join-token worker)`);
}
