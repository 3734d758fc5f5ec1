// Autolock's pure parts (the unlock key's format, the KEK derivation) and the keys directory's
// transitions on real files: on, rotated, off, and the states a crash between steps leaves.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Keyring, KEK_FILE, encodeKekFile } from '../../control-plane/raft/storage/keyring.js';
import {
  UNLOCK_FILE,
  decodeUnlockFile,
  encodeUnlockFile,
  ensureUnlockSalt,
  keysDirState,
  lockKeyring,
  shredFile,
  unlockKeyringForGood,
  unlockedKek,
} from '../../control-plane/raft/storage/keyring-lock.js';
import { FIRST_WAIT_MS, MAX_WAIT_MS, UnlockAttempts } from '../../daemon/unlock-attempts.js';
import { base32Decode, base32Encode, deriveKek, formatUnlockKey, newUnlockKey, parseUnlockKey } from '../../control-plane/raft/storage/unlock-key.js';

test('base32 round-trips every length and refuses non-canonical spare bits', (t) => {
  for (let n = 0; n <= 40; n++) {
    const bytes = randomBytes(n);
    t.deepEqual(base32Decode(base32Encode(bytes)), bytes);
  }
  // RFC 4648 test vector, lowercase and unpadded.
  t.is(base32Encode(Buffer.from('foobar')), 'mzxw6ytboi');
  // One byte is 8 bits: two characters carry 10, the last 2 must be zero.
  t.deepEqual(base32Decode('my'), Buffer.from('f'));
  t.is(base32Decode('mz'), undefined);
  t.is(base32Decode('MY'), undefined);
});

test('an unlock key is TSUK-1- and 52 base32 characters of 32 random bytes, and parses back', (t) => {
  const key = newUnlockKey();
  t.regex(key, /^TSUK-1-[a-z2-7]{52}$/);
  t.is(parseUnlockKey(`${key}\n`).length, 32);
  t.is(formatUnlockKey(parseUnlockKey(key)), key);
  t.not(newUnlockKey(), key);
});

test('a malformed unlock key is refused, and the error never quotes it', (t) => {
  const key = newUnlockKey();
  const secret = key.slice(7);
  const cases = [
    key.replace('TSUK', 'TSJT'),
    key.replace('-1-', '-2-'),
    key.slice(0, -1),
    `${key}a`,
    key.toUpperCase(),
    `${key}-x`,
    'x'.repeat(1000),
    `TSUK-1-${secret.slice(0, 51)}9`,
  ];
  for (const bad of cases) {
    const err = t.throws(() => parseUnlockKey(bad));
    t.false(err.message.includes(secret.slice(0, 10)), err.message);
    t.regex(err.message, /^unlock key: /);
  }
});

test('deriveKek is HKDF-SHA256: deterministic, 32 bytes, different per salt and per key', (t) => {
  const key = parseUnlockKey(newUnlockKey());
  const salt = randomBytes(32);
  const kek = deriveKek(key, salt);
  t.is(kek.length, 32);
  t.deepEqual(deriveKek(key, salt), kek);
  t.notDeepEqual(deriveKek(key, randomBytes(32)), kek);
  t.notDeepEqual(deriveKek(parseUnlockKey(newUnlockKey()), salt), kek);
  t.throws(() => deriveKek(key, randomBytes(16)));
});

test('the unlock file holds only its salt, and a damaged one is refused naming the file', (t) => {
  const salt = randomBytes(32);
  t.deepEqual(decodeUnlockFile('/k/unlock', encodeUnlockFile(salt)), salt);
  t.throws(() => decodeUnlockFile('/k/unlock', Buffer.from('{"format":"tessera-raft-unlock","version":1,"kdf":"hkdf-sha256","salt":"AA=="}')), {
    message: /\/k\/unlock.*salt/,
  });
  t.throws(() => decodeUnlockFile('/k/unlock', Buffer.from('nope')), { message: /not JSON/ });
});

async function keysDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-autolock-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return join(root, 'keys');
}

test('autolock on: the keyring is wrapped under the derived KEK, kek is gone, only the right key opens it', async (t) => {
  const dir = await keysDir(t);
  const keyring = await Keyring.open(dir);
  t.is((await keysDirState(dir)).kind, 'kek-file');
  const unlock = parseUnlockKey(newUnlockKey());
  t.true(await lockKeyring(dir, keyring, unlock));
  t.deepEqual((await readdir(dir)).sort(), ['deks', UNLOCK_FILE]);
  t.is((await stat(join(dir, UNLOCK_FILE))).mode & 0o777, 0o600);
  t.is((await keysDirState(dir)).kind, 'locked');
  t.truthy(await unlockedKek(dir, unlock));
  t.is(await unlockedKek(dir, parseUnlockKey(newUnlockKey())), undefined);
  // Locking again under the same key changes nothing.
  t.false(await lockKeyring(dir, keyring, unlock));
  // The keyring opens with the derived KEK and holds the same data key.
  const reopened = await Keyring.open(dir, { kek: (await unlockedKek(dir, unlock))! });
  t.deepEqual(reopened.current().key, keyring.current().key);
});

test('rotation: the new key opens the keyring, the old one no longer does; the salt stays', async (t) => {
  const dir = await keysDir(t);
  const keyring = await Keyring.open(dir);
  const first = parseUnlockKey(newUnlockKey());
  await lockKeyring(dir, keyring, first);
  const salt = await ensureUnlockSalt(dir);
  const second = parseUnlockKey(newUnlockKey());
  t.true(await lockKeyring(dir, keyring, second));
  t.deepEqual(await ensureUnlockSalt(dir), salt);
  t.truthy(await unlockedKek(dir, second));
  t.is(await unlockedKek(dir, first), undefined);
  // Later changes of the keyring (a data key rotation) are sealed under the new KEK too.
  await keyring.rotate();
  t.truthy(await unlockedKek(dir, second));
});

test('autolock off: a new kek file opens the keyring and the unlock file is gone', async (t) => {
  const dir = await keysDir(t);
  const keyring = await Keyring.open(dir);
  await lockKeyring(dir, keyring, parseUnlockKey(newUnlockKey()));
  t.true(await unlockKeyringForGood(dir, keyring));
  t.deepEqual((await readdir(dir)).sort(), ['deks', KEK_FILE]);
  t.is((await stat(join(dir, KEK_FILE))).mode & 0o777, 0o600);
  t.is((await keysDirState(dir)).kind, 'kek-file');
  t.false(await unlockKeyringForGood(dir, keyring));
  await Keyring.open(dir);
});

test('a crash between re-wrap and shred leaves a stale kek file: the keyring is locked, the next lock shreds it', async (t) => {
  const dir = await keysDir(t);
  const keyring = await Keyring.open(dir);
  const unlock = parseUnlockKey(newUnlockKey());
  await lockKeyring(dir, keyring, unlock);
  // What was on disk before the shred: a kek file that no longer opens the keyring.
  await writeFile(join(dir, KEK_FILE), encodeKekFile(randomBytes(32)), { mode: 0o600 });
  t.is((await keysDirState(dir)).kind, 'locked');
  t.true(await lockKeyring(dir, keyring, unlock));
  t.deepEqual((await readdir(dir)).sort(), ['deks', UNLOCK_FILE]);
});

test('without kek or unlock file the keyring cannot be opened, and the error says why', async (t) => {
  const dir = await keysDir(t);
  await Keyring.open(dir);
  await rm(join(dir, KEK_FILE));
  await t.throwsAsync(() => keysDirState(dir), { message: /key-encryption key is missing/ });
});

test('shredFile overwrites before it unlinks, and is a no-op for a missing file', async (t) => {
  const dir = await keysDir(t);
  await Keyring.open(dir);
  t.true(await shredFile(join(dir, KEK_FILE)));
  t.false(await shredFile(join(dir, KEK_FILE)));
  t.deepEqual(await readdir(dir), ['deks']);
});

test('wrong unlock keys: three are taken back to back, then each waits twice as long as the last, up to a minute', (t) => {
  let now = 0;
  const attempts = new UnlockAttempts(() => now);
  t.is(attempts.recordFailure(), 0);
  t.is(attempts.recordFailure(), 0);
  t.is(attempts.waitMs(), 0);
  t.is(attempts.recordFailure(), FIRST_WAIT_MS);
  t.is(attempts.waitMs(), FIRST_WAIT_MS);
  now += FIRST_WAIT_MS;
  t.is(attempts.waitMs(), 0);
  t.is(attempts.recordFailure(), 2 * FIRST_WAIT_MS);
  for (let i = 0; i < 10; i++) attempts.recordFailure();
  t.is(attempts.waitMs(), MAX_WAIT_MS);
  t.is(attempts.failed, 14);
});
