// Autolock for a secret a manager keeps in a keys directory of its own: the Raft keyring
// (keyring-lock.ts) or the etcd backend's store key (daemon/identity/store-key-lock.ts). Without
// autolock the directory's `kek` file opens the secret; with it, only a key-encryption key (KEK)
// derived from the cluster's unlock key does (unlock-key.ts), with the salt in `unlock`, and `kek`
// is shredded. What "opens" means is the secret's own (GuardedFiles, GuardedSecret); the files and
// their order are the same for both:
//   on:   unlock (salt, kept from then on) -> the secret re-wrapped under the derived KEK -> kek shredded
//   off:  a kek file that opens the secret -> the secret's other files follow it -> unlock removed
// so a crash between two steps leaves a directory some key opens. At start (guardState) a kek file
// that opens the secret wins; when none does and `unlock` is there, the manager is locked.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';
import { KEK_FILE, decodeKekFile, encodeKekFile, exists } from './keyring.js';
import { KEK_SALT_BYTES, deriveKek } from './unlock-key.js';

export const UNLOCK_FILE = 'unlock';
// The format's name predates the store key; it is the same file for both secrets.
const UNLOCK_FORMAT = 'tessera-raft-unlock';
const UNLOCK_VERSION = 1;
const UNLOCK_KDF = 'hkdf-sha256';
const MAX_UNLOCK_FILE_BYTES = 4096;

/** A keys directory that autolock cannot make sense of, naming the file. */
export class KeysDirError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'KeysDirError';
  }
}

/** What opens the secret in a keys directory, as found at start. */
export type KeysDirState =
  /** Nothing there yet: the secret is made at open (with keys/kek, or under a KEK given). */
  | { kind: 'new' }
  /** keys/kek opens it. */
  | { kind: 'kek-file'; kek: Buffer }
  /** Autolock: only the unlock key opens it (unlockedKek). */
  | { kind: 'locked' };

/** A secret autolock protects, as its files show before it is opened. */
export interface GuardedFiles {
  /** Its directory: kek, unlock and the secret's own files. */
  readonly dir: string;
  /** What it is, for errors: what cannot be read without it. */
  readonly what: string;
  /** Nothing is kept here yet. */
  isNew(): Promise<boolean>;
  /** Whether keys/kek holding `kek` gives the secret. */
  fileKekOpens(kek: Uint8Array): Promise<boolean>;
  /** Whether `kek` (derived from an unlock key) opens the secret's wrapped form. */
  derivedKekOpens(kek: Uint8Array): Promise<boolean>;
}

/** The secret once it is open: what autolock's changes do to it. */
export interface GuardedSecret {
  readonly dir: string;
  /** It is wrapped under `kek` on disk now. */
  wrappedUnder(kek: Uint8Array): Promise<boolean>;
  /** One atomic rewrite: wrapped under `kek` from now on (and not under the KEK before). */
  rewrap(kek: Uint8Array): Promise<void>;
  /** Whether keys/kek holding `kek` gives the secret as it is now. */
  fileKekOpens(kek: Uint8Array): Promise<boolean>;
  /** What keys/kek is to hold when autolock goes off. */
  newFileKek(): Buffer;
  /** Once keys/kek durably holds `kek`: what the secret's other files need. True when something changed. */
  followFileKek(kek: Uint8Array): Promise<boolean>;
}

export function encodeUnlockFile(salt: Uint8Array): Buffer {
  const fields = { format: UNLOCK_FORMAT, version: UNLOCK_VERSION, kdf: UNLOCK_KDF, salt: Buffer.from(salt).toString('base64') };
  return Buffer.from(`${JSON.stringify(fields)}\n`, 'utf8');
}

/** The salt in an unlock file; pure. */
export function decodeUnlockFile(path: string, bytes: Buffer): Buffer {
  if (bytes.length > MAX_UNLOCK_FILE_BYTES) throw new KeysDirError(path, `is ${bytes.length} bytes, more than an unlock file can be`);
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new KeysDirError(path, `not JSON (${(err as Error).message})`);
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (o.format !== UNLOCK_FORMAT) throw new KeysDirError(path, `format is ${JSON.stringify(o.format)}, expected "${UNLOCK_FORMAT}"`);
  if (o.version !== UNLOCK_VERSION) throw new KeysDirError(path, `version ${JSON.stringify(o.version)} is not supported`);
  if (o.kdf !== UNLOCK_KDF) throw new KeysDirError(path, `kdf ${JSON.stringify(o.kdf)} is not supported`);
  const salt = typeof o.salt === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(o.salt) ? Buffer.from(o.salt, 'base64') : undefined;
  if (salt?.length !== KEK_SALT_BYTES) throw new KeysDirError(path, `salt is not ${KEK_SALT_BYTES} bytes of base64`);
  return salt;
}

/** `name` in `dir`, decoded; undefined when there is no such file. */
export async function readKeysFile<T>(
  dir: string,
  name: string,
  decode: (path: string, bytes: Buffer) => T,
  fs: DurableFs = nodeDurableFs,
): Promise<T | undefined> {
  const path = join(dir, name);
  if (!(await exists(path))) return undefined;
  return decode(path, await fs.readFile(path));
}

export function readUnlockSalt(dir: string, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  return readKeysFile(dir, UNLOCK_FILE, decodeUnlockFile, fs);
}

/** The salt of the unlock file, written first (durably) when there is none; it is kept across key rotations. */
export async function ensureUnlockSalt(dir: string, fs: DurableFs = nodeDurableFs): Promise<Buffer> {
  const existing = await readUnlockSalt(dir, fs);
  if (existing) return existing;
  const salt = randomBytes(KEK_SALT_BYTES);
  await fs.writeFileAtomic(join(dir, UNLOCK_FILE), encodeUnlockFile(salt));
  return salt;
}

export function readKekFile(dir: string, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  return readKeysFile(dir, KEK_FILE, decodeKekFile, fs);
}

/** What opens the secret (see KeysDirState); throws when nothing can. */
export async function guardState(files: GuardedFiles, fs: DurableFs = nodeDurableFs): Promise<KeysDirState> {
  if (await files.isNew()) return { kind: 'new' };
  const kek = await readKekFile(files.dir, fs);
  if (kek && (await files.fileKekOpens(kek))) return { kind: 'kek-file', kek };
  if (await exists(join(files.dir, UNLOCK_FILE))) return { kind: 'locked' };
  const path = join(files.dir, KEK_FILE);
  if (kek) throw new KeysDirError(path, `does not open ${files.what} (a key-encryption key from another one?)`);
  throw new KeysDirError(path, `the key-encryption key is missing, so ${files.what} cannot be decrypted`);
}

/** The KEK an unlock key gives, or undefined when it does not open the secret (a wrong key). */
export async function unlockedKek(files: GuardedFiles, unlockKey: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  const salt = await readUnlockSalt(files.dir, fs);
  if (!salt) throw new KeysDirError(join(files.dir, UNLOCK_FILE), `is missing: ${files.what} is not autolocked`);
  const kek = deriveKek(unlockKey, salt);
  if (await files.derivedKekOpens(kek)) return kek;
  kek.fill(0);
  return undefined;
}

/**
 * Overwrites a file with random bytes, flushes them, unlinks it and flushes the directory. On a
 * journaling or copy-on-write file system, or an SSD that remaps blocks, earlier copies of the
 * bytes may survive: this removes the file's content from where the file system put it, no more.
 */
export async function shredFile(path: string, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const noise = randomBytes(size);
    for (let at = 0; at < size;) at += (await handle.write(noise, at, size - at, at)).bytesWritten;
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.unlink(path);
  await fs.syncDir(join(path, '..'));
  return true;
}

/** Autolock on (or its key rotated): the secret ends up wrapped under the KEK derived from `unlockKey`, and kek is shredded. True when something changed. */
export async function lockSecret(secret: GuardedSecret, unlockKey: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  const kek = deriveKek(unlockKey, await ensureUnlockSalt(secret.dir, fs));
  let changed = false;
  try {
    if (!(await secret.wrappedUnder(kek))) {
      await secret.rewrap(kek);
      changed = true;
    }
  } finally {
    kek.fill(0);
  }
  // Also a kek file a crash left after the re-wrap.
  return (await shredFile(join(secret.dir, KEK_FILE), fs)) || changed;
}

/** Autolock off: kek opens the secret again and unlock goes. True when something changed (nothing does when kek already opens it). */
export async function unlockSecretForGood(secret: GuardedSecret, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  const present = await readKekFile(secret.dir, fs);
  let kek = present && (await secret.fileKekOpens(present)) ? present : undefined;
  let changed = false;
  if (!kek) {
    kek = secret.newFileKek();
    await fs.writeFileAtomic(join(secret.dir, KEK_FILE), encodeKekFile(kek));
    changed = true;
  }
  changed = (await secret.followFileKek(kek)) || changed;
  if (await exists(join(secret.dir, UNLOCK_FILE))) {
    // The salt is not secret: a plain unlink will do.
    await fs.unlink(join(secret.dir, UNLOCK_FILE));
    await fs.syncDir(secret.dir);
    changed = true;
  }
  return changed;
}
