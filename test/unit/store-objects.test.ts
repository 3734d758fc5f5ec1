import test from 'ava';
import { API_VERSION, type Node, type Service } from '../../common/resources/types.js';
import { kindPrefix, objectKey, parseObjectKey } from '../../control-plane/store/keys.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { AlreadyExistsError, ConflictError, NotFoundError, ObjectStore, canonicalJson, type ObjectEvent } from '../../control-plane/store/object-store.js';

function service(name: string, stack?: string, replicas = 1): Service {
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name, ...(stack !== undefined ? { stack } : {}) },
    spec: { image: 'busybox', replicas },
  };
}

function node(name: string): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'manager' },
    status: { state: 'ready', hostname: name, resources: { memoryBytes: 1 << 30, nanoCpus: 1e9 } },
  };
}

function fixture() {
  let uid = 0;
  const store = new MemoryStore();
  const objects = new ObjectStore(store, {
    newUid: () => `uid-${++uid}`,
    now: () => new Date('2024-01-01T00:00:00Z'),
  });
  return { store, objects };
}

test('keys: layout, default stack and round trip', (t) => {
  t.is(objectKey('Service', 'web', 'api'), '/tessera/objects/service/web/api');
  t.is(objectKey('Node', '', 'n1'), '/tessera/objects/node/_/n1');
  t.is(objectKey('Node', undefined, 'n1'), '/tessera/objects/node/_/n1');
  t.is(kindPrefix('Task'), '/tessera/objects/task/');
  t.is(kindPrefix('Task', ''), '/tessera/objects/task/_/');
  t.deepEqual(parseObjectKey('/tessera/objects/task/_/web.1.abc'), { kindSegment: 'task', stack: '', name: 'web.1.abc' });
  t.is(parseObjectKey('/elsewhere/x'), undefined);
  t.is(parseObjectKey('/tessera/objects/task/only-two'), undefined);
});

test('canonicalJson ignores key order', (t) => {
  t.is(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 2 } }), canonicalJson({ a: { c: 2, d: [1, { y: 2, z: 1 }] }, b: 1 }));
  t.not(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
});

test('create assigns uid, createdAt, generation and resourceVersion', async (t) => {
  const { objects, store } = fixture();
  const input: Service = { ...service('api', 'web'), metadata: { name: 'api', stack: 'web', uid: 'mine', resourceVersion: '99' } };
  const created = await objects.create(input);
  t.is(created.metadata.uid, 'uid-1');
  t.is(created.metadata.createdAt, '2024-01-01T00:00:00.000Z');
  t.is(created.metadata.generation, 1);
  t.is(created.metadata.resourceVersion, String(await store.currentRevision()));
  const read = await objects.get('Service', 'web', 'api');
  t.deepEqual(read, created);
  // resourceVersion lives in the key's revision, not in the stored JSON.
  const raw = JSON.parse((await store.get(objectKey('Service', 'web', 'api')))!.value) as Service;
  t.is(raw.metadata.resourceVersion, undefined);
});

test('create twice fails with AlreadyExistsError', async (t) => {
  const { objects } = fixture();
  await objects.create(service('api'));
  await t.throwsAsync(() => objects.create(service('api')), { instanceOf: AlreadyExistsError });
  // Same name in another stack is another object.
  await t.notThrowsAsync(() => objects.create(service('api', 'other')));
});

test('get of a missing object is undefined', async (t) => {
  const { objects } = fixture();
  t.is(await objects.get('Service', '', 'nope'), undefined);
});

test('list by kind and by stack, with the read revision', async (t) => {
  const { objects, store } = fixture();
  await objects.create(service('b', 's1'));
  await objects.create(service('a', 's1'));
  await objects.create(service('c'));
  await objects.create(node('n1'));
  const all = await objects.list('Service');
  t.deepEqual(
    all.items.map((s) => `${s.metadata.stack ?? ''}/${s.metadata.name}`),
    ['/c', 's1/a', 's1/b'],
  );
  t.is(all.revision, await store.currentRevision());
  t.true(all.items.every((s) => s.metadata.resourceVersion !== undefined));
  t.deepEqual(
    (await objects.list('Service', { stack: 's1' })).items.map((s) => s.metadata.name),
    ['a', 'b'],
  );
  t.deepEqual(
    (await objects.list('Service', { stack: '' })).items.map((s) => s.metadata.name),
    ['c'],
  );
  t.deepEqual(
    (await objects.list('Node')).items.map((n) => n.metadata.name),
    ['n1'],
  );
});

test('update is compare-and-swap on resourceVersion', async (t) => {
  const { objects } = fixture();
  const v1 = await objects.create(service('api'));
  const v2 = await objects.update({ ...v1, spec: { ...v1.spec, replicas: 3 } });
  t.not(v2.metadata.resourceVersion, v1.metadata.resourceVersion!);
  const err = await t.throwsAsync(() => objects.update({ ...v1, spec: { ...v1.spec, replicas: 5 } }), { instanceOf: ConflictError });
  t.is(err.expectedVersion, v1.metadata.resourceVersion!);
  t.is(err.actualVersion, v2.metadata.resourceVersion!);
  t.is((await objects.get('Service', '', 'api'))?.spec.replicas, 3);
});

test('update keeps uid and createdAt and bumps generation only on spec change', async (t) => {
  const { objects } = fixture();
  const v1 = await objects.create(service('api'));
  const statusOnly = await objects.update({ ...v1, metadata: { ...v1.metadata, uid: 'forged', createdAt: 'never' }, status: { runningTasks: 1 } });
  t.is(statusOnly.metadata.generation, 1);
  t.is(statusOnly.metadata.uid, v1.metadata.uid!);
  t.is(statusOnly.metadata.createdAt, v1.metadata.createdAt!);
  // Same spec, different key order: not a change.
  const reordered = await objects.update({ ...statusOnly, spec: { replicas: 1, image: 'busybox' } });
  t.is(reordered.metadata.generation, 1);
  const changed = await objects.update({ ...reordered, spec: { ...reordered.spec, image: 'nginx' } });
  t.is(changed.metadata.generation, 2);
});

test('update of a missing object fails with NotFoundError', async (t) => {
  const { objects } = fixture();
  await t.throwsAsync(() => objects.update(service('ghost')), { instanceOf: NotFoundError });
});

test('update without resourceVersion writes over the current version', async (t) => {
  const { objects } = fixture();
  await objects.create(service('api'));
  const updated = await objects.update(service('api', undefined, 4));
  t.is(updated.spec.replicas, 4);
  t.is(updated.metadata.generation, 2);
});

test('delete, with and without resourceVersion', async (t) => {
  const { objects } = fixture();
  const a = await objects.create(service('a'));
  await objects.create(service('b'));
  const updatedA = await objects.update({ ...a, status: { runningTasks: 2 } });
  await t.throwsAsync(() => objects.delete('Service', '', 'a', { resourceVersion: a.metadata.resourceVersion! }), { instanceOf: ConflictError });
  const gone = await objects.delete('Service', '', 'a', { resourceVersion: updatedA.metadata.resourceVersion! });
  t.is(gone.status?.runningTasks, 2);
  t.is(await objects.get('Service', '', 'a'), undefined);
  await objects.delete('Service', '', 'b');
  await t.throwsAsync(() => objects.delete('Service', '', 'b'), { instanceOf: NotFoundError });
});

test('updateWithRetry re-reads after a conflict', async (t) => {
  const { objects, store } = fixture();
  await objects.create(service('api'));
  let calls = 0;
  const result = await objects.updateWithRetry('Service', '', 'api', (s) => {
    calls++;
    // A competing writer sneaks in between our read and our write, the first time only.
    if (calls === 1) {
      const other = { ...structuredClone(s), status: { runningTasks: 7 } };
      void store.put(objectKey('Service', '', 'api'), JSON.stringify(other));
    }
    return { ...s, spec: { ...s.spec, replicas: (s.spec.replicas ?? 1) + 1 } };
  });
  t.is(calls, 2);
  const now = await objects.get('Service', '', 'api');
  t.is(now?.spec.replicas, 2);
  t.is(result?.spec.replicas, 2);
  t.is(now?.status?.runningTasks, 7, 'the competing write is not lost');
});

test('updateWithRetry: returning undefined writes nothing; missing object throws', async (t) => {
  const { objects, store } = fixture();
  await objects.create(service('api'));
  const before = await store.currentRevision();
  t.is(await objects.updateWithRetry('Service', '', 'api', () => undefined), undefined);
  t.is(await store.currentRevision(), before);
  await t.throwsAsync(() => objects.updateWithRetry('Service', '', 'ghost', (s) => s), { instanceOf: NotFoundError });
});

test('updateWithRetry gives up after repeated conflicts', async (t) => {
  const store = new MemoryStore();
  const objects = new ObjectStore(store, { maxUpdateAttempts: 3 });
  await objects.create(service('api'));
  let calls = 0;
  await t.throwsAsync(
    () =>
      objects.updateWithRetry('Service', '', 'api', (s) => {
        calls++;
        // Always lose the race: bump the key behind our own back.
        void store.put(objectKey('Service', '', 'api'), JSON.stringify(s));
        return { ...s, status: { runningTasks: calls } };
      }),
    { instanceOf: ConflictError },
  );
  t.is(calls, 3);
});

test('watch maps store events to added, modified and deleted objects', async (t) => {
  const { objects } = fixture();
  const seen: Array<ObjectEvent<Service>> = [];
  const w = await objects.watch('Service', 0, (events) => seen.push(...events));
  const created = await objects.create(service('api', 'web'));
  const updated = await objects.update({ ...created, spec: { ...created.spec, replicas: 2 } });
  await objects.create(node('n1'));
  const deleted = await objects.delete('Service', 'web', 'api');
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.deepEqual(
    seen.map((e) => [e.type, e.stack, e.name]),
    [
      ['added', 'web', 'api'],
      ['modified', 'web', 'api'],
      ['deleted', 'web', 'api'],
    ],
  );
  t.deepEqual(seen[0]?.object, created);
  t.deepEqual(seen[1]?.object, updated);
  t.is(seen[2]?.object.spec.replicas, 2);
  t.is(seen[2]?.object.metadata.resourceVersion, deleted.metadata.resourceVersion!);
  w.cancel();
});

test('watch from a list revision misses nothing', async (t) => {
  const { objects } = fixture();
  await objects.create(service('a'));
  const { revision } = await objects.list('Service');
  await objects.create(service('b'));
  const names: string[] = [];
  const w = await objects.watch('Service', revision + 1, (events) => names.push(...events.map((e) => e.name)));
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.deepEqual(names, ['b']);
  w.cancel();
});
