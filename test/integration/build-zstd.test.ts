// zstd layers on request (issue 18), with the real parts: our executor, native runtime and image
// store (test/helpers/our-builder.ts) build FROM busybox with compression zstd; the layers the build
// made are zstd (media type and frame magic) while busybox's stays gzip; a second build FROM the
// zstd-built image runs a RUN on it (a container of our runtime whose root is those zstd layers,
// unpacked); the image is pushed to Debian's docker-registry on loopback, which serves the zstd
// media type back, and pulled into a fresh store: same manifest, same diff-ids, same files.
import test from 'ava';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { LocalImageStore } from '../../agent/images/image-store.js';
import { readStoreImage } from '../helpers/image-tree.js';
import { type OurBuilder, loadOurBuilder, startOurBuilder } from '../helpers/our-builder.js';
import { type RunningRegistry, startRegistry } from '../helpers/registry.js';

const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MADE = 'built with zstd\nhello from the context\n';

let work = '';
let ours: OurBuilder | undefined;
let registry: RunningRegistry | undefined;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'tessera-build-zstd-'));
  const loaded = await loadOurBuilder();
  if ('unavailable' in loaded) throw new Error(loaded.unavailable);
  ours = await startOurBuilder(loaded.executor);
  registry = await startRegistry();
});

test.after.always(async () => {
  await ours?.stop();
  await registry?.stop();
  if (work !== '') await rm(work, { recursive: true, force: true });
});

interface StoredManifest {
  config: { digest: string };
  layers: Array<{ mediaType: string; digest: string; size: number }>;
}

async function firstBytes(path: string, count: number): Promise<number[]> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(count), 0, count, 0);
    return [...buffer.subarray(0, bytesRead)];
  } finally {
    await file.close();
  }
}

test.serial('a zstd build: zstd layers, runs as a base, and goes through a registry into a fresh store', async (t) => {
  if (ours === undefined || registry === undefined) return t.fail('set-up failed');
  const store = ours.store();
  const context = join(work, 'app');
  await mkdir(context, { recursive: true });
  await writeFile(join(context, 'hello.txt'), 'hello from the context\n');
  await writeFile(
    join(context, 'Dockerfile'),
    'FROM busybox\nCOPY hello.txt /hello.txt\nRUN echo built with zstd > /made.txt && cat /hello.txt >> /made.txt\nCMD ["cat", "/made.txt"]\n',
  );
  const built = await ours.build({ context, tag: 'zstd-built:1', compression: 'zstd' });
  if (!built.ok) return t.fail(built.message);
  t.is(built.result.ranSteps, 3);

  // The build's two layers are zstd, busybox's stays as it was pulled.
  const record = await store.get('zstd-built:1');
  if (record === undefined) return t.fail('the built image is not in the store');
  t.is(record.digest, built.result.manifestDigest);
  const manifest = JSON.parse(await readFile(store.blobPath(record.digest), 'utf8')) as StoredManifest;
  t.deepEqual(
    manifest.layers.map((l) => l.mediaType),
    [GZIP, ZSTD, ZSTD],
  );
  for (const layer of manifest.layers.slice(1)) t.deepEqual(await firstBytes(store.blobPath(layer.digest), 4), [0x28, 0xb5, 0x2f, 0xfd], layer.digest);

  // A container runs on it: a RUN of a build FROM it reads what the zstd layers hold.
  const child = join(work, 'child');
  await mkdir(child, { recursive: true });
  await writeFile(
    join(child, 'Dockerfile'),
    "FROM zstd-built:1\nRUN grep -qx 'built with zstd' /made.txt && grep -qx 'hello from the context' /made.txt && cp /made.txt /seen.txt\n",
  );
  const run = await ours.build({ context: child, tag: 'zstd-child:1', compression: 'zstd' });
  if (!run.ok) return t.fail(`a RUN on the zstd image failed: ${run.message}`);
  const childImage = await readStoreImage(store, 'zstd-child:1');
  t.is(childImage.tree.get('seen.txt')?.sha256, createHash('sha256').update(MADE).digest('hex'));

  // Pushed to the loopback registry, which keeps and serves the zstd media type.
  const target = `${registry.host}/build/zstd:1`;
  const pushed = await store.push('zstd-built:1', { target, insecureRegistries: [registry.host] });
  t.is(pushed.digest, built.result.manifestDigest);
  const response = await fetch(`${registry.url}/v2/build/zstd/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  t.is(response.status, 200);
  t.is(response.headers.get('docker-content-digest'), built.result.manifestDigest);
  const served = (await response.json()) as StoredManifest;
  t.deepEqual(
    served.layers.map((l) => l.mediaType),
    [GZIP, ZSTD, ZSTD],
  );

  // Pulled into a fresh store: the same image, unpacked from zstd, with the same files.
  const freshRoot = join(work, 'fresh-store');
  const fresh = new LocalImageStore({ root: freshRoot, credentialsFile: join(work, 'no-credentials.json'), insecureRegistries: [registry.host] });
  const pulled = await fresh.pull(target);
  t.is(pulled.digest, built.result.manifestDigest);
  t.is(pulled.configDigest, built.result.configDigest);
  t.deepEqual(pulled.layers, record.layers);
  t.is(await readFile(join(pulled.layerDirs[2] ?? '', 'made.txt'), 'utf8'), MADE);
  const mine = await readStoreImage(store, 'zstd-built:1');
  const theirs = await readStoreImage(fresh, target);
  t.deepEqual([...theirs.tree.entries()], [...mine.tree.entries()]);
});
