// Retries: the pure decision (back-off, Retry-After) and the registry client against a flaky
// fake registry on 127.0.0.1 (503 twice then OK, 429 with Retry-After, dropped connections,
// bodies cut short). Waiting is injected, so no test sleeps for real.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256Digest } from '../../common/images/digest.js';
import { LocalImageStore } from '../../agent/images/image-store.js';
import { RegistryClient, RegistryError } from '../../agent/images/registry-client.js';
import { DEFAULT_RETRY_POLICY, decideRetry, isRetryableStatus, parseRetryAfter, validateRetryPolicy } from '../../agent/images/retry.js';

test('back-off doubles from the base delay with jitter in the upper half, capped', (t) => {
  const policy = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };
  t.deepEqual(
    decideRetry(1, policy, () => 0),
    { retry: true, delayMs: 50 },
  );
  t.deepEqual(
    decideRetry(1, policy, () => 1),
    { retry: true, delayMs: 100 },
  );
  t.deepEqual(
    decideRetry(3, policy, () => 1),
    { retry: true, delayMs: 400 },
  );
  t.deepEqual(
    decideRetry(8, policy, () => 1),
    { retry: true, delayMs: 1000 },
  );
  t.deepEqual(
    decideRetry(10, policy, () => 1),
    { retry: false, reason: 'gave up after 10 attempts' },
  );
});

test('Retry-After is honoured, in seconds or as a date, and refused when too long', (t) => {
  const now = Date.parse('2026-11-22T12:00:00Z');
  t.is(parseRetryAfter('3', now), 3000);
  t.is(parseRetryAfter('Sun, 22 Nov 2026 12:00:07 GMT', now), 7000);
  t.is(parseRetryAfter('Sun, 22 Nov 2026 11:00:00 GMT', now), 0);
  t.is(parseRetryAfter('soon', now), undefined);
  t.is(parseRetryAfter(null, now), undefined);
  t.deepEqual(
    decideRetry(1, DEFAULT_RETRY_POLICY, () => 0.5, 3000),
    { retry: true, delayMs: 3000 },
  );
  const refused = decideRetry(1, DEFAULT_RETRY_POLICY, () => 0.5, 3_600_000);
  t.false(refused.retry);
  if (!refused.retry) t.regex(refused.reason, /asked to retry after 3600 s, longer than the 60 s we wait/);
});

test('which statuses are retried', (t) => {
  for (const status of [408, 429, 500, 502, 503, 504]) t.true(isRetryableStatus(status), String(status));
  for (const status of [400, 401, 403, 404, 501]) t.false(isRetryableStatus(status), String(status));
  t.throws(() => validateRetryPolicy({ ...DEFAULT_RETRY_POLICY, maxAttempts: 0 }), { message: /maxAttempts must be an integer >= 1, got 0/ });
});

const EMPTY_TAR = Buffer.alloc(1024);
const LAYER = gzipSync(EMPTY_TAR);
const CONFIG = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256Digest(EMPTY_TAR)] } }));
const MANIFEST = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(CONFIG), size: CONFIG.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256Digest(LAYER), size: LAYER.length }],
  }),
);
const BLOBS = new Map([
  [sha256Digest(CONFIG), CONFIG],
  [sha256Digest(LAYER), LAYER],
]);

/** A registry serving one image, whose `misbehave` gets first say on every request. */
async function flakyRegistry(
  t: ExecutionContext,
  misbehave: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<{ host: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (misbehave(req, res)) return;
    const url = req.url ?? '';
    if (url === '/v2/test/app/manifests/v1') {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.end(MANIFEST);
      return;
    }
    const blob = BLOBS.get(/\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url)?.[1] ?? '');
    if (blob) {
      res.writeHead(200, { 'content-length': blob.length });
      res.end(blob);
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function storeWithInstantRetries(
  t: ExecutionContext,
  sleeps: number[],
  maxAttempts = 5,
): Promise<{ store: LocalImageStore; root: string; log: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-images-retry-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const log: string[] = [];
  const store = new LocalImageStore({
    root,
    platform: { os: 'linux', architecture: 'amd64' },
    credentialsFile: join(root, 'none.json'),
    log: (m) => log.push(m),
    registry: {
      retry: { maxAttempts },
      random: () => 1,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    },
  });
  return { store, root, log };
}

test('503 twice, then OK: the pull succeeds after two back-offs', async (t) => {
  let failures = 0;
  const { host, requests } = await flakyRegistry(t, (req, res) => {
    if (req.url === '/v2/test/app/manifests/v1' && failures < 2) {
      failures++;
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'try later' }] }));
      return true;
    }
    return false;
  });
  const sleeps: number[] = [];
  const { store, log } = await storeWithInstantRetries(t, sleeps);
  const image = await store.pull(`${host}/test/app:v1`);
  t.is(image.digest, sha256Digest(MANIFEST));
  t.deepEqual(sleeps, [250, 500]);
  t.is(requests.filter((r) => r.endsWith('/manifests/v1')).length, 3);
  t.regex(log[0] ?? '', /503 Service Unavailable \(UNAVAILABLE: try later\); retrying in 250 ms \(attempt 2 of 5\)/);
});

test('429 with Retry-After waits as long as the registry asked', async (t) => {
  let limited = false;
  const { host } = await flakyRegistry(t, (req, res) => {
    if (req.url?.includes('/blobs/') && !limited) {
      limited = true;
      res.writeHead(429, { 'retry-after': '2' });
      res.end();
      return true;
    }
    return false;
  });
  const sleeps: number[] = [];
  const { store } = await storeWithInstantRetries(t, sleeps);
  await store.pull(`${host}/test/app:v1`);
  t.deepEqual(sleeps, [2000]);
});

test('a registry that stays down fails after the last attempt, naming the status and the count', async (t) => {
  const { host, requests } = await flakyRegistry(t, (_req, res) => {
    res.writeHead(502);
    res.end();
    return true;
  });
  const sleeps: number[] = [];
  const { store, root } = await storeWithInstantRetries(t, sleeps, 3);
  const error = await t.throwsAsync(store.pull(`${host}/test/app:v1`), { instanceOf: RegistryError });
  t.regex(error.message, /502 Bad Gateway \(gave up after 3 attempts\)/);
  t.is(requests.length, 3);
  t.is(sleeps.length, 2);
  t.deepEqual(await readdir(join(root, 'tmp')).catch(() => []), []);
});

test('a 404 is not retried', async (t) => {
  const { host, requests } = await flakyRegistry(t, () => false);
  const sleeps: number[] = [];
  const { store } = await storeWithInstantRetries(t, sleeps);
  await t.throwsAsync(store.pull(`${host}/test/app:v2`), { message: /404/ });
  t.is(requests.length, 1);
  t.deepEqual(sleeps, []);
});

test('dropped connections and a body cut short are downloaded again', async (t) => {
  let dropped = false;
  let cut = false;
  const layerDigest = sha256Digest(LAYER);
  const { host, requests } = await flakyRegistry(t, (req, res) => {
    if (req.url === '/v2/test/app/manifests/v1' && !dropped) {
      dropped = true;
      req.socket.destroy(); // no response at all
      return true;
    }
    if (req.url?.endsWith(layerDigest) && !cut) {
      cut = true;
      res.writeHead(200, { 'content-length': LAYER.length });
      res.write(LAYER.subarray(0, 10));
      setTimeout(() => res.socket?.destroy(), 20);
      return true;
    }
    return false;
  });
  const sleeps: number[] = [];
  const { store, log } = await storeWithInstantRetries(t, sleeps);
  const events: string[] = [];
  const image = await store.pull(`${host}/test/app:v1`, { onProgress: (e) => events.push(`${e.kind}:${e.status}`) });
  t.is(image.layers.length, 1);
  t.is(requests.filter((r) => r.endsWith(layerDigest)).length, 2);
  t.is(sleeps.length, 2);
  t.true(events.includes('layer:retrying'));
  t.true(
    log.some((m) => /downloading again/.test(m)),
    log.join('\n'),
  );
});

test('the client retries a token request that fails with 503', async (t) => {
  let tokenFailures = 0;
  let host = '';
  const server = await flakyRegistry(t, (req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/token')) {
      if (tokenFailures++ === 0) {
        res.writeHead(503);
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'tok' }));
      }
      return true;
    }
    if (req.headers.authorization !== 'Bearer tok') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="fake"` });
      res.end();
      return true;
    }
    return false;
  });
  host = server.host;
  const sleeps: number[] = [];
  const client = new RegistryClient({ retry: { maxAttempts: 3 }, random: () => 0, sleep: async (ms) => void sleeps.push(ms) });
  const manifest = await client.getManifest({ registry: host, repository: 'test/app', tag: 'v1' }, 'v1');
  t.is(manifest.digest, sha256Digest(MANIFEST));
  t.deepEqual(sleeps, [125]);
});
