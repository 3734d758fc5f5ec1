// Secret, Config and Volume objects in the API server's apply/get/delete: validation, the 500 KiB
// limit, immutability, reference checks and redaction. The real ApiServer on the memory store
// (no gRPC, no node), plus the pure planning functions.
import test from 'ava';

import { decodedSize, missingReferences, planStackFile, redactObject, REDACTED, servicesUsing } from '../../control-plane/api/stack-objects.js';
import type { Secret, Service } from '../../common/resources/types.js';
import { memoryApi, stopMemoryApi } from '../helpers/memory-api.js';

async function fixture(t: { teardown(fn: () => Promise<void>): void }) {
  const api = await memoryApi('tessera-stack-objects-');
  t.teardown(() => stopMemoryApi(api));
  return { server: api.server, store: api.store };
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const secret = (name: string, data: string, stack = 'app', labels?: Record<string, string>) =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name, ...(stack ? { stack } : {}), ...(labels ? { labels } : {}) }, spec: { data } });
const config = (name: string, data: string, stack = 'app') =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Config', metadata: { name, stack }, spec: { data } });
const volume = (name: string, driverOpts?: Record<string, string>, stack = 'app') =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Volume', metadata: { name, stack }, spec: { driver: 'local', ...(driverOpts ? { driverOpts } : {}) } });
const service = (name: string, spec: Record<string, unknown>, stack = 'app') =>
  JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name, stack }, spec: { image: 'busybox', ...spec } });

test('apply creates secrets, configs and volumes with the service that uses them, in one request', async (t) => {
  const { server } = await fixture(t);
  const results = await server.apply(
    [
      secret('pw', b64('hunter2')),
      config('conf', b64('a=1\n')),
      volume('data'),
      service('web', {
        secrets: [{ source: 'pw', target: 'pw' }],
        configs: [{ source: 'conf', target: '/etc/conf' }],
        mounts: [{ type: 'volume', source: 'data', target: '/data' }],
      }),
    ],
    false,
  );
  t.deepEqual(results.map((r) => `${r.ref.kind}/${r.ref.name}:${r.action}`).sort(), [
    'Config/conf:created',
    'Secret/pw:created',
    'Service/web:created',
    'Volume/data:created',
  ]);
  const stored = (await server.get('Secret', 'app', 'pw')) as Secret;
  t.is(stored.status?.sizeBytes, 7);
  t.is(stored.spec.data, b64('hunter2'), 'stored as given (the gRPC layer redacts)');
  const again = await server.apply([secret('pw', b64('hunter2'))], false);
  t.is(again[0]!.action, 'unchanged');
  const relabelled = await server.apply([secret('pw', b64('hunter2'), 'app', { team: 'a' })], false);
  t.is(relabelled[0]!.action, 'configured', 'labels may change');
});

test('a secret or config with new data is refused: they are immutable', async (t) => {
  const { server } = await fixture(t);
  await server.apply([secret('pw', b64('one')), config('conf', b64('x'))], false);
  const err = await t.throwsAsync(server.apply([secret('pw', b64('two'))], false));
  t.regex(err!.message, /Secret app\/pw: secrets are immutable: new data needs a new name/);
  const cerr = await t.throwsAsync(server.apply([config('conf', b64('y'))], false));
  t.regex(cerr!.message, /Config app\/conf: configs are immutable/);
  await server.apply([volume('v')], false);
  const verr = await t.throwsAsync(server.apply([volume('v', { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' })], false));
  t.regex(verr!.message, /Volume app\/v: a volume's driver options cannot change/);
  t.is(((await server.get('Secret', 'app', 'pw')) as Secret).spec.data, b64('one'));
});

test('validation names the field: bad base64, size limit, bad name', async (t) => {
  const { server } = await fixture(t);
  const bad = await t.throwsAsync(server.apply([secret('pw', 'not base64!')], false));
  t.regex(bad!.message, /object 1: spec\.data: expected base64 data/);
  const big = await t.throwsAsync(server.apply([secret('big', Buffer.alloc(500 * 1024 + 1).toString('base64'))], false));
  t.regex(big!.message, /object 1: spec\.data: Secret big holds 512001 bytes; at most 512000/);
  const name = await t.throwsAsync(server.apply([config('a/b', b64('x'))], false));
  t.regex(name!.message, /object 1: metadata\.name: expected a name of letters/);
  const unknown = await t.throwsAsync(
    server.apply([JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Volume', metadata: { name: 'v' }, spec: { driver: 'nfs' } })], false),
  );
  t.regex(unknown!.message, /object 1: spec\.driver/);
});

test('a service referring to a missing secret, config or volume is refused with its name; nothing applied', async (t) => {
  const { server, store } = await fixture(t);
  const err = await t.throwsAsync(
    server.apply(
      [
        secret('present', b64('x')),
        service('web', {
          secrets: [{ source: 'nope', target: 'nope' }],
          configs: [{ source: 'gone', target: '/gone' }],
          mounts: [
            { type: 'volume', source: 'missing', target: '/m' },
            { type: 'volume', target: '/anon' },
          ],
        }),
      ],
      false,
    ),
  );
  t.regex(err!.message, /Service web: spec\.secrets\.0\.source: Secret "nope" does not exist in stack "app"/);
  t.regex(err!.message, /Service web: spec\.configs\.0\.source: Config "gone" does not exist/);
  t.regex(err!.message, /Service web: spec\.mounts\.0\.source: Volume "missing" does not exist/);
  t.notRegex(err!.message, /anon/, 'anonymous volumes need no object');
  t.is((await store.range('/tessera/objects/')).kvs.length, 0, 'nothing was applied');
});

test('two mounts, secrets or configs at one target are refused at apply', async (t) => {
  const { server } = await fixture(t);
  const err = await t.throwsAsync(
    server.apply(
      [
        secret('pw', b64('x')),
        config('conf', b64('y')),
        service('web', {
          secrets: [
            { source: 'pw', target: 'pw' },
            { source: 'pw', target: '/run/secrets/pw/' },
          ],
          configs: [{ source: 'conf', target: 'data' }],
          mounts: [{ type: 'tmpfs', target: '/data' }],
        }),
      ],
      false,
    ),
  );
  t.regex(err!.message, /Service web: spec\.secrets\.1: target \/run\/secrets\/pw is already used by spec\.secrets\.0/);
  t.regex(err!.message, /Service web: spec\.configs\.0: target \/data is already used by spec\.mounts\.0/);
});

test('external objects: a service may use a secret of the default stack', async (t) => {
  const { server } = await fixture(t);
  await server.apply([secret('shared', b64('s'), '')], false);
  const results = await server.apply([service('web', { secrets: [{ source: 'shared', target: 'shared' }] })], false);
  t.is(results[0]!.action, 'created');
  const other = await t.throwsAsync(server.apply([secret('x', b64('x'), 'other'), service('api', { secrets: [{ source: 'x', target: 'x' }] })], false));
  t.regex(other!.message, /Secret "x" does not exist in stack "app"/, "another stack's secret is not visible");
});

test('planStackFile and the pure helpers', (t) => {
  const now = new Date('2026-01-01T00:00:00Z');
  const s: Secret = { apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 'pw', stack: 'app' }, spec: { data: b64('abcd') } };
  const created = planStackFile(undefined, s, now, () => 'uid-1');
  t.true(
    created.ok &&
      created.action === 'created' &&
      created.object.metadata.uid === 'uid-1' &&
      created.object.kind === 'Secret' &&
      created.object.status?.sizeBytes === 4,
  );
  t.is(decodedSize(b64('a')), 1);
  t.is(decodedSize(b64('ab')), 2);
  t.is(decodedSize(''), 0);
  const redacted = redactObject(s);
  t.is(redacted.spec.data, REDACTED);
  t.is(s.spec.data, b64('abcd'), 'the original is untouched');
  const web: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'web', stack: 'app' },
    spec: { image: 'x', secrets: [{ source: 'pw', target: 'pw' }] },
  };
  t.deepEqual(
    missingReferences([web], (kind, stack, name) => kind === 'Secret' && stack === '' && name === 'pw'),
    [],
  );
  t.is(missingReferences([web], () => false).length, 1);
  t.deepEqual(servicesUsing('Secret', 'app', 'pw', [web]), ['app/web']);
  t.deepEqual(servicesUsing('Secret', 'other', 'pw', [web]), []);
});

test('deleting a secret in use is refused; once the service is gone it is deleted', async (t) => {
  const { server, store } = await fixture(t);
  await server.apply([secret('pw', b64('x')), service('web', { secrets: [{ source: 'pw', target: 'pw' }] })], false);
  const { deletionBlocker } = await import('../../control-plane/api/stack-objects.js');
  t.regex((await deletionBlocker(store, 'Secret', 'app', 'pw')) ?? '', /Secret app\/pw is in use by service\(s\) app\/web/);
  t.is(await deletionBlocker(store, 'Secret', 'app', 'pw', new Set(['app/web'])), undefined, 'deleted in the same request as its service');
  await store.delete('/tessera/objects/service/app/web');
  t.is(await deletionBlocker(store, 'Secret', 'app', 'pw'), undefined);
});
