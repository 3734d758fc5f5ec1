// apply --prune on the real ApiServer over the memory store: objects of the named stacks that the
// request no longer lists are deleted in the same transaction; tasks, nodes and other stacks stay;
// an object a remaining service still uses is not deleted and nothing is applied.
import test from 'ava';

import { loadManifestsFromText } from '../../cli/manifest/load.js';
import { choosePruned, pruneStackProblems } from '../../control-plane/api/prune-plan.js';
import type { Service, StackObject } from '../../common/resources/types.js';
import { objectKey } from '../../control-plane/store/keys.js';
import { memoryApi, stopMemoryApi } from '../helpers/memory-api.js';

async function fixture(t: { teardown(fn: () => Promise<void>): void }) {
  const api = await memoryApi('tessera-kube-prune-');
  t.teardown(() => stopMemoryApi(api));
  return { server: api.server, store: api.store };
}

const service = (name: string, stack: string, extra: Partial<Service['spec']> = {}): string =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name, stack }, spec: { image: 'busybox', ...extra } });
const config = (name: string, stack: string): string =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Config', metadata: { name, stack }, spec: { data: Buffer.from(name).toString('base64') } });

test('prune deletes what the files dropped, in their stacks only, and reports it', async (t) => {
  const { server, store } = await fixture(t);
  await server.apply([service('web', 'shop'), service('api', 'shop'), config('conf', 'shop'), service('other', 'blog')], false);
  await store.put(objectKey('Task', '', 'web.1'), JSON.stringify({ kind: 'Task', metadata: { name: 'web.1' } }));

  const dry = await server.apply([service('web', 'shop')], true, ['shop']);
  t.deepEqual(
    dry.map((r) => `${r.ref.kind}/${r.ref.name} ${r.action}`),
    ['Service/web unchanged', 'Service/api pruned', 'Config/conf pruned'],
  );
  t.truthy(await store.get(objectKey('Service', 'shop', 'api')), 'a dry run deletes nothing');

  const before = (await store.get(objectKey('Service', 'shop', 'web')))!.modRevision;
  const results = await server.apply([service('web', 'shop', { replicas: 2 })], false, ['shop']);
  t.deepEqual(
    results.map((r) => `${r.ref.kind}/${r.ref.name} ${r.action}`),
    ['Service/web configured', 'Service/api pruned', 'Config/conf pruned'],
  );
  const after = await store.get(objectKey('Service', 'shop', 'web'));
  t.is(await store.get(objectKey('Service', 'shop', 'api')), undefined);
  t.is(await store.get(objectKey('Config', 'shop', 'conf')), undefined);
  // One transaction: the update and the deletes share a revision.
  t.true(after!.modRevision > before);
  const { revision } = await store.range('/tessera/objects/');
  t.is(after!.modRevision, revision);
  t.truthy(await store.get(objectKey('Service', 'blog', 'other')), 'other stacks are untouched');
  t.truthy(await store.get(objectKey('Task', '', 'web.1')), 'tasks are never pruned');

  // Without --prune nothing is deleted.
  t.deepEqual(
    (await server.apply([service('solo', 'blog')], false)).map((r) => r.action),
    ['created'],
  );
  t.truthy(await store.get(objectKey('Service', 'blog', 'other')));
});

test('an object still used by a remaining service is not pruned, and nothing is applied', async (t) => {
  const { server, store } = await fixture(t);
  await server.apply([config('conf', 'shop'), service('web', 'shop', { configs: [{ source: 'conf', target: '/conf' }] })], false);
  // web is kept but still uses conf, which the files dropped: refused as a whole.
  const error = await t.throwsAsync(server.apply([service('web', 'shop', { configs: [{ source: 'conf', target: '/conf' }], replicas: 3 })], false, ['shop']));
  t.regex(error!.message, /prune: Config shop\/conf is not in the files but is still used by service\(s\) shop\/web/);
  t.not(JSON.parse((await store.get(objectKey('Service', 'shop', 'web')))!.value).spec.replicas, 3);
  // Dropping the reference in the same apply frees it.
  const results = await server.apply([service('web', 'shop')], false, ['shop']);
  t.deepEqual(
    results.map((r) => `${r.ref.kind}/${r.ref.name} ${r.action}`),
    ['Service/web configured', 'Config/conf pruned'],
  );
});

test('pure parts: bad stack names; choosing what to prune', (t) => {
  t.deepEqual(pruneStackProblems(['', 'ok', 'Bad_Name']), ['prune: "Bad_Name" is not a stack name (a DNS label, or "" for the default stack)']);
  const obj = (kind: StackObject['kind'], name: string): StackObject =>
    ({ apiVersion: 'tessera/v1', kind, metadata: { name, stack: 's' }, spec: kind === 'Service' ? { image: 'x' } : {} }) as StackObject;
  const kv = { key: '', value: '', createRevision: 1, modRevision: 1, version: 1 };
  const chosen = choosePruned(
    [
      { object: obj('Service', 'a'), kv },
      { object: obj('Network', 'n'), kv },
    ],
    [],
    new Set(['Service/s/a']),
    [],
  );
  t.deepEqual(
    chosen.pruned.map((p) => p.object.metadata.name),
    ['n'],
  );
  t.deepEqual(chosen.problems, []);
});

test('translated Kubernetes objects through the real server: a Job applies as a replicated job, the rest applies', async (t) => {
  const { server } = await fixture(t);
  const job = loadManifestsFromText(
    'apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: j, image: busybox}]\n',
    'job.yaml',
  );
  const planned = await server.apply(
    job.objects.map((o) => JSON.stringify(o)),
    true,
  );
  t.deepEqual(
    planned.map((r) => `${r.ref.kind}/${r.ref.name} ${r.action}`),
    ['Service/once created'],
  );
  t.is((planned[0]!.object as { spec: { mode?: string } }).spec.mode, 'replicated-job');
  const web = loadManifestsFromText(
    `apiVersion: v1
kind: ConfigMap
metadata: {name: site, namespace: shop}
data: {index.html: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: w, image: busybox, volumeMounts: [{name: site, mountPath: /www}]}
      volumes: [{name: site, configMap: {name: site}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, nodePort: 30080}]}
`,
    'web.yaml',
  );
  const results = await server.apply(
    web.objects.map((o) => JSON.stringify(o)),
    false,
  );
  t.deepEqual(
    results.map((r) => `${r.ref.kind}/${r.ref.stack}/${r.ref.name} ${r.action}`),
    ['Service/shop/web created', 'Config/shop/site.index.html created'],
  );
});
