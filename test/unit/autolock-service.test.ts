// The Autolock service of a running manager and the keeper behind it, on a real (memory) store and
// a real keyring in a temporary directory: who may read or change the unlock key, what the audit
// log is told (never the key), the record's validation, and the keeper following the record.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { AuditRecord } from '../../control-plane/api/server.js';
import type { Caller } from '../../control-plane/auth/caller.js';
import { Keyring } from '../../control-plane/raft/storage/keyring.js';
import { lockKeyring, unlockKeyringForGood, unlockedKek } from '../../control-plane/raft/storage/keyring-lock.js';
import { newUnlockKey, parseUnlockKey } from '../../control-plane/raft/storage/unlock-key.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { AutolockKeeper, type ProtectedKeys } from '../../daemon/autolock-keeper.js';
import type { AutolockHandlers } from '../../daemon/autolock-proto.js';
import { autolockHandlers } from '../../daemon/autolock-service.js';
import { AUTOLOCK_KEY, formatAutolockRecord, parseAutolockRecord } from '../../daemon/autolock-state.js';

/** The keyring of one manager, in a directory of its own, as DiskRaftStorage.protectKeys changes it. */
async function keyringKeys(t: { teardown(fn: () => Promise<void>): void }): Promise<{ dir: string; keys: ProtectedKeys }> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-autolock-svc-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'keys');
  const keyring = await Keyring.open(dir);
  return {
    dir,
    keys: { what: 'Raft data keys', kekFile: 'keys/kek', protectKeys: (key) => (key ? lockKeyring(dir, keyring, key) : unlockKeyringForGood(dir, keyring)) },
  };
}

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/** Calls a handler as grpc-js would, with `caller` as the authenticated caller. */
function callAs<Req, Res>(handler: Unary<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = { request, getPeer: () => 'test' } as unknown as grpc.ServerUnaryCall<Req, Res>;
    handler(call, (err, value) => (err ? reject(err as Error) : resolve(value as Res)));
  });
}

async function service(t: { teardown(fn: () => Promise<void>): void }, caller: { current: Caller }) {
  const store = new MemoryStore();
  const { dir, keys } = await keyringKeys(t);
  const keeper = await AutolockKeeper.start(store, keys, () => undefined);
  t.teardown(async () => keeper.close());
  const audited: AuditRecord[] = [];
  const handlers: AutolockHandlers = autolockHandlers({ keeper, authenticate: () => caller.current, audit: (r) => audited.push(r), node: 'mgr-1' });
  return { store, dir, keeper, audited, handlers };
}

const ROOT: Caller = { kind: 'local-root' };
const ADMIN: Caller = { kind: 'user', name: 'alice', role: 'admin', serial: '01' };
const OPERATOR: Caller = { kind: 'user', name: 'bob', role: 'operator', serial: '02' };
const MANAGER: Caller = { kind: 'node', nodeId: 'mgr-2', role: 'manager', serial: '03' };

test('turning autolock on gives the key once, re-wraps this manager, and the key is never in the audit log', async (t) => {
  const caller: { current: Caller } = { current: ROOT };
  const { handlers, dir, audited } = await service(t, caller);
  const on = await callAs(handlers.SetAutolock, { enabled: true });
  t.true(on.changed);
  t.regex(on.unlockKey, /^TSUK-1-/);
  t.deepEqual((await readdir(dir)).sort(), ['deks', 'unlock']);
  t.truthy(await unlockedKek(dir, parseUnlockKey(on.unlockKey)));
  const again = await callAs(handlers.SetAutolock, { enabled: true });
  t.deepEqual(again, { changed: false, unlockKey: '' });
  t.is((await callAs(handlers.UnlockKey, { rotate: false })).unlockKey, on.unlockKey);
  t.deepEqual(
    audited.map((r) => r.method),
    ['SetAutolock', 'SetAutolock', 'UnlockKey'],
  );
  t.false(JSON.stringify(audited).includes(on.unlockKey.slice(7)));
  t.deepEqual(await callAs(handlers.Status, {}), { locked: false, autolock: true, node: 'mgr-1' });
});

test('rotation re-wraps under the new key; off writes a kek file again and there is no key to show', async (t) => {
  const caller: { current: Caller } = { current: ADMIN };
  const { handlers, dir } = await service(t, caller);
  const first = (await callAs(handlers.SetAutolock, { enabled: true })).unlockKey;
  const second = (await callAs(handlers.UnlockKey, { rotate: true })).unlockKey;
  t.not(second, first);
  t.truthy(await unlockedKek(dir, parseUnlockKey(second)));
  t.is(await unlockedKek(dir, parseUnlockKey(first)), undefined);
  t.true((await callAs(handlers.SetAutolock, { enabled: false })).changed);
  t.deepEqual((await readdir(dir)).sort(), ['deks', 'kek']);
  await t.throwsAsync(() => callAs(handlers.UnlockKey, { rotate: false }), { message: /autolock is off/ });
  await t.throwsAsync(() => callAs(handlers.UnlockKey, { rotate: true }), { message: /autolock is off/ });
  await t.throwsAsync(() => callAs(handlers.Unlock, { unlockKey: second }), { message: /not locked/ });
});

test('operators and manager certificates may not read or change the key; each refusal is audited', async (t) => {
  const caller: { current: Caller } = { current: ROOT };
  const { handlers, audited } = await service(t, caller);
  await callAs(handlers.SetAutolock, { enabled: true });
  for (const who of [OPERATOR, MANAGER]) {
    caller.current = who;
    const err = await t.throwsAsync(() => callAs(handlers.UnlockKey, { rotate: false }));
    t.is((err as grpc.ServiceError).code, grpc.status.PERMISSION_DENIED);
    t.regex(err.message, /admins only/);
    await t.throwsAsync(() => callAs(handlers.SetAutolock, { enabled: false }), { message: /admins only/ });
  }
  await t.throwsAsync(() => callAs(handlers.Status, {}), { message: /may not call Status/ });
  t.is(audited.filter((r) => r.error !== undefined).length, 4);
});

test('a manager follows the record written by another: on, rotated and off', async (t) => {
  const store = new MemoryStore();
  const { dir, keys } = await keyringKeys(t);
  const keeper = await AutolockKeeper.start(store, keys, () => undefined);
  t.teardown(async () => keeper.close());
  const key = newUnlockKey();
  await store.put(AUTOLOCK_KEY, formatAutolockRecord({ enabled: true, unlockKey: key }));
  const opens = async (k: string) => (await unlockedKek(dir, parseUnlockKey(k)).catch(() => undefined)) !== undefined;
  const until = async (what: () => Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await what()); i++) await new Promise((r) => setTimeout(r, 20));
    return what();
  };
  t.true(await until(() => opens(key)));
  const next = newUnlockKey();
  await store.put(AUTOLOCK_KEY, formatAutolockRecord({ enabled: true, unlockKey: next }));
  t.true(await until(() => opens(next)));
  await store.put(AUTOLOCK_KEY, formatAutolockRecord({ enabled: false }));
  t.true(await until(async () => (await readdir(dir)).sort().join() === 'deks,kek'));
});

test('the record is validated, and its errors never quote the key', (t) => {
  const key = newUnlockKey();
  t.deepEqual(parseAutolockRecord(formatAutolockRecord({ enabled: true, unlockKey: key })), { enabled: true, unlockKey: key });
  t.deepEqual(parseAutolockRecord('{"enabled":false,"unlockKey":"ignored"}'), { enabled: false });
  t.throws(() => parseAutolockRecord('{"enabled":true}'), { message: /holds no unlock key/ });
  const err = t.throws(() => parseAutolockRecord(JSON.stringify({ enabled: true, unlockKey: `${key}x` })));
  t.false(err.message.includes(key.slice(7, 20)));
  t.throws(() => parseAutolockRecord('nope'), { message: /not JSON/ });
});
