// The etcd backend's store key: the key-encryption key that wraps the data keys sealing every value
// Tessera writes to etcd (control-plane/store/sealed-store.ts). All managers sharing one etcd hold
// the same key, in <data-root>/etcd-keys/ (directory 0700, files 0600): in kek (the Raft KEK's
// format), or with autolock only sealed under this manager's KEK from the unlock key
// (store-key-lock.ts). The first manager makes it, a manager that joins fetches it over mutual TLS
// (NodeCA.StoreKey) before its manager half starts. Without it, etcd's contents are ciphertext.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { isAbsent } from '../../agent/fs-errors.js';
import { nodeDurableFs } from '../../control-plane/raft/storage/durable-fs.js';
import { exists } from '../../control-plane/raft/storage/keyring.js';
import { decodeKekFile, encodeKekFile, KEK_FILE } from '../../control-plane/raft/storage/keyring.js';
import { encodeSealedStoreKey, readSealedStoreKey, SEALED_STORE_KEY_FILE } from './store-key-lock.js';

const STORE_KEY_BYTES = 32;

export function storeKeyDir(dataRoot: string): string {
  return join(dataRoot, 'etcd-keys');
}

export function storeKeyPath(dataRoot: string): string {
  return join(storeKeyDir(dataRoot), KEK_FILE);
}

async function readStoreKey(path: string): Promise<Buffer | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw new Error(`${path}: cannot read the store key (${(err as Error).message})`);
  }
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new Error(`${path}: the store key has mode 0${mode.toString(8)}; chmod 600 it`);
  return decodeKekFile(path, bytes);
}

/** etcd-keys/, made 0700 (and tightened if it was not). */
export async function ensureStoreKeyDir(dataRoot: string): Promise<string> {
  const dir = storeKeyDir(dataRoot);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  return dir;
}

export async function writeStoreKey(dataRoot: string, kek: Uint8Array): Promise<void> {
  if (kek.length !== STORE_KEY_BYTES) throw new Error(`the store key is ${kek.length} bytes, expected ${STORE_KEY_BYTES}`);
  await ensureStoreKeyDir(dataRoot);
  // writeFileAtomic makes its file 0600 and syncs file and directory.
  await nodeDurableFs.writeFileAtomic(storeKeyPath(dataRoot), encodeKekFile(kek));
}

/** This manager's store key; made (and written) when there is none, as on the first manager of a cluster. */
export async function readOrCreateStoreKey(dataRoot: string, log: (message: string) => void): Promise<Buffer> {
  const path = storeKeyPath(dataRoot);
  const existing = await readStoreKey(path);
  if (existing) return existing;
  const kek = randomBytes(STORE_KEY_BYTES);
  await writeStoreKey(dataRoot, kek);
  log(`made the store key that seals values in etcd: ${path}`);
  return kek;
}

/**
 * The store key under autolock: opened from etcd-keys/sealed-key with `kek` (the KEK the unlock
 * key gave), or, for `tsd init --autolock`, made and written only sealed under it.
 */
export async function openSealedStoreKey(dataRoot: string, kek: Uint8Array, log: (message: string) => void): Promise<Buffer> {
  const dir = await ensureStoreKeyDir(dataRoot);
  const path = join(dir, SEALED_STORE_KEY_FILE);
  const opened = await readSealedStoreKey(dir, kek);
  if (opened) return opened;
  if (await exists(path)) throw new Error(`${path}: the key this manager was unlocked with does not open the store key`);
  const storeKey = randomBytes(STORE_KEY_BYTES);
  await nodeDurableFs.writeFileAtomic(path, encodeSealedStoreKey(kek, storeKey));
  log(`made the store key that seals values in etcd, on disk only sealed under the unlock key's KEK: ${path}`);
  return storeKey;
}

/** This manager's store key: sealed under `kek` when autolock gave one, else etcd-keys/kek (made when absent). */
export function openStoreKey(dataRoot: string, kek: Uint8Array | undefined, log: (message: string) => void): Promise<Buffer> {
  return kek ? openSealedStoreKey(dataRoot, kek, log) : readOrCreateStoreKey(dataRoot, log);
}
