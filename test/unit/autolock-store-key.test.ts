// Autolock for the etcd backend's store key on real files (<tmp>/etcd-keys): on, rotated, off, the
// states a crash between two steps leaves (each must still be opened by some key), and `tsd init
// --autolock`'s path, which never writes the key in the clear.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { nodeDurableFs } from '../../control-plane/raft/storage/durable-fs.js';
import {
  UNLOCK_FILE,
  encodeUnlockFile,
  ensureUnlockSalt,
  guardState,
  lockSecret,
  unlockSecretForGood,
  unlockedKek,
} from '../../control-plane/raft/storage/kek-lock.js';
import { KEK_FILE, encodeKekFile } from '../../control-plane/raft/storage/keyring.js';
import { deriveKek, newUnlockKey, parseUnlockKey } from '../../control-plane/raft/storage/unlock-key.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { AutolockKeeper } from '../../daemon/autolock-keeper.js';
import { protectedKeysOf } from '../../daemon/autolock-start.js';
import { openStoreKey, readOrCreateStoreKey, storeKeyDir } from '../../daemon/identity/store-key.js';
import { SEALED_STORE_KEY_FILE, decodeSealedStoreKey, encodeSealedStoreKey, storeKeyFiles, storeKeySecret } from '../../daemon/identity/store-key-lock.js';

const quiet = (): void => undefined;

interface Manager {
  dataRoot: string;
  dir: string;
  storeKey: Buffer;
}

/** A data root whose etcd-keys/kek holds a store key, as a manager without autolock has it. */
async function manager(t: ExecutionContext): Promise<Manager> {
  const dataRoot = await mkdtemp(join(tmpdir(), 'tessera-store-key-'));
  t.teardown(() => rm(dataRoot, { recursive: true, force: true }));
  const storeKey = await readOrCreateStoreKey(dataRoot, quiet);
  return { dataRoot, dir: storeKeyDir(dataRoot), storeKey };
}

async function files(m: Manager): Promise<string[]> {
  return (await readdir(m.dir)).filter((f) => !f.startsWith('.')).sort();
}

/** The store key as a restarted manager would get it from these files: from kek, or from the unlock key when locked. */
async function keyAtStart(m: Manager, unlockKey: Buffer | undefined): Promise<Buffer | undefined> {
  const state = await guardState(storeKeyFiles(m.dir));
  if (state.kind === 'kek-file') return state.kek;
  if (state.kind !== 'locked' || !unlockKey) return undefined;
  const kek = await unlockedKek(storeKeyFiles(m.dir), unlockKey);
  return kek ? openStoreKey(m.dataRoot, kek, quiet) : undefined;
}

test('the sealed store key opens with its KEK only, and an altered file does not open', (t) => {
  const kek = randomBytes(32);
  const key = randomBytes(32);
  const sealed = encodeSealedStoreKey(kek, key);
  t.deepEqual(decodeSealedStoreKey('/k/sealed-key', sealed, kek), key);
  t.false(sealed.includes(key));
  t.is(decodeSealedStoreKey('/k/sealed-key', sealed, randomBytes(32)), undefined);
  const altered = Buffer.from(sealed);
  altered[40] = (altered[40] ?? 0) ^ 1;
  t.is(decodeSealedStoreKey('/k/sealed-key', altered, kek), undefined);
  t.throws(() => decodeSealedStoreKey('/k/sealed-key', sealed.subarray(1), kek), { message: /\/k\/sealed-key: is 67 bytes/ });
  t.throws(() => decodeSealedStoreKey('/k/sealed-key', Buffer.concat([Buffer.from('XXXX'), sealed.subarray(4)]), kek), { message: /wrong magic/ });
});

test('autolock on: etcd-keys holds the store key only sealed under the derived KEK, kek is shredded, only the right key opens it', async (t) => {
  const m = await manager(t);
  t.is((await guardState(storeKeyFiles(m.dir))).kind, 'kek-file');
  const unlock = parseUnlockKey(newUnlockKey());
  t.true(await lockSecret(storeKeySecret(m.dir, m.storeKey), unlock));
  t.deepEqual(await files(m), [SEALED_STORE_KEY_FILE, UNLOCK_FILE]);
  for (const f of await files(m)) t.is((await stat(join(m.dir, f))).mode & 0o777, 0o600, f);
  t.is((await guardState(storeKeyFiles(m.dir))).kind, 'locked');
  t.is(await unlockedKek(storeKeyFiles(m.dir), parseUnlockKey(newUnlockKey())), undefined);
  t.deepEqual(await keyAtStart(m, unlock), m.storeKey);
  // Nothing on disk holds the key's bytes, in the clear or as base64.
  for (const f of await files(m)) {
    const bytes = await readFile(join(m.dir, f));
    t.false(bytes.includes(m.storeKey) || bytes.includes(m.storeKey.toString('base64').slice(0, 40)), f);
  }
  t.false(await lockSecret(storeKeySecret(m.dir, m.storeKey), unlock), 'locking again under the same key changes nothing');
});

test('rotation: the store key is sealed under the new key only; the salt stays', async (t) => {
  const m = await manager(t);
  const secret = storeKeySecret(m.dir, m.storeKey);
  const first = parseUnlockKey(newUnlockKey());
  await lockSecret(secret, first);
  const salt = await ensureUnlockSalt(m.dir);
  const second = parseUnlockKey(newUnlockKey());
  t.true(await lockSecret(secret, second));
  t.deepEqual(await ensureUnlockSalt(m.dir), salt);
  t.deepEqual(await keyAtStart(m, second), m.storeKey);
  t.is(await keyAtStart(m, first), undefined);
});

test('autolock off: etcd-keys/kek holds the store key again; the sealed copy and the salt are gone', async (t) => {
  const m = await manager(t);
  const secret = storeKeySecret(m.dir, m.storeKey);
  await lockSecret(secret, parseUnlockKey(newUnlockKey()));
  t.true(await unlockSecretForGood(secret));
  t.deepEqual(await files(m), [KEK_FILE]);
  t.is((await stat(join(m.dir, KEK_FILE))).mode & 0o777, 0o600);
  t.deepEqual(await readOrCreateStoreKey(m.dataRoot, quiet), m.storeKey);
  t.deepEqual(await keyAtStart(m, undefined), m.storeKey);
  t.false(await unlockSecretForGood(secret));
});

test('a crash between any two steps of on or off leaves etcd-keys opened by kek or by the unlock key, and the next round finishes', async (t) => {
  const m = await manager(t);
  const secret = storeKeySecret(m.dir, m.storeKey);
  const unlock = parseUnlockKey(newUnlockKey());
  const kek = async () => deriveKek(unlock, await ensureUnlockSalt(m.dir));

  // On, crashed after the salt: kek still opens it.
  await ensureUnlockSalt(m.dir);
  t.deepEqual(await keyAtStart(m, undefined), m.storeKey);
  // On, crashed after the seal, before the shred: kek and the unlock key both open it.
  await secret.rewrap(await kek());
  t.deepEqual(await keyAtStart(m, undefined), m.storeKey);
  t.truthy(await unlockedKek(storeKeyFiles(m.dir), unlock));
  t.true(await lockSecret(secret, unlock), 'the next round shreds kek');
  t.deepEqual(await files(m), [SEALED_STORE_KEY_FILE, UNLOCK_FILE]);

  // Off, crashed after kek is written: kek opens it; the next round removes the sealed copy and the salt.
  await nodeDurableFs.writeFileAtomic(join(m.dir, KEK_FILE), encodeKekFile(m.storeKey));
  t.deepEqual(await keyAtStart(m, undefined), m.storeKey);
  t.true(await unlockSecretForGood(secret));
  t.deepEqual(await files(m), [KEK_FILE]);
  // Off, crashed after the sealed copy went, before the salt: kek opens it.
  await writeFile(join(m.dir, UNLOCK_FILE), encodeUnlockFile(randomBytes(32)), { mode: 0o600 });
  t.deepEqual(await keyAtStart(m, undefined), m.storeKey);
  t.true(await unlockSecretForGood(secret));
  t.deepEqual(await files(m), [KEK_FILE]);
});

test('tsd init --autolock: the store key is made and written only sealed; a KEK that does not open it is refused, naming the file', async (t) => {
  const dataRoot = await mkdtemp(join(tmpdir(), 'tessera-store-key-'));
  t.teardown(() => rm(dataRoot, { recursive: true, force: true }));
  const m: Manager = { dataRoot, dir: storeKeyDir(dataRoot), storeKey: Buffer.alloc(0) };
  t.is((await guardState(storeKeyFiles(m.dir))).kind, 'new');
  // As autolock-start.ts does for a founding manager: the salt first, then the KEK from a new unlock key.
  const unlock = parseUnlockKey(newUnlockKey());
  await mkdir(m.dir, { mode: 0o700 });
  // A crash here (salt, no key yet) is still a new directory.
  const kek = deriveKek(unlock, await ensureUnlockSalt(m.dir));
  t.is((await guardState(storeKeyFiles(m.dir))).kind, 'new');
  const logged: string[] = [];
  m.storeKey = await openStoreKey(dataRoot, kek, (line) => logged.push(line));
  t.regex(logged.join('\n'), /only sealed under the unlock key's KEK/);
  t.deepEqual(await files(m), [SEALED_STORE_KEY_FILE, UNLOCK_FILE]);
  t.is((await stat(m.dir)).mode & 0o777, 0o700);
  t.is((await guardState(storeKeyFiles(m.dir))).kind, 'locked');
  t.deepEqual(await keyAtStart(m, unlock), m.storeKey);
  t.deepEqual(await openStoreKey(dataRoot, kek, quiet), m.storeKey, 'opened again, the same key');
  await t.throwsAsync(() => openStoreKey(dataRoot, randomBytes(32), quiet), {
    message: /etcd-keys\/sealed-key: the key this manager was unlocked with does not open/,
  });
});

test('a sealed store key without kek or unlock file cannot be opened, and the error says why', async (t) => {
  const m = await manager(t);
  await lockSecret(storeKeySecret(m.dir, m.storeKey), parseUnlockKey(newUnlockKey()));
  await rm(join(m.dir, UNLOCK_FILE));
  await t.throwsAsync(() => guardState(storeKeyFiles(m.dir)), { message: /etcd-keys\/kek: the key-encryption key is missing, so the store key/ });
});

test("an etcd-backed manager's keeper follows the cluster's record: on, rotated and off re-wrap its store key", async (t) => {
  const m = await manager(t);
  const keys = protectedKeysOf(undefined, m.storeKey, m.dataRoot);
  if (!keys) return t.fail('an etcd-backed manager has keys to protect');
  const logged: string[] = [];
  const keeper = await AutolockKeeper.start(new MemoryStore(), keys, (line) => logged.push(line));
  t.teardown(() => keeper.close());
  const on = await keeper.setEnabled(true);
  t.deepEqual(await files(m), [SEALED_STORE_KEY_FILE, UNLOCK_FILE]);
  t.deepEqual(await keyAtStart(m, parseUnlockKey(on.unlockKey ?? '')), m.storeKey);
  t.regex(logged.join('\n'), /wrapped its etcd store key under the cluster's current unlock key; etcd-keys\/kek is removed/);
  const rotated = await keeper.unlockKey(true);
  t.deepEqual(await keyAtStart(m, parseUnlockKey(rotated)), m.storeKey);
  t.is(await keyAtStart(m, parseUnlockKey(on.unlockKey ?? '')), undefined);
  await keeper.setEnabled(false);
  t.deepEqual(await files(m), [KEK_FILE]);
  t.deepEqual(await keyAtStart(m, undefined), m.storeKey);
});
