// The image RPCs through the real API server on a unix socket, with a real registry on
// 127.0.0.1: pull with progress events, rm refused while a task that is not finished names the
// image, rm of a finished task's image, prune, and save streamed back and loaded again.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { FileLogSource } from '../../agent/worker/log-source.js';
import { ApiServer } from '../../control-plane/api/server.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
// Loopback only, as root: these tests exercise the API itself; authentication has its own tests (test/security/).
import { authenticateLocalRoot } from '../../control-plane/auth/authenticate.js';
import { API_VERSION, type Task, type TaskState } from '../../common/resources/types.js';
import { objectKey } from '../../control-plane/store/keys.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { ApiClient } from '../../cli/client.js';
import { type BusyboxImage, buildBusyboxImage } from '../helpers/busybox-image.js';
import { type RunningRegistry, pushImage, startRegistry } from '../helpers/registry.js';

let workDir = '';
let registry: RunningRegistry | undefined;
let image: BusyboxImage;

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-images-api-'));
  registry = await startRegistry();
  image = await buildBusyboxImage(join(workDir, 'image'));
  await pushImage(image.ociLayoutDir, registry.host, 'api/busybox:v1');
});

test.after.always(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function fixture(t: ExecutionContext): Promise<{ client: ApiClient; store: MemoryStore; images: LocalImageStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-images-api-f-'));
  const store = new MemoryStore();
  const images = new LocalImageStore({ root: join(dir, 'images'), credentialsFile: join(dir, 'none.json') });
  const server = new ApiServer({
    store,
    images,
    logs: new FileLogSource(join(dir, 'logs')),
    clusterId: 't',
    version: 't',
    storeBackend: 'memory',
    managers: () => [],
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
  return { client, store, images, dir };
}

async function putTask(store: MemoryStore, name: string, imageRef: string, state: TaskState): Promise<void> {
  const task: Task = {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, stack: 'app' },
    spec: { serviceName: 'web', serviceStack: 'app', serviceGeneration: 1, slot: 1, spec: { image: imageRef } },
    desiredState: 'running',
    status: { state, timestamp: new Date(0).toISOString() },
  };
  await store.put(objectKey('Task', 'app', name), JSON.stringify(task));
}

test('pull streams progress, rm is refused while a running task names the image, allowed once it finished', async (t) => {
  const { client, store } = await fixture(t);
  const reference = `${registry?.host ?? ''}/api/busybox:v1`;
  const statuses: string[] = [];
  const pulled = await client.imagePullProgress(reference, (e) => statuses.push(`${e.kind}:${e.status}`));
  t.is(pulled.digest, image.manifestDigest);
  t.true(statuses.includes('layer:downloading'));
  t.is(statuses.at(-1), 'layer:done');

  await putTask(store, 'web.1', `${registry?.host ?? ''}/api/busybox@${image.manifestDigest}`, 'running');
  await putTask(store, 'web.0', 'busybox', 'running'); // another image: does not count
  const refused = await t.throwsAsync(client.imageRemove(reference));
  t.regex(refused.message, /in use by app\/web\.1; remove or stop them first/);
  t.is((await client.imageList()).images.length, 1);

  await putTask(store, 'web.1', reference, 'complete');
  const removed = await client.imageRemove(reference);
  t.deepEqual(removed.removed, [reference]);
  t.true((removed.gc?.blobsRemoved ?? 0) >= 3);
  t.is((await client.imageList()).images.length, 0);
  const missing = await t.throwsAsync(client.imageRemove(reference));
  t.regex(missing.message, /is not in the store/);
  t.deepEqual(await client.imagePrune(), { blobsRemoved: 0, layersRemoved: 0, bytesFreed: 0 });
});

test('save streams an archive that load reads back', async (t) => {
  const { client, dir } = await fixture(t);
  const reference = `${registry?.host ?? ''}/api/busybox:v1`;
  await client.imagePullProgress(reference, () => undefined);
  for (const format of ['oci', 'docker']) {
    const chunks: Buffer[] = [];
    for await (const chunk of client.imageSave([reference], format)) chunks.push(chunk);
    const tarball = join(dir, `saved-${format}.tar`);
    await writeFile(tarball, Buffer.concat(chunks));
    const { client: other } = await fixture(t);
    const { createReadStream } = await import('node:fs');
    const loaded = await other.imageLoad(createReadStream(tarball) as AsyncIterable<Buffer>);
    t.deepEqual(
      loaded.images.map((i) => i.reference),
      [reference],
      format,
    );
    if (format === 'oci') t.is(loaded.images[0]?.digest, image.manifestDigest);
  }
  const unknown = await t.throwsAsync(async () => {
    for await (const _chunk of client.imageSave([`${registry?.host ?? ''}/api/none:v1`], 'oci')) {
      // nothing arrives
    }
  });
  t.regex(unknown.message, /api\/none:v1" is not in the store/);
  const badFormat = await t.throwsAsync(async () => {
    for await (const _chunk of client.imageSave([reference], 'zip')) {
      // nothing arrives
    }
  });
  t.regex(badFormat.message, /format must be oci or docker, got "zip"/);
});
