// Autolock for the etcd backend's store key (store-key.ts), in <data-root>/etcd-keys/ with the
// Raft keyring's files and order (control-plane/raft/storage/kek-lock.ts):
//   kek         without autolock: the store key itself (the KEK file format), as before autolock;
//   unlock      with autolock: the salt this manager's KEK is derived with from the unlock key;
//   sealed-key  with autolock: the store key sealed (AES-256-GCM, authenticated) under that KEK.
// On: salt -> sealed-key -> kek shredded. Off: kek (the store key) -> sealed-key removed -> salt
// removed. kek, whenever it is there, is the store key, so it opens; with no kek the unlock key must.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';

import { nodeDurableFs, type DurableFs } from '../../control-plane/raft/storage/durable-fs.js';
import { KeysDirError, readKeysFile, type GuardedFiles, type GuardedSecret } from '../../control-plane/raft/storage/kek-lock.js';
import { exists } from '../../control-plane/raft/storage/keyring.js';
import { KEK_FILE } from '../../control-plane/raft/storage/keyring.js';
import { KEY_BYTES, NONCE_BYTES, SEAL_OVERHEAD, SealOpenError, open, seal } from '../../control-plane/raft/storage/sealing.js';

export const SEALED_STORE_KEY_FILE = 'sealed-key';
const MAGIC = 'TSSK';
const VERSION = 1;
const HEADER_BYTES = 8;
const SEALED_FILE_BYTES = HEADER_BYTES + KEY_BYTES + SEAL_OVERHEAD;
/** Associated data: sealed bytes made for anything else never open as a store key. */
const STORE_KEY_AD = Buffer.from('tessera etcd store key v1\0', 'latin1');
const WHAT = 'the store key (and every value in etcd)';

/** "TSSK" | u32 version 1 | nonce | AES-256-GCM(kek, store key) | tag. Pure but for the nonce. */
export function encodeSealedStoreKey(kek: Uint8Array, storeKey: Uint8Array): Buffer {
  if (storeKey.length !== KEY_BYTES) throw new RangeError(`the store key is ${storeKey.length} bytes, expected ${KEY_BYTES}`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(VERSION, 4);
  return Buffer.concat([header, seal(kek, randomBytes(NONCE_BYTES), storeKey, STORE_KEY_AD)]);
}

/** The store key in a sealed-key file, or undefined when `kek` does not open it; a damaged file throws, naming it. Pure. */
export function decodeSealedStoreKey(path: string, bytes: Buffer, kek: Uint8Array): Buffer | undefined {
  if (bytes.length !== SEALED_FILE_BYTES) throw new KeysDirError(path, `is ${bytes.length} bytes, a sealed store key is ${SEALED_FILE_BYTES}`);
  if (bytes.toString('latin1', 0, 4) !== MAGIC) throw new KeysDirError(path, 'is not a sealed store key (wrong magic)');
  if (bytes.readUInt32LE(4) !== VERSION) throw new KeysDirError(path, `sealed store key version ${bytes.readUInt32LE(4)} is not supported`);
  try {
    return open(kek, bytes.subarray(HEADER_BYTES), STORE_KEY_AD);
  } catch (err) {
    // A tag that does not verify is the answer: this is not the KEK it was sealed under (or the file was altered).
    if (err instanceof SealOpenError) return undefined;
    throw err;
  }
}

/** The store key sealed in `dir`, opened with `kek`; undefined when there is no sealed-key file or `kek` does not open it. */
export function readSealedStoreKey(dir: string, kek: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  return readKeysFile(dir, SEALED_STORE_KEY_FILE, (path, bytes) => decodeSealedStoreKey(path, bytes, kek), fs);
}

/** The store key's files before anything is open: kek is the key itself; a derived KEK must open sealed-key. */
export function storeKeyFiles(dir: string, fs: DurableFs = nodeDurableFs): GuardedFiles {
  return {
    dir,
    what: WHAT,
    isNew: async () => !(await exists(join(dir, KEK_FILE))) && !(await exists(join(dir, SEALED_STORE_KEY_FILE))),
    // decodeKekFile (guardState) checked its format; its bytes are the store key.
    fileKekOpens: () => Promise.resolve(true),
    derivedKekOpens: async (kek) => (await readSealedStoreKey(dir, kek, fs)) !== undefined,
  };
}

/** The store key held by a running manager, as autolock re-wraps it. */
export function storeKeySecret(dir: string, storeKey: Uint8Array, fs: DurableFs = nodeDurableFs): GuardedSecret {
  const sealedPath = join(dir, SEALED_STORE_KEY_FILE);
  const isStoreKey = (key: Uint8Array): boolean => key.length === storeKey.length && timingSafeEqual(key, storeKey);
  return {
    dir,
    wrappedUnder: async (kek) => {
      const opened = await readSealedStoreKey(dir, kek, fs);
      return opened !== undefined && isStoreKey(opened);
    },
    // One atomic rename: the file is sealed under the old KEK or the new one, never neither.
    rewrap: (kek) => fs.writeFileAtomic(sealedPath, encodeSealedStoreKey(kek, storeKey)),
    fileKekOpens: (kek) => Promise.resolve(isStoreKey(kek)),
    newFileKek: () => Buffer.from(storeKey),
    followFileKek: async () => {
      if (!(await exists(sealedPath))) return false;
      // Ciphertext under a KEK that is going away; kek now holds the key in the clear anyway.
      await fs.unlink(sealedPath);
      await fs.syncDir(dir);
      return true;
    },
  };
}
