// Image store against a real registry (Debian's docker-registry on 127.0.0.1) serving a busybox
// image we build ourselves, and against the archives `tsctl image load` accepts.
import test from 'ava';
import { execFile } from 'node:child_process';
import { access, constants, lstat, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LocalImageStore, type LocalImageStoreOptions } from '../../agent/images/image-store.js';
import { RegistryError } from '../../agent/images/registry-client.js';
import { BUSYBOX_IMAGE_REFERENCE, BUSYBOX_INDEX_HTML, type BusyboxImage, buildBusyboxImage } from '../helpers/busybox-image.js';
import { type RunningRegistry, pushImage, startRegistry } from '../helpers/registry.js';

const execFileAsync = promisify(execFile);

let workDir = '';
let image: BusyboxImage;
let registry: RunningRegistry | undefined;
let pushedDigest = '';

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-images-it-'));
  image = await buildBusyboxImage(join(workDir, 'image'));
  registry = await startRegistry();
  pushedDigest = (await pushImage(image.ociLayoutDir, registry.host, 'tessera/busybox:v1')).digest;
});

test.after.always(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** A store in its own temp root, with a fetch that counts what it asked for. */
async function newStore(
  t: { teardown: (fn: () => Promise<void>) => void },
  options: Partial<LocalImageStoreOptions> = {},
): Promise<{ store: LocalImageStore; root: string; requests: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-images-store-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const requests: string[] = [];
  const countingFetch: typeof fetch = (input, init) => {
    requests.push(String(input instanceof Request ? input.url : input));
    return fetch(input, init);
  };
  return { store: new LocalImageStore({ root, fetch: countingFetch, ...options }), root, requests };
}

const blobRequests = (requests: string[]): string[] => requests.filter((r) => r.includes('/blobs/'));

test('pulls by tag and by digest into unpacked layers with a runnable busybox', async (t) => {
  const { store, requests } = await newStore(t);
  const host = registry?.host ?? '';
  t.is(pushedDigest, image.manifestDigest);

  const byTag = await store.pull(`${host}/tessera/busybox:v1`);
  t.is(byTag.reference, `${host}/tessera/busybox:v1`);
  t.is(byTag.digest, image.manifestDigest);
  t.deepEqual(byTag.config.cmd, ['sh']);
  t.true(byTag.config.env?.some((e) => e.startsWith('PATH=')));
  t.is(byTag.layerDirs.length, 1);
  const rootfs = byTag.layerDirs[0] as string;
  await access(join(rootfs, 'bin/busybox'), constants.X_OK);
  const { stdout } = await execFileAsync(join(rootfs, 'bin/busybox'), ['echo', 'hello from the layer']);
  t.is(stdout, 'hello from the layer\n');
  t.is(await readFile(join(rootfs, 'www/index.html'), 'utf8'), BUSYBOX_INDEX_HTML);
  t.is((await lstat(join(rootfs, 'tmp'))).mode & 0o7777, 0o1777);
  t.true((await lstat(join(rootfs, 'bin/sh'))).isSymbolicLink());
  t.regex(await readFile(join(rootfs, 'etc/passwd'), 'utf8'), /^root:x:0:0:/);
  t.is(blobRequests(requests).length, 2, 'config and one layer');

  const byDigest = await store.pull(`${host}/tessera/busybox@${image.manifestDigest}`);
  t.deepEqual(byDigest.layerDirs, byTag.layerDirs);
  t.is(blobRequests(requests).length, 2, 'nothing downloaded again');
  t.deepEqual(
    (await store.list()).map((r) => r.reference),
    [`${host}/tessera/busybox:v1`, `${host}/tessera/busybox@${image.manifestDigest}`].sort(),
  );
  t.is((await store.get(`${host}/tessera/busybox:v1`))?.digest, image.manifestDigest);
  t.is(await store.get(`${host}/tessera/busybox:v2`), undefined);
});

test('pulling twice is a no-op, and concurrent pulls share one download', async (t) => {
  const { store, requests } = await newStore(t);
  const reference = `${registry?.host ?? ''}/tessera/busybox:v1`;
  const [a, b, c] = await Promise.all([store.pull(reference), store.pull(reference), store.ensure(reference)]);
  t.deepEqual(a, b);
  t.is(c.digest, a.digest);
  t.is(blobRequests(requests).length, 2);
  const layer = a.layerDirs[0] as string;
  const before = await lstat(layer);

  const again = await store.pull(reference);
  t.deepEqual(again.layerDirs, a.layerDirs);
  t.is(blobRequests(requests).length, 2, 'a second pull downloads no blob');
  t.is((await lstat(layer)).ino, before.ino, 'the layer was not unpacked again');

  const manifestRequests = requests.length;
  await store.ensure(reference);
  t.is(requests.length, manifestRequests, 'ensure of a present image does not contact the registry');
});

test('two stores on one root pulling at once leave one consistent copy', async (t) => {
  const { store, root } = await newStore(t);
  const other = new LocalImageStore({ root });
  const reference = `${registry?.host ?? ''}/tessera/busybox:v1`;
  const [a, b] = await Promise.all([store.pull(reference), other.pull(reference)]);
  t.deepEqual(a.layerDirs, b.layerDirs);
  await access(join(a.layerDirs[0] as string, 'bin/busybox'), constants.X_OK);
  t.is((await store.list()).length, 1);
});

test('loads the OCI layout tarball and the docker save tarball under the name they carry', async (t) => {
  const noNetwork: typeof fetch = () => Promise.reject(new Error('this test must not use the network'));
  const { store } = await newStore(t, { fetch: noNetwork });

  const fromOci = await store.load(image.tarballPath);
  t.is(fromOci.length, 1);
  t.is(fromOci[0]?.reference, BUSYBOX_IMAGE_REFERENCE);
  t.is(fromOci[0]?.digest, image.manifestDigest);
  const ensured = await store.ensure('busybox');
  t.is(ensured.digest, image.manifestDigest);
  await access(join(ensured.layerDirs[0] as string, 'bin/busybox'), constants.X_OK);

  const fromDocker = await store.load(image.dockerArchivePath);
  t.is(fromDocker.length, 1);
  t.is(fromDocker[0]?.reference, BUSYBOX_IMAGE_REFERENCE);
  t.is(fromDocker[0]?.configDigest, fromOci[0]?.configDigest);
  t.deepEqual(fromDocker[0]?.layers, fromOci[0]?.layers);
  const afterDocker = await store.get('busybox:latest');
  t.is(afterDocker?.digest, fromDocker[0]?.digest);
  t.deepEqual(afterDocker?.layerDirs, ensured.layerDirs, 'same diff-id, same unpacked layer');
  t.is((await store.list()).length, 1);
});

test('a damaged archive is refused with its path in the message', async (t) => {
  const { store } = await newStore(t);
  await t.throwsAsync(store.load(join(workDir, 'image', 'oci-layout', 'index.json')), { message: /index\.json: cannot extract image archive/ });
});

test('pulls from a registry with htpasswd auth only when given credentials', async (t) => {
  const credentials = { user: 'tessera', password: 'secret-pw' };
  const authed = await startRegistry({ htpasswd: credentials });
  t.teardown(() => authed.stop());
  await pushImage(image.ociLayoutDir, authed.host, 'private/busybox:v1', { credentials });
  const reference = `${authed.host}/private/busybox:v1`;

  const { store: anonymous } = await newStore(t);
  const error = await t.throwsAsync(anonymous.pull(reference), { instanceOf: RegistryError });
  t.regex(error.message, /requires a user name and password/);

  const { store } = await newStore(t, {
    credentials: (registryHost) => (registryHost === authed.host ? { username: credentials.user, password: credentials.password } : undefined),
  });
  t.is((await store.pull(reference)).digest, image.manifestDigest);
});

test('pulls from a registry with token auth: the client follows WWW-Authenticate to the token server', async (t) => {
  const credentials = { user: 'tessera', password: 'token-pw' };
  const tokened = await startRegistry({ tokenAuth: credentials });
  t.teardown(() => tokened.stop());
  await pushImage(image.ociLayoutDir, tokened.host, 'tokened/busybox:v1', { credentials });
  const reference = `${tokened.host}/tokened/busybox:v1`;

  const { store: anonymous } = await newStore(t, { credentials: () => undefined });
  const error = await t.throwsAsync(anonymous.pull(reference), { instanceOf: RegistryError });
  t.regex(error.message, /token request to http:\/\/127\.0\.0\.1:\d+: 401 Unauthorized/);

  const { store } = await newStore(t, {
    credentials: (registryHost) => (registryHost === tokened.host ? { username: credentials.user, password: credentials.password } : undefined),
  });
  t.is((await store.pull(reference)).digest, image.manifestDigest);
  t.true(tokened.tokenServer?.requests.includes('tessera repository:tokened/busybox:pull'), tokened.tokenServer?.requests.join('\n'));
});
