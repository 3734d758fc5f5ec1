import test from 'ava';
import { MemoryStore, StoreClosedError } from '../../control-plane/store/memory-store.js';
import type { WatchEvent } from '../../control-plane/store/store.js';
import { storeConformance } from '../helpers/store-conformance.js';

storeConformance('memory', async () => new MemoryStore());

// Behaviour specific to the memory backend, beyond the shared contract.

test('memory: a fresh store is at revision 1 and the first write makes 2 (like etcd)', async (t) => {
  const s = new MemoryStore();
  t.is(await s.currentRevision(), 1);
  t.is((await s.put('/a', '1')).revision, 2);
});

test('memory: writes complete before any watch handler runs', async (t) => {
  const s = new MemoryStore();
  let delivered = 0;
  await s.watch('/', 0, () => {
    delivered++;
  });
  for (let i = 0; i < 100; i++) await s.put(`/k${i}`, 'v');
  t.is(delivered, 0, 'delivery waits for a later turn of the event loop');
  await new Promise((resolve) => setImmediate(resolve));
  t.is(delivered, 100);
});

test('memory: a handler that throws ends its watch with onError, others keep going', async (t) => {
  const s = new MemoryStore();
  const errors: Error[] = [];
  let calls = 0;
  await s.watch(
    '/',
    0,
    () => {
      calls++;
      throw new Error('boom');
    },
    (err) => errors.push(err),
  );
  const good: WatchEvent[] = [];
  await s.watch('/', 0, (events) => good.push(...events));
  await s.put('/a', '1');
  await s.put('/b', '2');
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(calls, 1);
  t.is(errors[0]?.message, 'boom');
  t.is(good.length, 2);
});

test('memory: close reports StoreClosedError to watchers', async (t) => {
  const s = new MemoryStore();
  const errors: Error[] = [];
  await s.watch(
    '/',
    0,
    () => {},
    (err) => errors.push(err),
  );
  await s.close();
  await new Promise((resolve) => setImmediate(resolve));
  t.true(errors[0] instanceof StoreClosedError);
  await t.throwsAsync(() => s.range('/'), { instanceOf: StoreClosedError });
});

test('memory: compaction frees history of deleted keys', async (t) => {
  const s = new MemoryStore();
  for (let i = 0; i < 10; i++) await s.put(`/k${i}`, 'v');
  for (let i = 0; i < 10; i++) await s.delete(`/k${i}`);
  await s.compact(await s.currentRevision());
  t.deepEqual((await s.range('/')).kvs, []);
  const { revision } = await s.put('/k0', 'again');
  t.like(await s.get('/k0'), { createRevision: revision, version: 1 });
});
