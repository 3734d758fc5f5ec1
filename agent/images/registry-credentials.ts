// Registry credentials from a JSON file (default ~/.tessera/registries.json, or the path in
// $TESSERA_REGISTRIES_FILE):
//
//   { "auths": { "registry.example:5000": { "username": "u", "password": "p" },
//                "other.example":         { "auth": "<base64 of u:p>" } } }
//
// the same shape as Docker's config.json "auths", so an existing entry can be copied over.
// The file is read on every pull, so edits take effect without restarting tsd.
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { RegistryCredentials } from './registry-client.js';
import { normaliseRegistryHost } from '../../common/images/reference.js';

export function defaultCredentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.TESSERA_REGISTRIES_FILE ?? join(homedir(), '.tessera', 'registries.json');
}

const entrySchema = z
  .object({
    username: z.string().min(1, 'must not be empty').optional(),
    password: z.string().optional(),
    auth: z.string().optional(),
  })
  .strict();

const fileSchema = z.object({ auths: z.record(z.string(), entrySchema) }).strict();

export type CredentialsMap = ReadonlyMap<string, RegistryCredentials>;

/** Parses and validates the file's text; errors name the file and the registry entry. */
export function parseCredentialsFile(text: string, path: string): CredentialsMap {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(document)';
    throw new Error(`${path}: ${where}: ${issue?.message ?? 'invalid'} (expected {"auths": {"host:port": {"username": …, "password": …}}})`);
  }
  const out = new Map<string, RegistryCredentials>();
  for (const [host, entry] of Object.entries(parsed.data.auths)) {
    const where = `${path}: auths.${host}`;
    let registry: string;
    try {
      registry = normaliseRegistryHost(host);
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`);
    }
    let credentials: RegistryCredentials;
    if (entry.auth !== undefined) {
      if (entry.username !== undefined || entry.password !== undefined) throw new Error(`${where}: give either "auth" or "username" and "password", not both`);
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (!/^[A-Za-z0-9+/]+=*$/.test(entry.auth) || colon <= 0) throw new Error(`${where}: "auth" must be base64 of "username:password"`);
      credentials = { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    } else {
      if (entry.username === undefined || entry.password === undefined) throw new Error(`${where}: needs "username" and "password" (or "auth")`);
      credentials = { username: entry.username, password: entry.password };
    }
    if (out.has(registry)) throw new Error(`${where}: ${registry} is listed twice`);
    out.set(registry, credentials);
  }
  return out;
}

/**
 * Reads the credentials file; a missing file means no credentials. A file others can read is
 * refused: it holds passwords.
 */
export async function loadCredentialsFile(path: string): Promise<CredentialsMap> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new Error(`${path}: ${(error as Error).message}`);
  }
  if ((mode & 0o077) !== 0) throw new Error(`${path}: holds passwords but is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  return parseCredentialsFile(await readFile(path, 'utf8'), path);
}
