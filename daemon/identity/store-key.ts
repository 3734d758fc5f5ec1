// The etcd backend's store key: the key-encryption key that wraps the data keys sealing every value
// Tessera writes to etcd (control-plane/store/sealed-store.ts). All managers sharing one etcd hold
// the same key, in <data-root>/etcd-keys/kek (directory 0700, file 0600, the Raft KEK's format):
// the first manager makes it, a manager that joins fetches it over mutual TLS (NodeCA.StoreKey)
// before its manager half starts. Without it, etcd's contents are ciphertext.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { isAbsent } from '../../agent/fs-errors.js';
import { nodeDurableFs } from '../../control-plane/raft/storage/durable-fs.js';
import { decodeKekFile, encodeKekFile, KEK_FILE } from '../../control-plane/raft/storage/keyring.js';

const STORE_KEY_BYTES = 32;

export function storeKeyPath(dataRoot: string): string {
  return join(dataRoot, 'etcd-keys', KEK_FILE);
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

export async function writeStoreKey(dataRoot: string, kek: Uint8Array): Promise<void> {
  if (kek.length !== STORE_KEY_BYTES) throw new Error(`the store key is ${kek.length} bytes, expected ${STORE_KEY_BYTES}`);
  const path = storeKeyPath(dataRoot);
  const dir = join(dataRoot, 'etcd-keys');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  // writeFileAtomic makes its file 0600 and syncs file and directory.
  await nodeDurableFs.writeFileAtomic(path, encodeKekFile(kek));
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
