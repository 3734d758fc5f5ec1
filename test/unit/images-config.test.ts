// Pure parts of the image store: image config defaults (ExposedPorts, Healthcheck), credentials
// file validation, which references name a stored image, and the concurrency helpers.
import test from 'ava';
import { mapLimit, ReadWriteLock } from '../../agent/images/concurrency.js';
import { referenceNamesImage } from '../../common/images/image-usage.js';
import { InvalidDocumentError, imageConfigSchema, parseWith, runtimeConfigOf } from '../../agent/images/manifest.js';
import { parseCredentialsFile } from '../../agent/images/registry-credentials.js';
import type { ImageRecord } from '../../common/images/types.js';

const DIFF_ID = `sha256:${'a'.repeat(64)}`;

function configOf(config: object): Buffer {
  return Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', config, rootfs: { type: 'layers', diff_ids: [DIFF_ID] } }));
}

test('image config gives Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts and Healthcheck', (t) => {
  const config = parseWith(
    imageConfigSchema,
    configOf({
      Entrypoint: ['/entry'],
      Cmd: ['serve'],
      Env: ['A=1'],
      WorkingDir: '/app',
      User: '1000:1000',
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Healthcheck: { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 30e9, Timeout: 3e9, StartPeriod: 0, Retries: 2 },
    }),
    'config',
  );
  t.deepEqual(runtimeConfigOf(config), {
    entrypoint: ['/entry'],
    cmd: ['serve'],
    env: ['A=1'],
    workingDir: '/app',
    user: '1000:1000',
    exposedPorts: ['80/tcp', '53/udp'],
    healthcheck: { test: ['CMD-SHELL', 'wget -q localhost'], intervalMs: 30000, timeoutMs: 3000, retries: 2 },
  });
});

test('a disabled healthcheck and Docker nulls are kept as such', (t) => {
  const config = parseWith(imageConfigSchema, configOf({ Healthcheck: { Test: ['NONE'] }, Env: null, ExposedPorts: null }), 'config');
  t.deepEqual(runtimeConfigOf(config), { healthcheck: { test: ['NONE'] } });
  t.deepEqual(runtimeConfigOf(parseWith(imageConfigSchema, configOf({ Healthcheck: { Test: [] } }), 'config')), {}, 'an empty Test inherits: nothing to say');
});

test('a malformed healthcheck or exposed port is refused naming the field', (t) => {
  t.throws(() => parseWith(imageConfigSchema, configOf({ Healthcheck: { Test: ['RUN', 'x'] } }), 'config of x'), {
    instanceOf: InvalidDocumentError,
    message: /config of x: config\.Healthcheck\.Test: must be \[\], \["NONE"\]/,
  });
  t.throws(() => parseWith(imageConfigSchema, configOf({ Healthcheck: { Test: ['CMD'], Interval: 1.5 } }), 'c'), {
    message: /Healthcheck\.Test|Healthcheck\.Interval/,
  });
  t.throws(() => parseWith(imageConfigSchema, configOf({ ExposedPorts: { http: {} } }), 'c'), {
    message: /ExposedPorts\.http: expected "PORT\[\/tcp\|udp\|sctp\]"/,
  });
});

test('credentials file: username/password and Docker-style auth, hosts normalised', (t) => {
  const map = parseCredentialsFile(
    JSON.stringify({
      auths: {
        '127.0.0.1:5000': { username: 'u', password: 'p:w' },
        'https://index.docker.io/v1/': { auth: Buffer.from('hub:secret').toString('base64') },
      },
    }),
    '/etc/r.json',
  );
  t.deepEqual(map.get('127.0.0.1:5000'), { username: 'u', password: 'p:w' });
  t.deepEqual(map.get('docker.io'), { username: 'hub', password: 'secret' });
});

test('credentials file errors name the file and the entry', (t) => {
  const parse = (value: unknown): unknown => parseCredentialsFile(typeof value === 'string' ? value : JSON.stringify(value), '/r.json');
  t.throws(() => parse('{'), { message: /^\/r\.json: not valid JSON/ });
  t.throws(() => parse({ registries: {} }), { message: /^\/r\.json: .*expected \{"auths"/ });
  t.throws(() => parse({ auths: { 'reg:5000': { username: 'u' } } }), { message: '/r.json: auths.reg:5000: needs "username" and "password" (or "auth")' });
  t.throws(() => parse({ auths: { 'reg:5000': { auth: 'bm9jb2xvbg==' } } }), { message: /auths\.reg:5000: "auth" must be base64 of "username:password"/ });
  t.throws(() => parse({ auths: { 'reg:5000': { auth: 'dTpw', username: 'u' } } }), { message: /either "auth" or "username" and "password"/ });
  t.throws(() => parse({ auths: { 'reg:5000': { username: 'u', password: 'p', token: 'x' } } }), { message: /auths\.reg:5000/ });
  t.throws(() => parse({ auths: { 'bad host': { username: 'u', password: 'p' } } }), { message: /auths\.bad host: "bad host" is not a registry host/ });
  t.throws(() => parse({ auths: { 'index.docker.io': { username: 'u', password: 'p' }, 'docker.io': { username: 'v', password: 'q' } } }), {
    message: /docker\.io is listed twice/,
  });
});

function record(reference: string, digest: string, indexDigest?: string): ImageRecord {
  const r: ImageRecord = { reference, digest, configDigest: DIFF_ID, layers: [DIFF_ID], size: 1, config: {}, createdAt: '' };
  if (indexDigest) r.indexDigest = indexDigest;
  return r;
}

test('which task image references name a stored image', (t) => {
  const d = `sha256:${'1'.repeat(64)}`;
  const idx = `sha256:${'2'.repeat(64)}`;
  const busybox = record('docker.io/library/busybox:latest', d, idx);
  t.true(referenceNamesImage('busybox', busybox));
  t.true(referenceNamesImage('busybox:latest', busybox));
  t.true(referenceNamesImage(`busybox@${d}`, busybox), 'by manifest digest');
  t.true(referenceNamesImage(`docker.io/library/busybox@${idx}`, busybox), 'by index digest');
  t.true(referenceNamesImage(d, busybox), 'a bare digest');
  t.false(referenceNamesImage('busybox:1.36', busybox));
  t.false(referenceNamesImage(`other@${d}`, busybox), 'same digest, other repository');
  t.false(referenceNamesImage('Not A Reference', busybox));
  t.true(referenceNamesImage(`app@${d}`, record(d, d)), 'an unnamed (loaded) image by its digest');
});

test('mapLimit keeps order, bounds concurrency and stops starting work after a failure', async (t) => {
  let running = 0;
  let max = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
    running++;
    max = Math.max(max, running);
    await new Promise((resolve) => setTimeout(resolve, n));
    running--;
    return n * 10;
  });
  t.deepEqual(out, [50, 10, 40, 20, 30]);
  t.is(max, 2);
  const started: number[] = [];
  await t.throwsAsync(
    mapLimit([1, 2, 3, 4], 1, async (n) => {
      started.push(n);
      if (n === 2) throw new Error('boom');
    }),
    { message: 'boom' },
  );
  t.deepEqual(started, [1, 2]);
});

test('the store lock: readers share, a writer waits for them and holds back later readers', async (t) => {
  const lock = new ReadWriteLock();
  const order: string[] = [];
  let releaseReader: () => void = () => undefined;
  const reader1 = lock.read(() => new Promise<void>((resolve) => (releaseReader = () => (order.push('r1 end'), resolve()))));
  const reader2 = lock.read(async () => void order.push('r2'));
  await reader2;
  const writer = lock.write(async () => void order.push('w'));
  const reader3 = lock.read(async () => void order.push('r3'));
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.deepEqual(order, ['r2'], 'the writer waits for reader 1; reader 3 waits behind the writer');
  releaseReader();
  await Promise.all([reader1, writer, reader3]);
  t.deepEqual(order, ['r2', 'r1 end', 'w', 'r3']);
});
