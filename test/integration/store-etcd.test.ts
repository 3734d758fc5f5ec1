// The shared store conformance suite against a real etcd (Debian's etcd-server): every test gets
// its own single-member etcd on loopback (about 0.3 s to start), so compaction in one test cannot
// touch another's history. Plus etcd-specific behaviour: resuming a watch when a member dies.
import test from 'ava';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import type { Store, WatchEvent } from '../../control-plane/store/store.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { storeConformance } from '../helpers/store-conformance.js';

const clusters = new Map<Store, EtcdCluster>();

storeConformance(
  'etcd',
  async () => {
    const cluster = await startEtcdCluster();
    const store = new EtcdStore({ endpoints: cluster.endpoints() });
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

test('etcd: endpoints are validated', (t) => {
  t.throws(() => new EtcdStore({ endpoints: [] }), { message: /at least one endpoint/ });
  t.throws(() => new EtcdStore({ endpoints: ['127.0.0.1:2379'] }), { message: /"127.0.0.1:2379" is not http/ });
});

test('etcd: a 3-member cluster keeps serving and watches resume when a member is killed', async (t) => {
  const cluster = await startEtcdCluster({ members: 3 });
  const store = new EtcdStore({ endpoints: cluster.endpoints() });
  t.teardown(async () => {
    await store.close();
    await cluster.stop();
  });
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  await store.watch(
    '/resume/',
    1,
    (evs) => events.push(...evs),
    (err) => errors.push(err),
  );
  for (let i = 0; i < 20; i++) await store.put(`/resume/k${i}`, String(i));
  await cluster.kill(cluster.members[0]!);
  await cluster.kill(cluster.members[0]!); // idempotent
  // Writes may fail while the client notices the dead member; retry each one until it lands.
  for (let i = 20; i < 40; i++) {
    for (let attempt = 0; ; attempt++) {
      try {
        await store.put(`/resume/k${i}`, String(i));
        break;
      } catch (err) {
        if (attempt > 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  const deadline = Date.now() + 15_000;
  while (new Set(events.map((e) => e.kv.key)).size < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(errors, []);
  const revisions = events.map((e) => e.kv.modRevision);
  t.deepEqual(
    revisions,
    [...new Set(revisions)].sort((a, b) => a - b),
    'each revision once, in order',
  );
  t.is(new Set(events.map((e) => e.kv.key)).size, 40);
});
