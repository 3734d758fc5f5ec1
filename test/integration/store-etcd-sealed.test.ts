// The sealed store wrapper (control-plane/store/sealed-store.ts) over a real etcd (Debian's
// etcd-server, one member per test on loopback): the shared conformance suite through it, then
// what sealing adds: etcd holds no plaintext value, a value changed or moved in etcd directly is
// refused naming its key (reads and watches), managers sharing the store key share the keyring, a
// wrong store key is refused, and a store written in plaintext before is sealed at open.
import test from 'ava';
import { randomBytes } from 'node:crypto';

import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { SealedStore } from '../../control-plane/store/sealed-store.js';
import { KEYRING_KEY } from '../../control-plane/store/store-keyring.js';
import type { Store, WatchEvent } from '../../control-plane/store/store.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { storeConformance } from '../helpers/store-conformance.js';
import { until } from '../helpers/eventually.js';

const clusters = new Map<Store, EtcdCluster>();

storeConformance(
  'etcd sealed',
  async () => {
    const cluster = await startEtcdCluster();
    const store = await SealedStore.open(new EtcdStore({ endpoints: cluster.endpoints() }), randomBytes(32));
    clusters.set(store, cluster);
    return store;
  },
  async (store) => {
    try {
      await store.close();
    } finally {
      await clusters.get(store)?.stop();
      clusters.delete(store);
    }
  },
);

async function etcdWithKey(t: {
  teardown(fn: () => Promise<void>): void;
}): Promise<{ raw: EtcdStore; sealed: SealedStore; kek: Buffer; cluster: EtcdCluster }> {
  const cluster = await startEtcdCluster();
  const raw = new EtcdStore({ endpoints: cluster.endpoints() });
  const kek = randomBytes(32);
  const sealed = await SealedStore.open(new EtcdStore({ endpoints: cluster.endpoints() }), kek);
  t.teardown(async () => {
    await sealed.close();
    await raw.close();
    await cluster.stop();
  });
  return { raw, sealed, kek, cluster };
}

test('etcd holds only sealed values: no plaintext of a value in any key, the keyring hidden from ranges', async (t) => {
  const { raw, sealed } = await etcdWithKey(t);
  const marker = `marker-${randomBytes(8).toString('hex')}`;
  await sealed.put('/tessera/objects/secret/_/s1', JSON.stringify({ data: marker }));
  await sealed.txn({ compare: [], success: [{ type: 'put', key: '/tessera/objects/secret/_/s2', value: marker }], failure: [] });
  const all = await raw.range('/');
  t.true(
    all.kvs.some((kv) => kv.key === KEYRING_KEY),
    'the keyring is in etcd',
  );
  for (const kv of all.kvs) {
    t.false(kv.value.includes(marker), kv.key);
    t.false(kv.value.includes(Buffer.from(marker).toString('base64').slice(0, 12)), `${kv.key} (base64)`);
  }
  t.regex((await raw.get('/tessera/objects/secret/_/s1'))!.value, /^tsv1:1:/);
  t.is((await sealed.get('/tessera/objects/secret/_/s2'))?.value, marker);
  t.deepEqual(
    (await sealed.range('/')).kvs.map((kv) => kv.key),
    ['/tessera/objects/secret/_/s1', '/tessera/objects/secret/_/s2'],
    'the keyring is not shown',
  );
  await t.throwsAsync(sealed.put(KEYRING_KEY, 'x'), { message: /belongs to the store keyring/ });
  await t.throwsAsync(sealed.txn({ compare: [], success: [{ type: 'deletePrefix', prefix: '/' }] }), { message: /would delete the store keyring/ });
});

test('a value changed in etcd, or moved to another key, is refused naming the key; a watch ends with that error', async (t) => {
  const { raw, sealed } = await etcdWithKey(t);
  await sealed.put('/tessera/a', 'alpha');
  await sealed.put('/tessera/b', 'beta');
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  await sealed.watch(
    '/tessera/',
    (await sealed.currentRevision()) + 1,
    (evs) => events.push(...evs),
    (err) => errors.push(err),
  );
  // A bit flipped in the ciphertext.
  const a = (await raw.get('/tessera/a'))!.value;
  const body = Buffer.from(a.slice('tsv1:1:'.length), 'base64');
  body[body.length - 20]! ^= 1;
  await raw.put('/tessera/a', `tsv1:1:${body.toString('base64')}`);
  await t.throwsAsync(sealed.get('/tessera/a'), { message: /the value of "\/tessera\/a" does not open/ });
  await t.throwsAsync(sealed.range('/tessera/'), { message: /"\/tessera\/a"/ });
  await until('the watch failed', () => errors.length > 0, 5000);
  t.regex(errors[0]!.message, /the value of "\/tessera\/a" does not open/);
  t.deepEqual(events, [], 'nothing of the tampered revision was delivered');
  // b's sealed value copied under another key: sealed for b, it does not open as c.
  await raw.put('/tessera/c', (await raw.get('/tessera/b'))!.value);
  await t.throwsAsync(sealed.get('/tessera/c'), { message: /the value of "\/tessera\/c" does not open/ });
  // Plaintext written straight into etcd.
  await raw.put('/tessera/d', 'plain');
  await t.throwsAsync(sealed.get('/tessera/d'), { message: /the value of "\/tessera\/d" is not sealed/ });
  t.is((await sealed.get('/tessera/b'))?.value, 'beta', 'untouched values still open');
});

test('managers sharing the store key share the keyring; another key is refused; value compares are decided on plaintext', async (t) => {
  const { sealed, kek, cluster } = await etcdWithKey(t);
  const second = await SealedStore.open(new EtcdStore({ endpoints: cluster.endpoints() }), Buffer.from(kek));
  t.teardown(() => second.close());
  await sealed.put('/tessera/shared', 'one');
  t.is((await second.get('/tessera/shared'))?.value, 'one');
  const swapped = await second.txn({
    compare: [{ key: '/tessera/shared', target: 'value', op: '=', value: 'one' }],
    success: [{ type: 'put', key: '/tessera/shared', value: 'two' }],
    failure: [{ type: 'get', key: '/tessera/shared' }],
  });
  t.true(swapped.succeeded);
  const refused = await sealed.txn({
    compare: [{ key: '/tessera/shared', target: 'value', op: '=', value: 'one' }],
    success: [{ type: 'put', key: '/tessera/shared', value: 'three' }],
    failure: [{ type: 'get', key: '/tessera/shared' }],
  });
  t.false(refused.succeeded);
  t.deepEqual(refused.results[0], { type: 'get', kv: { ...(await sealed.get('/tessera/shared'))!, value: 'two' } });
  const wrong = new EtcdStore({ endpoints: cluster.endpoints() });
  await t.throwsAsync(SealedStore.open(wrong, randomBytes(32)), { message: /store key .* is not this cluster's/ });
  await wrong.close();
});

test('a store written in plaintext before is sealed at the first sealed open; plaintext is refused afterwards', async (t) => {
  const cluster = await startEtcdCluster();
  const raw = new EtcdStore({ endpoints: cluster.endpoints() });
  t.teardown(async () => {
    await raw.close();
    await cluster.stop();
  });
  await raw.put('/tessera/objects/service/_/web', '{"old":true}');
  const logs: string[] = [];
  const sealed = await SealedStore.open(new EtcdStore({ endpoints: cluster.endpoints() }), randomBytes(32), (line) => logs.push(line));
  t.teardown(() => sealed.close());
  t.regex(logs.join('\n'), /1 plaintext value\(s\) under \/tessera\/ sealed/);
  t.regex((await raw.get('/tessera/objects/service/_/web'))!.value, /^tsv1:/);
  t.is((await sealed.get('/tessera/objects/service/_/web'))?.value, '{"old":true}');
  await raw.put('/tessera/objects/service/_/late', 'plain');
  await t.throwsAsync(sealed.get('/tessera/objects/service/_/late'), { message: /is not sealed/ });
});
