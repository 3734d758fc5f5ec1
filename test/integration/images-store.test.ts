// The image store against Debian's docker-registry on 127.0.0.1 with a multi-layer image:
// concurrent layer downloads with progress, zstd layers, a blob damaged in the registry's own
// storage, save → load round trips, removal refused while in use, and garbage collection.
import test, { type ExecutionContext } from 'ava';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError } from '../../common/images/digest.js';
import { ImageInUseError, ImageNotFoundError, LocalImageStore, type LocalImageStoreOptions } from '../../agent/images/image-store.js';
import type { PullProgress } from '../../common/images/types.js';
import { type BusyboxImage, type LayeredImage, buildBusyboxImage, buildLayeredImage } from '../helpers/busybox-image.js';
import { type RunningRegistry, pushImage, startRegistry } from '../helpers/registry.js';

let workDir = '';
let registry: RunningRegistry | undefined;
let layered: LayeredImage;
let zstdImage: LayeredImage;
let busybox: BusyboxImage;
const LAYER_BYTES = 1024 * 1024;

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-images-store-it-'));
  registry = await startRegistry();
  busybox = await buildBusyboxImage(join(workDir, 'busybox'));
  layered = await buildLayeredImage(join(workDir, 'layered'), { extraLayers: 4, layerBytes: LAYER_BYTES, base: busybox });
  zstdImage = await buildLayeredImage(join(workDir, 'zstd'), { extraLayers: 2, layerBytes: 64 * 1024, compression: 'zstd', seed: 7, base: busybox });
  await pushImage(layered.ociLayoutDir, registry.host, 'store/layered:v1');
  await pushImage(zstdImage.ociLayoutDir, registry.host, 'store/zstd:v1');
  await pushImage(busybox.ociLayoutDir, registry.host, 'store/busybox:v1');
});

test.after.always(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function newStore(t: ExecutionContext, options: Partial<LocalImageStoreOptions> = {}): Promise<{ store: LocalImageStore; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-images-store-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return { store: new LocalImageStore({ root, credentialsFile: join(root, 'no-credentials.json'), ...options }), root };
}

const ref = (name: string): string => `${registry?.host ?? ''}/${name}`;

async function entries(root: string, sub: string): Promise<string[]> {
  return (await readdir(join(root, sub)).catch(() => [])).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // code-unit order, as sort() without a compare
}

/** Blobs and layers on disk must be exactly what the records lead to. */
async function assertNoGarbage(t: ExecutionContext, store: LocalImageStore, root: string): Promise<void> {
  const records = await store.list();
  const wantBlobs = new Set<string>();
  const wantLayers = new Set<string>();
  for (const r of records) {
    const manifest = JSON.parse(await readFile(join(root, 'blobs', 'sha256', r.digest.slice(7)), 'utf8')) as { layers: Array<{ digest: string }> };
    for (const d of [r.digest, r.configDigest, ...(r.indexDigest ? [r.indexDigest] : []), ...manifest.layers.map((l) => l.digest)]) wantBlobs.add(d.slice(7));
    for (const d of r.layers) wantLayers.add(d.slice(7));
  }
  t.deepEqual(await entries(root, 'blobs/sha256'), [...wantBlobs].sort(), 'blobs on disk are exactly the referenced ones');
  t.deepEqual(await entries(root, 'layers'), [...wantLayers].sort(), 'layers on disk are exactly the referenced ones');
}

test('layers download concurrently (bounded) with per-layer progress', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const trackingFetch: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!url.includes('/blobs/')) return fetch(input, init);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const response = await fetch(input, init);
    // Count a download as running until its body is read to the end.
    const body = response.body;
    if (!body) {
      inFlight--;
      return response;
    }
    const reader = body.getReader();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) {
          inFlight--;
          controller.close();
        } else {
          await new Promise((resolve) => setTimeout(resolve, 2)); // slow enough to overlap
          controller.enqueue(value);
        }
      },
    });
    return new Response(stream, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  const { store } = await newStore(t, { fetch: trackingFetch, maxConcurrentDownloads: 3 });
  const events: PullProgress[] = [];
  const image = await store.pull(ref('store/layered:v1'), { onProgress: (e) => events.push(e) });

  t.is(image.layerDirs.length, 5);
  t.true(maxInFlight >= 2, `downloads overlapped (max ${maxInFlight} at once)`);
  t.true(maxInFlight <= 3, `no more than the limit at once (max ${maxInFlight})`);
  for (const [i, file] of layered.extraFiles.entries()) {
    t.deepEqual(await readFile(join(image.layerDirs[i + 1] as string, file.path)), file.content, `layer ${i + 1} content`);
  }
  for (const digest of layered.layerDigests) {
    const mine = events.filter((e) => e.digest === digest);
    const statuses = [...new Set(mine.map((e) => e.status))];
    t.deepEqual(statuses, ['downloading', 'unpacking', 'done'], `events of ${digest}`);
    const downloads = mine.filter((e) => e.status === 'downloading').map((e) => e.current);
    t.deepEqual(
      downloads,
      [...downloads].sort((a, b) => a - b),
      'progress only grows',
    );
    t.is(downloads.at(-1), mine[0]?.total, 'progress ends at the layer size');
  }
  const big = events.filter((e) => e.digest === layered.layerDigests[1] && e.status === 'downloading');
  t.true(big.length >= 4 && big.length <= 25, `a ${LAYER_BYTES}-byte layer gives a handful of events, got ${big.length}`);

  // The image config's defaults, ExposedPorts and Healthcheck included.
  t.deepEqual(image.config.exposedPorts, ['8080/tcp']);
  t.deepEqual(image.config.healthcheck, { test: ['CMD', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'], intervalMs: 5000, retries: 3 });
  t.deepEqual((await store.get(ref('store/layered:v1')))?.config.healthcheck, image.config.healthcheck, 'kept in the record');

  const again: PullProgress[] = [];
  await store.pull(ref('store/layered:v1'), { onProgress: (e) => again.push(e) });
  t.true(
    again.filter((e) => e.kind === 'layer').every((e) => e.status === 'exists'),
    'a second pull reports every layer as present',
  );
});

test('zstd-compressed layers are pulled and unpacked', async (t) => {
  const { store } = await newStore(t);
  const image = await store.pull(ref('store/zstd:v1'));
  t.deepEqual(image.layers, zstdImage.diffIds);
  for (const [i, file] of zstdImage.extraFiles.entries()) {
    t.deepEqual(await readFile(join(image.layerDirs[i + 1] as string, file.path)), file.content);
  }
});

test('a blob damaged in the registry storage is refused and nothing is stored', async (t) => {
  const damaged = await startRegistry();
  t.teardown(() => damaged.stop());
  await pushImage(layered.ociLayoutDir, damaged.host, 'store/damaged:v1');
  const victim = layered.layerDigests[2] as string;
  const file = damaged.blobFile(victim);
  const bytes = await readFile(file);
  bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0x55; // same size, different content
  await writeFile(file, bytes);

  const { store, root } = await newStore(t);
  const error = await t.throwsAsync(store.pull(`${damaged.host}/store/damaged:v1`), { instanceOf: DigestMismatchError });
  t.regex(error.message, new RegExp(`layer ${victim}.*digest mismatch: expected ${victim}`));
  t.deepEqual(await store.list(), [], 'no image recorded');
  t.false((await entries(root, 'blobs/sha256')).includes(victim.slice(7)), 'the bad blob is not in the store');
  t.deepEqual(await entries(root, 'tmp'), [], 'no partial download left');
  // What the failed pull did store (other layers) is garbage now, and prune removes it.
  await store.prune();
  await assertNoGarbage(t, store, root);
  t.deepEqual(await entries(root, 'layers'), []);
});

async function saveTo(store: LocalImageStore, references: string[], format: 'oci' | 'docker', path: string): Promise<void> {
  await pipeline(await store.save(references, format), createWriteStream(path));
}

for (const format of ['oci', 'docker'] as const) {
  test(`save as ${format} and load into an empty store round-trips`, async (t) => {
    const { store } = await newStore(t);
    const pulled = await store.pull(ref('store/layered:v1'));
    await store.pull(ref('store/busybox:v1'));
    const tarball = join(await mkdtemp(join(tmpdir(), 'tessera-images-save-')), `images-${format}.tar`);
    t.teardown(() => rm(join(tarball, '..'), { recursive: true, force: true }));
    await saveTo(store, [ref('store/layered:v1'), ref('store/busybox:v1')], format, tarball);

    const { store: other, root: otherRoot } = await newStore(t, { fetch: () => Promise.reject(new Error('load must not use the network')) });
    const loaded = await other.load(tarball);
    t.deepEqual(loaded.map((r) => r.reference).sort(), [ref('store/busybox:v1'), ref('store/layered:v1')].sort());
    const back = await other.get(ref('store/layered:v1'));
    if (!back) throw new Error('not loaded');
    t.is(back.configDigest, pulled.configDigest);
    t.deepEqual(back.layers, pulled.layers);
    t.deepEqual(back.config, pulled.config);
    if (format === 'oci') t.is(back.digest, pulled.digest, 'an OCI layout keeps the manifest, so the digest is the same');
    for (const [i, file] of layered.extraFiles.entries()) {
      t.deepEqual(await readFile(join(back.layerDirs[i + 1] as string, file.path)), file.content);
    }
    await assertNoGarbage(t, other, otherRoot);
  });
}

test('save of an unknown image fails before writing anything', async (t) => {
  const { store, root } = await newStore(t);
  await t.throwsAsync(store.save([ref('store/nothing:v1')], 'oci'), { instanceOf: ImageNotFoundError });
  t.deepEqual(await entries(root, 'tmp'), []);
});

test('rm is refused while the image is in use, then removes it and collects its garbage', async (t) => {
  const { store, root } = await newStore(t);
  const layeredImage = await store.pull(ref('store/layered:v1'));
  const small = await store.pull(ref('store/busybox:v1'));
  // The busybox layer is shared by both images.
  t.is(layeredImage.layers[0], small.layers[0]);

  const users = ['web.1', 'web.2'];
  const error = await t.throwsAsync(store.remove(ref('store/layered:v1'), { inUse: async (r) => (r.reference === ref('store/layered:v1') ? users : []) }), {
    instanceOf: ImageInUseError,
  });
  t.regex(error.message, /in use by 2 tasks: web\.1, web\.2/);
  t.is((await store.list()).length, 2, 'nothing removed');

  const result = await store.remove(ref('store/layered:v1'), { inUse: async () => [] });
  t.deepEqual(result.removed, [ref('store/layered:v1')]);
  t.is(result.gc.layersRemoved, 4, 'the four layers only this image had');
  t.is(result.gc.blobsRemoved, 6, 'its manifest, config and four layer blobs');
  t.true(result.gc.bytesFreed > 4 * LAYER_BYTES);
  await assertNoGarbage(t, store, root);
  t.truthy(await store.get(ref('store/busybox:v1')), 'the other image still works');

  // By digest prefix: every name of that manifest goes.
  await store.pull(`${ref('store/busybox')}@${small.digest}`);
  const byDigest = await store.remove(small.digest.slice(7, 19));
  t.is(byDigest.removed.length, 2);
  t.deepEqual(await store.list(), []);
  t.deepEqual(await entries(root, 'blobs/sha256'), []);
  t.deepEqual(await entries(root, 'layers'), []);
  await t.throwsAsync(store.remove(ref('store/busybox:v1')), { instanceOf: ImageNotFoundError });
});

test('garbage collection never takes what a pull in progress is writing', async (t) => {
  let releaseBlobs: () => void = () => undefined;
  const blobsHeld = new Promise<void>((resolve) => {
    releaseBlobs = resolve;
  });
  let blobRequests = 0;
  const gatedFetch: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.includes('/blobs/') && ++blobRequests > 2) await blobsHeld; // config and the first layer go through
    return fetch(input, init);
  };
  const { store, root } = await newStore(t, { fetch: gatedFetch, maxConcurrentDownloads: 1 });
  const pulling = store.pull(ref('store/layered:v1'));
  // Wait until the pull has stored something, then ask for a collection while it is held up.
  for (let i = 0; i < 200 && (await entries(root, 'blobs/sha256')).length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  let pruned = false;
  const pruning = store.prune().then((r) => {
    pruned = true;
    return r;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.false(pruned, 'the collection waits for the pull');
  releaseBlobs();
  const image = await pulling;
  const gc = await pruning;
  t.is(gc.blobsRemoved + gc.layersRemoved, 0, 'nothing the finished pull made was garbage');
  for (const [i, file] of layered.extraFiles.entries()) {
    t.deepEqual(await readFile(join(image.layerDirs[i + 1] as string, file.path)), file.content);
  }
  await assertNoGarbage(t, store, root);
});

test('basic-auth credentials come from a validated credentials file', async (t) => {
  const credentials = { user: 'tessera', password: 'file-pw' };
  const authed = await startRegistry({ htpasswd: credentials });
  t.teardown(() => authed.stop());
  await pushImage(busybox.ociLayoutDir, authed.host, 'private/busybox:v1', { credentials });
  const dir = await mkdtemp(join(tmpdir(), 'tessera-images-creds-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'registries.json');

  await writeFile(file, JSON.stringify({ auths: { [authed.host]: { username: credentials.user, password: credentials.password } } }), { mode: 0o600 });
  const { store } = await newStore(t, { credentialsFile: file });
  t.is((await store.pull(`${authed.host}/private/busybox:v1`)).digest, busybox.manifestDigest);

  await chmod(file, 0o644);
  const { store: lax } = await newStore(t, { credentialsFile: file });
  await t.throwsAsync(lax.pull(`${authed.host}/private/busybox:v1`), { message: /registries\.json: holds passwords but is readable by others/ });

  await writeFile(file, JSON.stringify({ auths: { [authed.host]: { username: credentials.user } } }), { mode: 0o600 });
  await chmod(file, 0o600);
  const { store: broken } = await newStore(t, { credentialsFile: file });
  await t.throwsAsync(broken.pull(`${authed.host}/private/busybox:v1`), {
    message: new RegExp(`auths\\.${authed.host.replace(/\./g, '\\.')}: needs "username" and "password"`),
  });
});
