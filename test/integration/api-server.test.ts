// The gRPC API against a real server on a unix socket with the memory store: apply semantics
// (created / unchanged / configured, all-or-nothing, dry run), server-side validation, get, list,
// scale, delete and watch. No containers: nothing here needs a node.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';

import type { Node, Service } from '../../common/resources/types.js';
import { loadApiPackage } from '../../proto/load.js';
import { objectKey } from '../../control-plane/store/keys.js';
import type { WatchEvent__Output } from '../../proto/gen/tessera/api/v1/WatchEvent.js';
import { ApiCallError } from '../../cli/client.js';
import { serveMemoryApi, stopMemoryApi, type ServedMemoryApi } from '../helpers/memory-api.js';

type Fixture = ServedMemoryApi;

function startFixture(): Promise<Fixture> {
  return serveMemoryApi('tessera-api-');
}

function stopFixture(f: Fixture): Promise<void> {
  return stopMemoryApi(f);
}

function service(name: string, replicas = 1, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name, stack: 'app' }, spec: { image: 'busybox', replicas, ...extra } });
}

test('apply creates, leaves unchanged, then configures with a new generation', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const first = await f.client.apply({ objectsJson: [service('web', 2)] });
  t.is(first.results[0]!.action, 'created');
  const created = JSON.parse(first.results[0]!.objectJson) as Service;
  t.is(created.metadata.generation, 1);
  t.truthy(created.metadata.uid);

  t.is((await f.client.apply({ objectsJson: [service('web', 2)] })).results[0]!.action, 'unchanged');

  const changed = await f.client.apply({ objectsJson: [service('web', 2, { env: { A: '1' } })] });
  t.is(changed.results[0]!.action, 'configured');
  const updated = JSON.parse(changed.results[0]!.objectJson) as Service;
  t.is(updated.metadata.generation, 2);
  t.is(updated.metadata.uid, created.metadata.uid, 'the uid survives updates');
});

test('a bad object rejects the whole request, naming the object and field', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const err = await t.throwsAsync(f.client.apply({ objectsJson: [service('good'), service('bad', 1, { replicas: 'three' }), '{not json'] }), {
    instanceOf: ApiCallError,
  });
  t.is(err!.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err!.message, /object 2: spec\.replicas/);
  t.regex(err!.message, /object 3: not valid JSON/);
  const list = await f.client.list({ kind: 'Service', allStacks: true });
  t.deepEqual(list.objectsJson, [], 'nothing was applied');

  const unknown = await t.throwsAsync(f.client.apply({ objectsJson: [service('x', 1, { colour: 'blue' })] }));
  t.regex(unknown!.message, /colour/);
});

test('dry run validates and plans without writing', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [service('web')], dryRun: true });
  t.is(res.results[0]!.action, 'created');
  t.deepEqual((await f.client.list({ kind: 'Service', allStacks: true })).objectsJson, []);
});

test('get, list by stack, scale and delete', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  await f.client.apply({ objectsJson: [service('web'), service('api')] });
  t.is((await f.client.list({ kind: 'services', stack: 'app' })).objectsJson.length, 2);
  t.is((await f.client.list({ kind: 'Service', stack: 'other' })).objectsJson.length, 0);

  const before = (await f.server.get('Service', 'app', 'web')) as Service;
  const scaled = JSON.parse((await f.client.scale({ ref: { kind: 'Service', stack: 'app', name: 'web' }, replicas: 4 })).objectJson) as Service;
  t.is(scaled.spec.replicas, 4);
  // A scale changes the spec, so the service gets a new generation, as an apply of the same change would.
  t.is(scaled.metadata.generation, (before.metadata.generation ?? 1) + 1);
  t.is(scaled.metadata.uid, before.metadata.uid);
  const again = JSON.parse((await f.client.scale({ ref: { kind: 'Service', stack: 'app', name: 'web' }, replicas: 4 })).objectJson) as Service;
  t.is(again.metadata.resourceVersion, scaled.metadata.resourceVersion, 'scaling to the replicas it has writes nothing');

  const missing = await t.throwsAsync(f.client.scale({ ref: { kind: 'Service', stack: 'app', name: 'nope' }, replicas: 1 }), { instanceOf: ApiCallError });
  t.is(missing!.code, grpc.status.NOT_FOUND);
  t.regex(missing!.message, /service "nope" not found in stack "app"/);

  const deleted = await f.client.delete({
    refs: [
      { kind: 'Service', stack: 'app', name: 'web' },
      { kind: 'Service', stack: 'app', name: 'ghost' },
    ],
  });
  t.deepEqual(
    deleted.deleted.map((r) => r.name),
    ['web'],
  );
  t.deepEqual(
    deleted.notFound.map((r) => r.name),
    ['ghost'],
  );

  const taskDelete = await t.throwsAsync(f.client.delete({ refs: [{ kind: 'Task', stack: 'app', name: 'web.1.x' }] }));
  t.regex(taskDelete!.message, /managed by the system/);
  const badKind = await t.throwsAsync(f.client.list({ kind: 'Gadget' }));
  t.regex(badKind!.message, /unknown kind "Gadget"/);
});

test('node update: labels and availability change against the stored node; a missing node is NOT_FOUND', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const node: Node = {
    apiVersion: 'tessera/v1',
    kind: 'Node',
    metadata: { name: 'n1', uid: 'u1' },
    spec: { availability: 'active', role: 'worker', labels: { zone: 'a', old: 'x' } },
    status: { state: 'ready', hostname: 'n1', resources: { memoryBytes: 1 << 30, nanoCpus: 1e9 } },
  };
  await f.store.put(objectKey('Node', '', 'n1'), JSON.stringify(node));
  const updated = JSON.parse(
    (await f.client.updateNode({ name: 'n1', availability: 'drain', addLabels: { zone: 'b' }, removeLabels: ['old'] })).objectJson,
  ) as Node;
  t.is(updated.spec.availability, 'drain');
  t.deepEqual(updated.spec.labels, { zone: 'b' });
  t.is(updated.metadata.uid, 'u1');
  const stored = (await f.server.get('Node', '', 'n1')) as Node;
  t.deepEqual(stored.spec, updated.spec);
  t.is(stored.metadata.resourceVersion, updated.metadata.resourceVersion);

  const missing = await t.throwsAsync(f.client.updateNode({ name: 'ghost', availability: '', addLabels: {}, removeLabels: [] }), { instanceOf: ApiCallError });
  t.is(missing.code, grpc.status.NOT_FOUND);
  t.regex(missing.message, /node "ghost" not found/);
});

test('watch streams added, modified and deleted events from a revision', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const start = (await f.client.list({ kind: 'Service', allStacks: true })).revision;
  await f.client.apply({ objectsJson: [service('web')] });
  await f.client.scale({ ref: { kind: 'Service', stack: 'app', name: 'web' }, replicas: 3 });
  await f.client.delete({ refs: [{ kind: 'Service', stack: 'app', name: 'web' }] });

  const pkg = loadApiPackage();
  const raw = new pkg.tessera.api.v1.Tessera(f.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const events = await new Promise<WatchEvent__Output[]>((resolve, reject) => {
    const got: WatchEvent__Output[] = [];
    const stream = raw.watch({ kind: 'Service', allStacks: true, fromRevision: start + 1 });
    stream.on('data', (e: WatchEvent__Output) => {
      got.push(e);
      if (got.length === 3) {
        stream.cancel();
        resolve(got);
      }
    });
    stream.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)));
  });
  t.deepEqual(
    events.map((e) => e.type),
    ['added', 'modified', 'deleted'],
  );
  t.is((JSON.parse(events[1]!.objectJson) as Service).spec.replicas, 3);
  t.true(events[0]!.revision < events[1]!.revision && events[1]!.revision < events[2]!.revision);
});

// ---- size limits (issue 12 §5) ----

async function storeDump(f: Fixture): Promise<string[]> {
  const { kvs } = await f.store.range('');
  return kvs.map((kv) => `${kv.key}@${kv.modRevision}`);
}

test('replicas: Apply and Scale refuse more than 100000 with the same limit, and nothing is written', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  await f.client.apply({ objectsJson: [service('web')] });
  const before = await storeDump(f);
  for (const replicas of [100_001, 1_000_000, Number.MAX_SAFE_INTEGER]) {
    const err = await t.throwsAsync(f.client.apply({ objectsJson: [service('other'), service('web', replicas)] }), { instanceOf: ApiCallError });
    t.is(err!.code, grpc.status.INVALID_ARGUMENT);
    t.regex(err!.message, /object 2: spec\.replicas: expected at most 100000, the most replicas a service may have/);
  }
  const scale = await t.throwsAsync(f.client.scale({ ref: { kind: 'Service', stack: 'app', name: 'web' }, replicas: 100_001 }), { instanceOf: ApiCallError });
  t.regex(scale!.message, /replicas must be an integer from 0 to 100000, got 100001/);
  t.deepEqual(await storeDump(f), before, 'the store is unchanged');
  t.is((await f.client.apply({ objectsJson: [service('web', 100_000)] })).results[0]!.action, 'configured');
});

test('an unknown key of a megabyte gets a short error at once (it was 32 MB, after 3.9 s per MB)', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const key = 'k'.repeat(1024 * 1024);
  const err = await t.throwsAsync(f.client.apply({ objectsJson: [service('web', 1, { [key]: 1 })] }), { instanceOf: ApiCallError });
  t.is(err!.code, grpc.status.INVALID_ARGUMENT);
  t.true(Buffer.byteLength(err!.message) < 1024, `error of ${Buffer.byteLength(err!.message)} bytes`);
  t.regex(err!.message, /object 1: spec\."k{32}"…"k{32}" \(1048576 characters\): unknown field "k{32}"…"k{32}" \(1048576 characters\)/);
});

test('every error message is at most 4 KiB and says how much was cut', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const objects = Array.from({ length: 1000 }, (_, i) => service(`web${i}`, 1, { colour: 'blue' }));
  const err = await t.throwsAsync(f.client.apply({ objectsJson: objects }), { instanceOf: ApiCallError });
  t.true(Buffer.byteLength(err!.message) <= 4096, `error of ${Buffer.byteLength(err!.message)} bytes`);
  t.regex(err!.message, /^nothing applied; 1000 problem\(s\):/);
  t.regex(err!.message, /… \[\d+ more bytes of this message cut\]$/);
});

test('a request over 4 MiB is refused by the server, by the gRPC limit and by its own check; names over 253 bytes too', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  // Five objects of 900 KiB each: every one valid on its own (an env value), 4.4 MiB together.
  const big = (i: number) => service(`web${i}`, 1, { env: { PAD: 'x'.repeat(900 * 1024) } });
  const objectsJson = [0, 1, 2, 3, 4].map(big);

  // A client without a send limit: the server does not even read the message.
  const pkg = loadApiPackage();
  const raw = new pkg.tessera.api.v1.Tessera(f.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const refused = await new Promise<grpc.ServiceError | null>((resolve) => raw.apply({ objectsJson }, (err: grpc.ServiceError | null) => resolve(err)));
  t.is(refused?.code, grpc.status.RESOURCE_EXHAUSTED);
  // tsctl's client refuses to send it at all.
  const fromCli = await t.throwsAsync(f.client.apply({ objectsJson }), { instanceOf: ApiCallError });
  t.is(fromCli!.code, grpc.status.RESOURCE_EXHAUSTED);
  // Where the API shares a server whose limit is larger (tsd serves Raft on it), Apply checks itself.
  const direct = await t.throwsAsync(f.server.apply(objectsJson, false));
  t.regex(
    direct!.message,
    /^apply: nothing applied; the request is (at least )?\d+ bytes, more than the 4194304 \(4 MiB\) allowed; split it into several applies$/,
  );
  t.deepEqual(await storeDump(f), [], 'nothing was written');
  t.is((await f.client.apply({ objectsJson: objectsJson.slice(0, 4) })).results.length, 4, '3.5 MiB is taken');

  const longName = 'n'.repeat(254);
  const scale = await t.throwsAsync(f.client.scale({ ref: { kind: 'Service', stack: 'app', name: longName }, replicas: 1 }), { instanceOf: ApiCallError });
  t.is(scale!.code, grpc.status.INVALID_ARGUMENT);
  t.regex(scale!.message, /^scale: name "n{32}"…"n{32}" \(254 characters\) is longer than 253 bytes$/);
  const del = await t.throwsAsync(f.client.delete({ refs: [{ kind: 'Service', stack: 'é'.repeat(127), name: 'web0' }] }), { instanceOf: ApiCallError });
  t.regex(del!.message, /stack .* is longer than 253 bytes/, '127 characters of 2 bytes each');
});
