// Pushing images from the node's image store to a real registry (Debian's docker-registry on
// 127.0.0.1): a loaded busybox pushed under a new name is pulled back by that name into a fresh
// store with the same digest; a second push finds every blob there; basic and token auth; and
// failures (no such image, no registry named, a closed port, bad credentials) are clear errors
// naming the registry, the repository and the step; and the ImagePush RPC of the API server.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ImageNotFoundError, LocalImageStore, type LocalImageStoreOptions } from '../../agent/images/image-store.js';
import { InvalidReferenceError } from '../../common/images/reference.js';
import type { PushProgress } from '../../common/images/types.js';
import { BUSYBOX_IMAGE_REFERENCE, type BusyboxImage, buildBusyboxImage } from '../helpers/busybox-image.js';
import { freePort } from '../helpers/free-port.js';
import { FileLogSource } from '../../agent/worker/log-source.js';
import { ApiServer, type AuditRecord } from '../../control-plane/api/server.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
// Loopback only, as root: the API's own checks are what is tested here; authentication and roles have their own tests.
import { authenticateLocalRoot } from '../../control-plane/auth/authenticate.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { ApiCallError, ApiClient } from '../../cli/client.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';

let workDir = '';
let registry: RunningRegistry | undefined;
let image: BusyboxImage;

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-images-push-'));
  registry = await startRegistry();
  image = await buildBusyboxImage(join(workDir, 'image'));
});

test.after.always(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function newStore(t: { teardown: (fn: () => Promise<void>) => void }, options: Partial<LocalImageStoreOptions> = {}): Promise<LocalImageStore> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-images-push-store-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  // No credentials file of the machine's: a test names the credentials it means.
  return new LocalImageStore({ root, credentialsFile: join(root, 'no-registries.json'), ...options });
}

/** A store holding busybox:latest, loaded from the OCI layout tarball (no registry involved). */
async function storeWithBusybox(t: { teardown: (fn: () => Promise<void>) => void }, options: Partial<LocalImageStoreOptions> = {}): Promise<LocalImageStore> {
  const store = await newStore(t, options);
  await store.load(image.tarballPath);
  return store;
}

test('pushes a stored image under a new name; pulled back by that name it has the same digest; a second push sends nothing', async (t) => {
  const store = await storeWithBusybox(t);
  const host = registry?.host ?? '';
  const target = `${host}/team/busybox:v1`;
  const events: PushProgress[] = [];
  const result = await store.push('busybox:latest', { target, onProgress: (e) => events.push(e) });
  t.is(result.reference, target);
  t.is(result.digest, image.manifestDigest);
  t.is(result.pushed, 2, 'config and the one layer');
  t.is(result.existed, 0);
  const pushedBlobs = events.filter((e) => e.status === 'pushed');
  t.deepEqual(pushedBlobs.map((e) => e.kind).sort(), ['config', 'layer']);
  for (const done of pushedBlobs) {
    const sent = events.filter((e) => e.digest === done.digest && e.status === 'pushing');
    t.is(sent.at(-1)?.current, done.total, `every byte of ${done.digest} was reported sent`);
  }

  const fresh = await newStore(t);
  const pulled = await fresh.pull(target);
  t.is(pulled.digest, result.digest);
  t.is(pulled.reference, target);

  const again: PushProgress[] = [];
  const second = await store.push('busybox', { target, onProgress: (e) => again.push(e) });
  t.is(second.digest, image.manifestDigest);
  t.is(second.pushed, 0);
  t.is(second.existed, 2);
  t.deepEqual(
    again.map((e) => e.status),
    ['exists', 'exists'],
  );
});

test('without a target the image is pushed under its own name, which must name a registry', async (t) => {
  const host = registry?.host ?? '';
  const store = await newStore(t);
  const own = `${host}/own/busybox:v2`;
  // Pushed first under a name with a registry, then pulled by it, so the store holds it under that name.
  await (await storeWithBusybox(t)).push(BUSYBOX_IMAGE_REFERENCE, { target: own });
  await store.pull(own);
  const result = await store.push(own);
  t.is(result.reference, own);
  t.is(result.existed, 2);

  const loaded = await storeWithBusybox(t);
  const error = await t.throwsAsync(loaded.push('busybox'), { instanceOf: InvalidReferenceError });
  t.regex(error.message, /names no registry \(it would go to Docker Hub\)/);
  await t.throwsAsync(loaded.push('busybox', { target: `${host}/x/busybox@${image.manifestDigest}` }), { message: /names a tag, not a digest/ });
});

test('the image loaded from a docker save archive (a manifest the store wrote) pushes and pulls back alike', async (t) => {
  const store = await newStore(t);
  const [loaded] = await store.load(image.dockerArchivePath);
  if (!loaded) throw new Error('the docker archive held no image');
  const target = `${registry?.host ?? ''}/docker/busybox:v1`;
  const result = await store.push('busybox', { target });
  t.is(result.digest, loaded.digest);
  t.is((await (await newStore(t)).pull(target)).digest, loaded.digest);
});

test('pushed within the registry it came from, under another repository, the blobs are mounted rather than sent', async (t) => {
  const host = registry?.host ?? '';
  await (await storeWithBusybox(t)).push('busybox', { target: `${host}/origin/busybox:v1` });
  const store = await newStore(t);
  await store.pull(`${host}/origin/busybox:v1`);
  const events: PushProgress[] = [];
  const result = await store.push(`${host}/origin/busybox:v1`, { target: `${host}/copy/busybox:v1`, onProgress: (e) => events.push(e) });
  t.deepEqual([result.mounted, result.pushed, result.existed], [2, 0, 0]);
  t.deepEqual(
    events.map((e) => e.status),
    ['mounted', 'mounted'],
  );
  t.is((await (await newStore(t)).pull(`${host}/copy/busybox:v1`)).digest, image.manifestDigest);
});

test('an image that is not in the store is a clear error, and nothing is sent', async (t) => {
  let requests = 0;
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  const store = await newStore(t, { fetch: counting });
  await t.throwsAsync(store.push('busybox', { target: `${registry?.host ?? ''}/none/busybox:v1` }), {
    instanceOf: ImageNotFoundError,
    message: 'image "busybox" is not in the store',
  });
  t.is(requests, 0);
});

test('pushes to a registry with htpasswd (basic) auth only with credentials that it accepts', async (t) => {
  const credentials = { user: 'pusher', password: 'basic-pw' };
  const authed = await startRegistry({ htpasswd: credentials });
  t.teardown(() => authed.stop());
  const target = `${authed.host}/private/busybox:v1`;

  const anonymous = await storeWithBusybox(t);
  const refused = await t.throwsAsync(anonymous.push('busybox', { target }));
  t.regex(
    refused.message,
    new RegExp(`^push ${target.replace(/[.]/g, '\\.')}: checking whether the registry has config sha256:[a-f0-9]{64}: .*requires a user name and password`),
  );

  const wrong = await storeWithBusybox(t, { credentials: () => ({ username: credentials.user, password: 'wrong' }) });
  const denied = await t.throwsAsync(wrong.push('busybox', { target }));
  t.regex(denied.message, /HEAD http:\/\/127\.0\.0\.1:\d+\/v2\/private\/busybox\/blobs\/sha256:[a-f0-9]{64}: 401 Unauthorized/);
  t.regex(denied.message, /must allow pushing to private\/busybox/);
  t.false(denied.message.includes('wrong'), 'the password is never in a message');

  const store = await storeWithBusybox(t, {
    credentials: (host) => (host === authed.host ? { username: credentials.user, password: credentials.password } : undefined),
  });
  t.is((await store.push('busybox', { target })).digest, image.manifestDigest);
  const back = await newStore(t, { credentials: () => ({ username: credentials.user, password: credentials.password }) });
  t.is((await back.pull(target)).digest, image.manifestDigest);
});

test('pushes to a registry with token auth, asking the token server for pull and push', async (t) => {
  const credentials = { user: 'pusher', password: 'token-pw' };
  const tokened = await startRegistry({ tokenAuth: credentials });
  t.teardown(() => tokened.stop());
  const target = `${tokened.host}/tokened/busybox:v1`;
  const store = await storeWithBusybox(t, {
    credentials: (host) => (host === tokened.host ? { username: credentials.user, password: credentials.password } : undefined),
  });
  const result = await store.push('busybox', { target });
  t.is(result.digest, image.manifestDigest);
  const requests = tokened.tokenServer?.requests ?? [];
  t.true(requests.includes('pusher repository:tokened/busybox:pull,push'), requests.join('\n'));
  t.false(
    requests.some((r) => !r.endsWith(':pull,push')),
    `a push asks only for pull,push tokens: ${requests.join(', ')}`,
  );
  const pushRequests = requests.length;
  const back = await newStore(t, { credentials: () => ({ username: credentials.user, password: credentials.password }) });
  t.is((await back.pull(target)).digest, image.manifestDigest);

  // Pushed on from the repository it was pulled from: the token also covers reading that one, for the mounts.
  const mounted = await back.push(target, { target: `${tokened.host}/tokened/copy:v1` });
  t.is(mounted.mounted, 2);
  t.true(requests.slice(pushRequests).includes('pusher repository:tokened/copy:pull,push repository:tokened/busybox:pull'), requests.join('\n'));
});

test('a registry that is not there fails the push with the registry, repository and step named, after the retries', async (t) => {
  // A port nothing listens on: found free, then never bound.
  const port = await freePort();
  const waits: number[] = [];
  const store = await storeWithBusybox(t, {
    registry: {
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      requestTimeoutMs: 5_000,
    },
  });
  const error = await t.throwsAsync(store.push('busybox', { target: `127.0.0.1:${port}/team/busybox:v1` }));
  t.regex(
    error.message,
    new RegExp(
      `^push 127\\.0\\.0\\.1:${port}/team/busybox:v1: checking whether the registry has (config|layer) sha256:[a-f0-9]{64}: HEAD http://127\\.0\\.0\\.1:${port}/v2/team/busybox/blobs/sha256:[a-f0-9]{64}: fetch failed: connect ECONNREFUSED .*\\(gave up after 5 attempts\\)`,
    ),
  );
  t.true(waits.length >= 4, `it retried with back-off first: ${waits.join(', ')}`);
});

test('ImagePush through the API server streams progress per blob, ends with the digest, is audited, and names the node when the image is not there', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-images-push-api-'));
  const images = new LocalImageStore({ root: join(dir, 'images'), credentialsFile: join(dir, 'no-registries.json') });
  await images.load(image.tarballPath);
  const store = new MemoryStore();
  const audited: AuditRecord[] = [];
  const server = new ApiServer({
    store,
    images,
    logs: new FileLogSource(join(dir, 'logs')),
    selfNode: 'node-a',
    clusterId: 't',
    version: 't',
    storeBackend: 'memory',
    managers: () => [],
    audit: (record) => audited.push(record),
  });
  const address = `unix:${join(dir, 'api.sock')}`;
  await server.listen(address, LOCAL_INSECURE, authenticateLocalRoot);
  const client = new ApiClient(address);
  t.teardown(async () => {
    client.close();
    await server.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const target = `${registry?.host ?? ''}/api/busybox:v3`;
  const statuses: string[] = [];
  const pushed = await client.imagePush('busybox', target, (e) => statuses.push(`${e.kind}:${e.status}`));
  t.is(pushed.reference, target);
  t.is(pushed.digest, image.manifestDigest);
  t.true(statuses.includes('layer:pushed') && statuses.includes('config:pushed'), statuses.join(' '));
  t.true(statuses.includes('layer:pushing'), statuses.join(' '));
  t.deepEqual(
    audited.map((r) => [r.method, r.request, r.error === undefined]),
    [['ImagePush', { reference: 'busybox', target }, true]],
  );

  const missing = await t.throwsAsync(
    client.imagePush('alpine:3', target, () => undefined),
    { instanceOf: ApiCallError },
  );
  t.is(missing.code, grpc.status.NOT_FOUND);
  t.regex(missing.message, /image "alpine:3" is not in the store of node node-a/);

  const noRegistry = await t.throwsAsync(
    client.imagePush('busybox', '', () => undefined),
    { instanceOf: ApiCallError },
  );
  t.is(noRegistry.code, grpc.status.INVALID_ARGUMENT);
  t.regex(noRegistry.message, /names no registry/);
  // The registry's failure is not UNAVAILABLE, which tsctl reads as "the API cannot be reached".
  const port = await freePort();
  const unreachable = await t.throwsAsync(
    client.imagePush('busybox', `127.0.0.1:${port}/api/busybox:v3`, () => undefined),
    { instanceOf: ApiCallError },
  );
  t.is(unreachable.code, grpc.status.FAILED_PRECONDITION);
  t.regex(
    unreachable.message,
    new RegExp(`^push 127\\.0\\.0\\.1:${port}/api/busybox:v3: checking whether the registry has .*ECONNREFUSED.*\\(from node node-a\\)$`),
  );
  t.is(audited.length, 4, 'refused and failed pushes are audited too');
  t.true(audited.slice(1).every((r) => r.error !== undefined));
});
