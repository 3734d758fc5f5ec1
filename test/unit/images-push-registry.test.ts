// The push protocol against small fake registries on 127.0.0.1, for what Debian's docker-registry
// cannot be made to do: hand out an upload Location on another origin with a signature in its
// query, confirm a wrong digest, or stop reading an upload. (The push against the real registry:
// test/integration/images-push.test.ts.)
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { sha256Digest } from '../../common/images/digest.js';
import { parseReference } from '../../common/images/reference.js';
import type { PushProgress } from '../../common/images/types.js';
import type { ImageManifest } from '../../agent/images/manifest.js';
import { RegistryClient } from '../../agent/images/registry-client.js';
import { type PushInput, pushManifest } from '../../agent/images/registry-push.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

async function server(t: ExecutionContext, handler: Handler): Promise<{ origin: string; host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const http = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    http.closeAllConnections();
    return new Promise<void>((resolve) => http.close(() => resolve()));
  });
  const host = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  return { origin: `http://${host}`, host, seen };
}

/** A one-layer image whose blobs are files in a temporary directory, as the store keeps them. */
async function image(t: ExecutionContext): Promise<Omit<PushInput, 'target' | 'onProgress'>> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-push-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const layer = Buffer.alloc(4096, 7);
  for (const blob of [config, layer]) await writeFile(join(dir, sha256Digest(blob).slice(7)), blob);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length }],
  };
  return {
    manifest,
    manifestBytes: Buffer.from(JSON.stringify(manifest)),
    blobPath: (digest) => join(dir, digest.slice(7)),
    concurrency: 1,
    blobIdleTimeoutMs: 60_000,
  };
}

const instant = { retry: { maxAttempts: 2 }, sleep: () => Promise.resolve() };

test('an upload Location on another origin gets no Authorization, and its signed query is kept out of errors', async (t) => {
  const storage = await server(t, (_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'storage refused' }] }));
  });
  const registry = await server(t, (req, res) => {
    if (req.headers.authorization !== 'Basic dTpw') {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
      res.end();
      return;
    }
    if (req.method === 'HEAD') res.writeHead(404);
    else if (req.method === 'POST') res.writeHead(202, { location: `${storage.origin}/upload/1?X-Signature=SECRET-SIGNATURE` });
    else res.writeHead(500);
    res.end();
  });
  const client = new RegistryClient({ credentials: () => ({ username: 'u', password: 'p' }), ...instant });
  const input = await image(t);
  const error = await t.throwsAsync(
    pushManifest(client, { ...input, target: { ...parseReference(`${registry.host}/team/app:v1`), tag: 'v1' }, onProgress: () => undefined }),
  );
  t.regex(
    error.message,
    new RegExp(
      `^push ${registry.host}/team/app:v1: uploading config sha256:[a-f0-9]{64}: PUT ${storage.origin}/upload/1: 400 Bad Request \\(BLOB_UPLOAD_INVALID: storage refused\\)$`,
    ),
  );
  t.false(error.message.includes('SECRET'), error.message);
  t.deepEqual(
    storage.seen.map((s) => [s.method, s.authorization]),
    [['PUT', undefined]],
    'the registry credentials never went to the storage host',
  );
  t.true(storage.seen[0]?.url.startsWith('/upload/1?X-Signature=SECRET-SIGNATURE&digest=sha256%3A'), storage.seen[0]?.url);
  t.true(registry.seen.some((s) => s.authorization === 'Basic dTpw'));
});

test('a registry that confirms another digest for the manifest fails the push', async (t) => {
  const uploads = new Map<string, Buffer>();
  const registry = await server(t, (req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'HEAD') res.writeHead(404);
    else if (req.method === 'POST') res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u1' });
    else if (req.method === 'PUT' && url.pathname.endsWith('/uploads/u1')) {
      const digest = url.searchParams.get('digest') ?? '';
      uploads.set(digest, body);
      res.writeHead(201, { 'docker-content-digest': digest });
    } else if (req.method === 'PUT') res.writeHead(201, { 'docker-content-digest': `sha256:${'0'.repeat(64)}` });
    else res.writeHead(500);
    res.end();
  });
  const input = await image(t);
  const events: PushProgress[] = [];
  const error = await t.throwsAsync(
    pushManifest(new RegistryClient(instant), {
      ...input,
      target: { ...parseReference(`${registry.host}/team/app:v1`), tag: 'v1' },
      onProgress: (e) => events.push(e),
    }),
  );
  t.regex(error.message, /putting the manifest: PUT http:\/\/127\.0\.0\.1:\d+\/v2\/team\/app\/manifests\/v1 \(Docker-Content-Digest header\): digest mismatch/);
  // The blobs arrived whole, each under its own digest (a relative Location was resolved against the registry).
  for (const [digest, body] of uploads) t.is(sha256Digest(body), digest);
  t.is(uploads.size, 2);
  t.deepEqual(
    events.filter((e) => e.status === 'pushed').map((e) => e.kind),
    ['config', 'layer'],
  );
});

test('an upload the registry stops answering is aborted after the idle timeout, and tried again within the policy', async (t) => {
  const registry = await server(t, (req, res) => {
    if (req.method === 'HEAD') res.writeHead(404);
    else if (req.method === 'POST') res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u1' });
    else return; // PUT: never answered
    res.end();
  });
  const input = await image(t);
  const retries: string[] = [];
  const error = await t.throwsAsync(
    pushManifest(new RegistryClient({ ...instant, onRetry: (m) => retries.push(m) }), {
      ...input,
      blobIdleTimeoutMs: 200,
      target: { ...parseReference(`${registry.host}/team/app:v1`), tag: 'v1' },
      onProgress: () => undefined,
    }),
  );
  t.regex(error.message, /uploading config sha256:[a-f0-9]{64}: PUT http:\/\/127\.0\.0\.1:\d+\/v2\/team\/app\/blobs\/uploads\/u1: no progress for 200 ms/);
  // One retry, then the policy (two attempts) is spent. How many PUTs reached the server before their
  // abort depends on timing under load, so it is not asserted.
  t.is(retries.length, 1, retries.join('\n'));
  t.regex(retries[0] ?? '', /^PUT http:\/\/127\.0\.0\.1:\d+\/v2\/team\/app\/blobs\/uploads\/u1: .*retrying/);
});

test('a mount the registry refuses (401) or declines (202) falls back to an upload', async (t) => {
  const uploads = new Map<string, Buffer>();
  const registry = await server(t, (req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const from = url.searchParams.get('from');
    if (req.method === 'HEAD') res.writeHead(404);
    else if (req.method === 'POST' && from === 'refusing/source') res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
    else if (req.method === 'POST') res.writeHead(202, { location: `/v2/team/app/blobs/uploads/${uploads.size}` });
    else if (req.method === 'PUT' && url.pathname.includes('/uploads/')) {
      const digest = url.searchParams.get('digest') ?? '';
      uploads.set(digest, body);
      res.writeHead(201, { 'docker-content-digest': digest });
    } else if (req.method === 'PUT') res.writeHead(201, { 'docker-content-digest': sha256Digest(body) });
    else res.writeHead(500);
    res.end();
  });
  const input = await image(t);
  for (const mountFrom of ['refusing/source', 'declining/source']) {
    uploads.clear();
    const result = await pushManifest(new RegistryClient({ credentials: () => ({ username: 'u', password: 'p' }), ...instant }), {
      ...input,
      mountFrom,
      target: { ...parseReference(`${registry.host}/team/app:v1`), tag: 'v1' },
      onProgress: () => undefined,
    });
    t.deepEqual([result.pushed, result.mounted], [2, 0], mountFrom);
    t.is(uploads.size, 2, mountFrom);
  }
  const mounts = registry.seen.filter((s) => s.method === 'POST' && s.url.includes('mount='));
  t.true(mounts.some((s) => s.url.includes('from=refusing%2Fsource')) && mounts.some((s) => s.url.includes('from=declining%2Fsource')));
});

test('a push called off (the client went away) starts no further blob and never puts the manifest', async (t) => {
  const registry = await server(t, (req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'HEAD') res.writeHead(404);
    else if (req.method === 'POST') res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u1' });
    else if (req.method === 'PUT' && url.pathname.includes('/uploads/')) res.writeHead(201, { 'docker-content-digest': sha256Digest(body) });
    else res.writeHead(500);
    res.end();
  });
  const input = await image(t);
  const cancel = new AbortController();
  const error = await t.throwsAsync(
    pushManifest(new RegistryClient(instant), {
      ...input,
      signal: cancel.signal,
      target: { ...parseReference(`${registry.host}/team/app:v1`), tag: 'v1' },
      onProgress: (e) => {
        if (e.status === 'pushed') cancel.abort();
      },
    }),
  );
  t.regex(error.message, /^push 127\.0\.0\.1:\d+\/team\/app:v1: cancelled: the push was called off before its manifest was put; the tag is unchanged$/);
  t.deepEqual(
    registry.seen.map((s) => s.method),
    ['HEAD', 'POST', 'PUT'],
    'the config only; the layer and the manifest were never sent',
  );
});
