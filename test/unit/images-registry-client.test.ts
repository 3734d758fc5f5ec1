// The registry client and pull path against a small fake registry on 127.0.0.1, which can
// misbehave in ways a real registry will not: wrong blobs, wrong sizes, broken manifests.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DigestMismatchError, SizeMismatchError, sha256Digest } from '../../common/images/digest.js';
import { LocalImageStore } from '../../agent/images/image-store.js';
import { RegistryClient, RegistryError, parseChallenge } from '../../agent/images/registry-client.js';

const EMPTY_TAR = Buffer.alloc(1024);

interface FakeImage {
  manifest: Buffer;
  manifestDigest: string;
  blobs: Map<string, Buffer>;
}

function makeImage(architecture = 'amd64', layer = gzipSync(EMPTY_TAR)): FakeImage {
  const config = Buffer.from(
    JSON.stringify({ architecture, os: 'linux', config: { Cmd: ['true'] }, rootfs: { type: 'layers', diff_ids: [sha256Digest(EMPTY_TAR)] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256Digest(layer), size: layer.length }],
    }),
  );
  return {
    manifest,
    manifestDigest: sha256Digest(manifest),
    blobs: new Map([
      [sha256Digest(config), config],
      [sha256Digest(layer), layer],
    ]),
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => boolean;

async function fakeRegistry(t: ExecutionContext, handler: Handler): Promise<{ host: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (!handler(req, res)) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

function serveImage(image: FakeImage, tag: string, overrides: { blob?: (digest: string) => Buffer | undefined } = {}): Handler {
  return (req, res) => {
    const url = req.url ?? '';
    const manifestMatch = /^\/v2\/test\/app\/manifests\/(.+)$/.exec(url);
    if (manifestMatch && (manifestMatch[1] === tag || manifestMatch[1] === image.manifestDigest)) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': image.manifestDigest });
      res.end(image.manifest);
      return true;
    }
    const blobMatch = /^\/v2\/test\/app\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url);
    const digest = blobMatch?.[1];
    if (digest !== undefined) {
      const body = overrides.blob?.(digest) ?? image.blobs.get(digest);
      if (body) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
        return true;
      }
    }
    return false;
  };
}

async function storeIn(t: ExecutionContext): Promise<{ root: string; store: LocalImageStore }> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-images-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return { root, store: new LocalImageStore({ root, platform: { os: 'linux', architecture: 'amd64' } }) };
}

async function leftovers(root: string): Promise<string[]> {
  return readdir(join(root, 'tmp')).catch(() => []);
}

test('pulls an image from a plain-HTTP loopback registry', async (t) => {
  const image = makeImage();
  const { host } = await fakeRegistry(t, serveImage(image, 'v1'));
  const { store } = await storeIn(t);
  const pulled = await store.pull(`${host}/test/app:v1`);
  t.is(pulled.digest, image.manifestDigest);
  t.deepEqual(pulled.config, { cmd: ['true'] });
  t.is(pulled.layerDirs.length, 1);
});

test('a layer blob whose content does not match its digest is rejected and not stored', async (t) => {
  const image = makeImage();
  const layerDigest = [...image.blobs.keys()][1] as string;
  // Same length as the real layer, one byte different: only the digest can tell.
  const evil = Buffer.from(image.blobs.get(layerDigest) ?? Buffer.alloc(0));
  evil[evil.length - 10] = (evil[evil.length - 10] ?? 0) ^ 0xff;
  const { host } = await fakeRegistry(t, serveImage(image, 'v1', { blob: (d) => (d === layerDigest ? evil : undefined) }));
  const { root, store } = await storeIn(t);
  const error = await t.throwsAsync(store.pull(`${host}/test/app:v1`), { instanceOf: DigestMismatchError });
  t.regex(error.message, new RegExp(`layer ${layerDigest}.*digest mismatch: expected ${layerDigest}, got sha256:`));
  t.deepEqual(await leftovers(root), []);
  t.false((await readdir(join(root, 'blobs', 'sha256'))).includes(layerDigest.slice(7)));
  t.deepEqual(await store.list(), []);
});

test('a blob longer than its descriptor says is rejected', async (t) => {
  const image = makeImage();
  const layerDigest = [...image.blobs.keys()][1] as string;
  const { host } = await fakeRegistry(t, serveImage(image, 'v1', { blob: (d) => (d === layerDigest ? Buffer.alloc(5000, 1) : undefined) }));
  const { root, store } = await storeIn(t);
  const error = await t.throwsAsync(store.pull(`${host}/test/app:v1`), { instanceOf: SizeMismatchError });
  t.regex(error.message, /size mismatch: expected \d+ bytes, got 5000/);
  t.deepEqual(await leftovers(root), []);
});

test('a manifest that does not hash to the digest asked for is rejected', async (t) => {
  const image = makeImage();
  const other = makeImage('arm64');
  const { host } = await fakeRegistry(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end(req.url?.includes(image.manifestDigest) ? other.manifest : image.manifest);
    return true;
  });
  const { store } = await storeIn(t);
  const error = await t.throwsAsync(store.pull(`${host}/test/app@${image.manifestDigest}`), { instanceOf: DigestMismatchError });
  t.regex(error.message, /manifest of .*digest mismatch/);
});

test('an invalid manifest is rejected naming what is wrong', async (t) => {
  const { host } = await fakeRegistry(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: 'sha256:zz', size: 1 } }),
    );
    return true;
  });
  const { store } = await storeIn(t);
  const error = await t.throwsAsync(store.pull(`${host}/test/app:v1`));
  t.regex(error.message, /invalid image manifest: config\.digest: expected "sha256:".*; layers: /);
});

test('a missing image reports the registry error code', async (t) => {
  const { host } = await fakeRegistry(t, () => false);
  const { store } = await storeIn(t);
  const error = await t.throwsAsync(store.pull(`${host}/test/app:v1`), { instanceOf: RegistryError });
  t.regex(error.message, /404 Not Found \(NAME_UNKNOWN: repository name not known to registry\)/);
});

test('selects linux/amd64 from an index, follows blob redirects and does bearer auth', async (t) => {
  const amd = makeImage('amd64');
  const arm = makeImage('arm64');
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: arm.manifestDigest,
          size: arm.manifest.length,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: amd.manifestDigest,
          size: amd.manifest.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    }),
  );
  const token = 'sesame';
  let host = '';
  const registry = await fakeRegistry(t, (req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/token?')) {
      const params = new URL(url, 'http://x').searchParams;
      if (params.get('scope') !== 'repository:test/app:pull' || params.get('service') !== 'fake') return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token }));
      return true;
    }
    if (url.startsWith('/storage/')) {
      const body = amd.blobs.get(url.slice('/storage/'.length));
      if (!body) return false;
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
      return true;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="fake",scope="repository:test/app:pull"` });
      res.end();
      return true;
    }
    if (url === '/v2/test/app/manifests/multi') {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' });
      res.end(index);
      return true;
    }
    if (url === `/v2/test/app/manifests/${amd.manifestDigest}`) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.end(amd.manifest);
      return true;
    }
    const blob = /^\/v2\/test\/app\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url)?.[1];
    if (blob !== undefined) {
      res.writeHead(307, { location: `/storage/${blob}` });
      res.end();
      return true;
    }
    return false;
  });
  host = registry.host;
  const { store } = await storeIn(t);
  const pulled = await store.pull(`${host}/test/app:multi`);
  t.is(pulled.digest, amd.manifestDigest);
  t.is(pulled.indexDigest, sha256Digest(index));
  t.false(registry.requests.some((r) => r.includes(arm.manifestDigest)));
  t.true(registry.requests.some((r) => r.startsWith('GET /storage/')));
  // "name@<index digest>" finds the same image without asking the registry again.
  const before = registry.requests.length;
  t.is((await store.ensure(`${host}/test/app@${sha256Digest(index)}`)).digest, amd.manifestDigest);
  t.is(registry.requests.length, before);
});

test('parses WWW-Authenticate challenges', (t) => {
  t.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
  });
  t.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  t.is(parseChallenge(null), undefined);
});

test('a blob download that stalls is aborted after the idle timeout', async (t) => {
  const { host } = await fakeRegistry(t, (_req, res) => {
    res.writeHead(200, { 'content-length': 100 });
    res.write(Buffer.alloc(10));
    t.teardown(() => res.destroy()); // never finishes on its own
    return true;
  });
  const client = new RegistryClient({ blobIdleTimeoutMs: 300 });
  const ref = { registry: host, repository: 'test/app', tag: 'v1' };
  const body = await client.openBlob(ref, { mediaType: 'application/octet-stream', digest: sha256Digest('x'), size: 100 });
  const started = Date.now();
  const error = await t.throwsAsync(async () => {
    for await (const _chunk of body) {
      // keep reading until the stall is noticed
    }
  });
  t.regex(error.message, /no data received for 300 ms/);
  t.true(Date.now() - started < 5000);
});
