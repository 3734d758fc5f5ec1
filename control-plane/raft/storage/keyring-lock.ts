// Where a keyring's key-encryption key (KEK) comes from: the file keys/kek, or (autolock) an unlock
// key that is on no disk, from which the KEK is derived with the salt in keys/unlock.
//
// Turning autolock on, rotating its key and turning it off each change the files in an order that
// a crash between two steps cannot turn into a keyring nobody can open:
//   on:   keys/unlock (salt, kept from then on) -> keyring re-wrapped under the derived KEK -> keys/kek shredded
//   off:  a new keys/kek -> keyring re-wrapped under it -> keys/unlock removed
// At start (keysDirState) a kek file that opens the keyring wins; one that does not (a crash after
// the re-wrap, before the shred) is ignored when keys/unlock is there: the manager is locked.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';
import { KEK_FILE, KEYRING_FILE, Keyring, KeyringError, decodeKekFile, encodeKekFile } from './keyring.js';
import { KEY_BYTES } from './sealing.js';
import { KEK_SALT_BYTES, deriveKek } from './unlock-key.js';

export const UNLOCK_FILE = 'unlock';
const UNLOCK_FORMAT = 'tessera-raft-unlock';
const UNLOCK_VERSION = 1;
const UNLOCK_KDF = 'hkdf-sha256';
const MAX_UNLOCK_FILE_BYTES = 4096;

/** What opens the keyring in a keys directory, as found at start. */
export type KeysDirState =
  /** No keyring yet: one is made at open (under keys/kek, or a KEK given). */
  | { kind: 'new' }
  /** keys/kek opens the keyring. */
  | { kind: 'kek-file'; kek: Buffer }
  /** Autolock: only the unlock key opens it (unlockedKek). */
  | { kind: 'locked' };

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export function encodeUnlockFile(salt: Uint8Array): Buffer {
  const fields = { format: UNLOCK_FORMAT, version: UNLOCK_VERSION, kdf: UNLOCK_KDF, salt: Buffer.from(salt).toString('base64') };
  return Buffer.from(`${JSON.stringify(fields)}\n`, 'utf8');
}

/** The salt in a keys/unlock file; pure. */
export function decodeUnlockFile(path: string, bytes: Buffer): Buffer {
  if (bytes.length > MAX_UNLOCK_FILE_BYTES) throw new KeyringError(path, `is ${bytes.length} bytes, more than an unlock file can be`);
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new KeyringError(path, `not JSON (${(err as Error).message})`);
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (o.format !== UNLOCK_FORMAT) throw new KeyringError(path, `format is ${JSON.stringify(o.format)}, expected "${UNLOCK_FORMAT}"`);
  if (o.version !== UNLOCK_VERSION) throw new KeyringError(path, `version ${JSON.stringify(o.version)} is not supported`);
  if (o.kdf !== UNLOCK_KDF) throw new KeyringError(path, `kdf ${JSON.stringify(o.kdf)} is not supported`);
  const salt = typeof o.salt === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(o.salt) ? Buffer.from(o.salt, 'base64') : undefined;
  if (salt?.length !== KEK_SALT_BYTES) throw new KeyringError(path, `salt is not ${KEK_SALT_BYTES} bytes of base64`);
  return salt;
}

export async function readUnlockSalt(dir: string, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  const path = join(dir, UNLOCK_FILE);
  if (!(await exists(path))) return undefined;
  return decodeUnlockFile(path, await fs.readFile(path));
}

/** The salt of keys/unlock, written first (durably) when there is none; it is kept across key rotations. */
export async function ensureUnlockSalt(dir: string, fs: DurableFs = nodeDurableFs): Promise<Buffer> {
  const existing = await readUnlockSalt(dir, fs);
  if (existing) return existing;
  const salt = randomBytes(KEK_SALT_BYTES);
  await fs.writeFileAtomic(join(dir, UNLOCK_FILE), encodeUnlockFile(salt));
  return salt;
}

async function readKekFile(dir: string, fs: DurableFs): Promise<Buffer | undefined> {
  const path = join(dir, KEK_FILE);
  if (!(await exists(path))) return undefined;
  return decodeKekFile(path, await fs.readFile(path));
}

/** What opens the keyring in `dir` (see KeysDirState); throws when nothing can. */
export async function keysDirState(dir: string, fs: DurableFs = nodeDurableFs): Promise<KeysDirState> {
  if (!(await exists(join(dir, KEYRING_FILE)))) return { kind: 'new' };
  const kek = await readKekFile(dir, fs);
  if (kek && (await Keyring.kekOpens(dir, kek, { fs }))) return { kind: 'kek-file', kek };
  if (await exists(join(dir, UNLOCK_FILE))) return { kind: 'locked' };
  if (kek) throw new KeyringError(join(dir, KEK_FILE), 'does not open the keyring (a key-encryption key from another keyring?)');
  throw new KeyringError(join(dir, KEK_FILE), 'the key-encryption key is missing, so the data keys (and the Raft log and snapshots) cannot be decrypted');
}

/** The KEK an unlock key gives this keyring, or undefined when it does not open it (a wrong key). */
export async function unlockedKek(dir: string, unlockKey: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  const salt = await readUnlockSalt(dir, fs);
  if (!salt) throw new KeyringError(join(dir, UNLOCK_FILE), 'is missing: this keyring is not autolocked');
  const kek = deriveKek(unlockKey, salt);
  return (await Keyring.kekOpens(dir, kek, { fs })) ? kek : undefined;
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

/**
 * Autolock on (or its key rotated) for an open keyring: the keyring ends up wrapped under the KEK
 * derived from `unlockKey`, and keys/kek is shredded. True when something changed.
 */
export async function lockKeyring(dir: string, keyring: Keyring, unlockKey: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  const kek = deriveKek(unlockKey, await ensureUnlockSalt(dir, fs));
  let changed = false;
  if (!keyring.wrappedUnder(kek)) {
    await keyring.rewrap(kek);
    changed = true;
  }
  kek.fill(0);
  // Also a kek file a crash left after the re-wrap.
  return (await shredFile(join(dir, KEK_FILE), fs)) || changed;
}

/**
 * Autolock off for an open keyring: a new KEK in keys/kek wraps it, keys/unlock goes. True when
 * something changed (nothing does when keys/kek already opens the keyring).
 */
export async function unlockKeyringForGood(dir: string, keyring: Keyring, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  const present = await readKekFile(dir, fs);
  let changed = false;
  if (!present || !keyring.wrappedUnder(present)) {
    const kek = randomBytes(KEY_BYTES);
    await fs.writeFileAtomic(join(dir, KEK_FILE), encodeKekFile(kek));
    await keyring.rewrap(kek);
    changed = true;
  }
  if (await exists(join(dir, UNLOCK_FILE))) {
    // The salt is not secret: a plain unlink will do.
    await fs.unlink(join(dir, UNLOCK_FILE));
    await fs.syncDir(dir);
    changed = true;
  }
  return changed;
}
