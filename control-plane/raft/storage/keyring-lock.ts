// Autolock for the Raft keyring (kek-lock.ts has the files, their order and why): keys/kek holds a
// random KEK the keyring is wrapped under; with autolock the keyring is wrapped under the KEK
// derived from the unlock key instead (keys/unlock holds the salt) and keys/kek is shredded.
//   on:   keys/unlock -> keyring re-wrapped under the derived KEK -> keys/kek shredded
//   off:  a new keys/kek -> keyring re-wrapped under it -> keys/unlock removed
// A kek file that no longer opens the keyring (a crash after the re-wrap, before the shred) is
// ignored when keys/unlock is there: the manager is locked.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';
import {
  guardState,
  lockSecret,
  unlockSecretForGood,
  unlockedKek as guardedKek,
  type GuardedFiles,
  type GuardedSecret,
  type KeysDirState,
} from './kek-lock.js';
import { KEYRING_FILE, Keyring, exists } from './keyring.js';
import { KEY_BYTES } from './sealing.js';

export { UNLOCK_FILE, decodeUnlockFile, encodeUnlockFile, ensureUnlockSalt, readUnlockSalt, shredFile, type KeysDirState } from './kek-lock.js';

/** The keyring in `dir` as autolock sees it before it is opened: a KEK opens it when the keyring's seal verifies. */
export function keyringFiles(dir: string, fs: DurableFs = nodeDurableFs): GuardedFiles {
  const opens = (kek: Uint8Array) => Keyring.kekOpens(dir, kek, { fs });
  return {
    dir,
    what: 'the data keys (and the Raft log and snapshots)',
    isNew: async () => !(await exists(join(dir, KEYRING_FILE))),
    fileKekOpens: opens,
    derivedKekOpens: opens,
  };
}

/** An open keyring: keys/kek holds a KEK it is wrapped under, a new random one when autolock goes off. */
export function keyringSecret(dir: string, keyring: Keyring): GuardedSecret {
  const wrappedUnder = (kek: Uint8Array) => Promise.resolve(keyring.wrappedUnder(kek));
  return {
    dir,
    wrappedUnder,
    rewrap: (kek) => keyring.rewrap(kek),
    fileKekOpens: wrappedUnder,
    newFileKek: () => randomBytes(KEY_BYTES),
    followFileKek: async (kek) => {
      if (keyring.wrappedUnder(kek)) return false;
      await keyring.rewrap(kek);
      return true;
    },
  };
}

/** What opens the keyring in `dir` (see KeysDirState); throws when nothing can. */
export function keysDirState(dir: string, fs: DurableFs = nodeDurableFs): Promise<KeysDirState> {
  return guardState(keyringFiles(dir, fs), fs);
}

/** The KEK an unlock key gives this keyring, or undefined when it does not open it (a wrong key). */
export function unlockedKek(dir: string, unlockKey: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<Buffer | undefined> {
  return guardedKek(keyringFiles(dir, fs), unlockKey, fs);
}

/** Autolock on (or its key rotated) for an open keyring; true when something changed. */
export function lockKeyring(dir: string, keyring: Keyring, unlockKey: Uint8Array, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  return lockSecret(keyringSecret(dir, keyring), unlockKey, fs);
}

/** Autolock off for an open keyring: a new KEK in keys/kek wraps it, keys/unlock goes. True when something changed. */
export function unlockKeyringForGood(dir: string, keyring: Keyring, fs: DurableFs = nodeDurableFs): Promise<boolean> {
  return unlockSecretForGood(keyringSecret(dir, keyring), fs);
}
