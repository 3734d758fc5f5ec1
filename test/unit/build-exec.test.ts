// The image builder's pure pieces (cache keys, whiteout mapping, tar entries, globs, configs) and
// the layer diff on a real directory shaped like an overlay upper dir (whiteout device, opaque
// xattr, hard link, capability xattr), read back with node-tar and with our own layer unpacker.
import test from 'ava';
import { constants } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { baseCacheKey, combineDigests, sourcesDigest, stepCacheKey, type SourceFileDigest } from '../../agent/build/cache-key.js';
import { classifyUpperEntry, deviceNumbers, layerTar, opaqueMarkerPath, whiteoutPath } from '../../agent/build/layer-diff.js';
import { encodeEntryHeader, paxRecord } from '../../agent/build/tar-entries.js';
import { globComponentRegex, hasGlob, expandSources } from '../../agent/build/copy-sources.js';
import { archiveKindOf } from '../../agent/build/add-archive.js';
import { resolveInRoot } from '../../agent/build/in-root.js';
import { toBuildImageConfig, toContainerConfig, parseBaseConfig, historyFor, imageCreated } from '../../agent/build/image-config.js';
import { writeLayerBlob } from '../../agent/build/layer-blob.js';
import { unpackLayer } from '../../agent/images/layer-unpack.js';
import { lgetxattr, lsetxattr, mknod } from '../../agent/runtime/native.js';
import { sha256Digest } from '../../common/images/digest.js';
import type { BuildImageConfig } from '../../common/build/plan-types.js';
import { BuildError } from '../../common/build/builder.js';
import { checkTags } from '../../agent/build/executor.js';

const file = (path: string, sha: string, extra: Partial<SourceFileDigest> = {}): SourceFileDigest => ({
  path,
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  sha256: sha,
  ...extra,
});

test('cache key: the same parent, step and inputs give the same key; each of them changes it', (t) => {
  const parent = baseCacheKey({ kind: 'image', configDigest: `sha256:${'a'.repeat(64)}` });
  const key = stepCacheKey(parent, 'RUN echo hi', '');
  t.is(stepCacheKey(parent, 'RUN echo hi', ''), key);
  t.regex(key, /^sha256:[a-f0-9]{64}$/);
  t.not(stepCacheKey(baseCacheKey({ kind: 'scratch' }), 'RUN echo hi', ''), key);
  t.not(stepCacheKey(parent, 'RUN echo ho', ''), key);
  t.not(stepCacheKey(parent, 'RUN echo hi', 'sha256:x'), key);
  // Length-prefixed fields: moving text between fields changes the key.
  t.not(stepCacheKey(parent, 'ab', 'c'), stepCacheKey(parent, 'a', 'bc'));
});

test('sources digest: independent of listing order; content, mode, owner and symlink target count, and duplicates are refused', (t) => {
  const a = [file('a', 'sha256:1'), file('dir/b', 'sha256:2')];
  const digest = sourcesDigest(a);
  t.is(sourcesDigest([...a].reverse()), digest);
  t.not(sourcesDigest([file('a', 'sha256:9'), file('dir/b', 'sha256:2')]), digest);
  t.not(sourcesDigest([file('a', 'sha256:1', { mode: 0o755 }), file('dir/b', 'sha256:2')]), digest);
  t.not(sourcesDigest([file('a', 'sha256:1', { uid: 1000 }), file('dir/b', 'sha256:2')]), digest);
  t.not(sourcesDigest([file('a', 'sha256:1'), file('dir/c', 'sha256:2')]), digest);
  const link1 = { path: 'l', type: 'symlink' as const, mode: 0o777, uid: 0, gid: 0, target: 'x' };
  t.not(sourcesDigest([link1]), sourcesDigest([{ ...link1, target: 'y' }]));
  t.throws(() => sourcesDigest([file('a', 'sha256:1'), file('a', 'sha256:1')]), { message: /listed twice/ });
  t.not(combineDigests(['a', 'b']), combineDigests(['b', 'a']));
});

test('whiteout mapping: a 0:0 character device is a whiteout, other devices stay devices; paths of markers', (t) => {
  t.is(classifyUpperEntry(constants.S_IFCHR, 0, 0), 'whiteout');
  t.is(classifyUpperEntry(constants.S_IFCHR, 1, 3), 'char-device');
  t.is(classifyUpperEntry(constants.S_IFBLK, 0, 0), 'block-device');
  t.is(classifyUpperEntry(constants.S_IFREG | 0o644, 0, 0), 'file');
  t.is(classifyUpperEntry(constants.S_IFDIR | 0o755, 0, 0), 'directory');
  t.is(classifyUpperEntry(constants.S_IFLNK | 0o777, 0, 0), 'symlink');
  t.is(classifyUpperEntry(constants.S_IFIFO | 0o644, 0, 0), 'fifo');
  t.is(whiteoutPath('etc/hostname'), 'etc/.wh.hostname');
  t.is(whiteoutPath('top'), '.wh.top');
  t.is(opaqueMarkerPath('var/cache'), 'var/cache/.wh..wh..opq');
  // glibc's makedev(259, 263): minor bits above the low 8 sit at bit 20 and up.
  const rdev = (259n << 8n) | 7n | (1n << 20n);
  t.deepEqual(deviceNumbers(rdev), { major: 259, minor: 263 });
  t.deepEqual(deviceNumbers(0n), { major: 0, minor: 0 });
  t.deepEqual(deviceNumbers((1n << 8n) | 3n), { major: 1, minor: 3 });
});

test('pax records count their own length, and a long path or an xattr gets a pax header node-tar reads back', async (t) => {
  const record = paxRecord('path', Buffer.from('x'.repeat(95)));
  t.is(record.length, Number(record.toString('latin1').split(' ')[0]));
  const shortRecord = paxRecord('a', Buffer.from('b'));
  t.is(shortRecord.toString(), '6 a=b\n');
  const longPath = `${'deep/'.repeat(40)}file.txt`;
  const capability = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const tar = Buffer.concat([
    encodeEntryHeader({ path: longPath, type: 'File', mode: 0o640, uid: 70000, gid: 5, size: 0, mtime: new Date('2026-02-03T04:05:06Z') }),
    encodeEntryHeader({
      path: 'bin/ping',
      type: 'File',
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: new Date(0),
      xattrs: new Map([['security.capability', capability]]),
    }),
    Buffer.alloc(1024),
  ]);
  const entries = await readTar(tar);
  t.is(entries[0]?.path, longPath);
  t.is(entries[0]?.uid, 70000);
  t.is(entries[0]?.mode, 0o640);
  t.is(entries[1]?.path, 'bin/ping');
  // node-tar keeps unknown pax keys out of its entries; the record itself is in the stream.
  t.true(tar.includes(Buffer.concat([Buffer.from('SCHILY.xattr.security.capability='), capability, Buffer.from('\n')])));
});

test('globs follow Go filepath.Match per component', (t) => {
  t.true(hasGlob('*.txt'));
  t.false(hasGlob('plain.txt'));
  t.true(globComponentRegex('*.txt').test('a.txt'));
  t.true(globComponentRegex('*.txt').test('.hidden.txt'));
  t.false(globComponentRegex('*.txt').test('a.txt.bak'));
  t.true(globComponentRegex('file?.go').test('file1.go'));
  t.false(globComponentRegex('file?.go').test('file10.go'));
  t.true(globComponentRegex('[a-c]x').test('bx'));
  t.false(globComponentRegex('[^a-c]x').test('bx'));
  t.true(globComponentRegex('a\\*b').test('a*b'));
  t.false(globComponentRegex('a\\*b').test('axb'));
  t.true(globComponentRegex('a.b').test('a.b'));
  t.false(globComponentRegex('a.b').test('axb'));
});

test('archive kinds by magic bytes', (t) => {
  t.is(archiveKindOf(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  t.is(archiveKindOf(Buffer.from('BZh91AY')), 'bzip2');
  t.is(archiveKindOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0])), 'xz');
  const tarHead = Buffer.alloc(262);
  tarHead.write('ustar', 257, 'latin1');
  t.is(archiveKindOf(tarHead), 'tar');
  t.is(archiveKindOf(Buffer.from('just text')), undefined);
});

test('config: the planner form and the image form convert both ways; zero health durations are left out', (t) => {
  const config: BuildImageConfig = {
    env: ['PATH=/bin', 'A=1'],
    cmd: ['sh'],
    workingDir: '/app',
    user: 'nobody',
    exposedPorts: ['80/tcp'],
    volumes: ['/data'],
    labels: { a: 'b' },
    healthcheck: { test: ['CMD', 'true'], intervalNs: 5e9, timeoutNs: 0, startPeriodNs: 0, startIntervalNs: 0, retries: 3 },
    stopSignal: 'SIGINT',
    onBuild: [],
  };
  const image = toContainerConfig(config);
  t.deepEqual(image, {
    User: 'nobody',
    ExposedPorts: { '80/tcp': {} },
    Env: ['PATH=/bin', 'A=1'],
    Cmd: ['sh'],
    Volumes: { '/data': {} },
    WorkingDir: '/app',
    Labels: { a: 'b' },
    StopSignal: 'SIGINT',
    Healthcheck: { Test: ['CMD', 'true'], Interval: 5e9, Retries: 3 },
  });
  t.deepEqual(toBuildImageConfig(image), config);
  const base = parseBaseConfig(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: null, Cmd: ['sh'] }, history: [{ created_by: 'x' }] })),
    'base',
    {
      architecture: 'amd64',
      os: 'linux',
    },
  );
  t.deepEqual(base.config, { Cmd: ['sh'] });
  t.deepEqual(base.history, [{ created_by: 'x' }]);
  t.deepEqual(historyFor('ENV A=1', undefined, true), { created_by: '/bin/sh -c #(nop) ENV A=1', empty_layer: true });
  t.deepEqual(historyFor('RUN echo', ['/bin/sh', '-c', 'echo'], false), { created_by: '/bin/sh -c echo' });
});

test('in-root resolution never leaves the root: "..", absolute and relative symlinks stay inside', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tessera-inroot-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc', 'passwd'), 'inside\n');
  await symlink('/etc/passwd', join(root, 'abs'));
  await symlink('../../../../etc/passwd', join(root, 'etc', 'rel'));
  await symlink('/', join(root, 'up'));
  t.is(await resolveInRoot(root, '/abs', true), join(root, 'etc', 'passwd'));
  t.is(await resolveInRoot(root, 'etc/rel', true), join(root, 'etc', 'passwd'));
  t.is(await resolveInRoot(root, '../../etc/passwd', true), join(root, 'etc', 'passwd'));
  t.is(await resolveInRoot(root, 'up/up/etc/passwd', true), join(root, 'etc', 'passwd'));
  t.is(await resolveInRoot(root, '/abs', false), join(root, 'abs'));
  t.is(await resolveInRoot(root, 'missing/../../x', true), join(root, 'x'));
  await symlink('loop', join(root, 'loop'));
  await t.throwsAsync(resolveInRoot(root, 'loop', true), { message: /too many levels/ });
  // A context symlink to a host file copies the file of that name inside the context, or fails: never the host's.
  const matches = await expandSources(root, ['abs'], false, 'COPY abs /x');
  t.is(matches[0]?.entries[0]?.hostPath, join(root, 'etc', 'passwd'));
  t.is(await readFile(matches[0]?.entries[0]?.hostPath ?? '', 'utf8'), 'inside\n');
});

test('layer diff of an upper dir: whiteouts, opaque dirs, hard links, symlinks and capabilities, in name order, read back by our unpacker', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-diff-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const upper = join(dir, 'upper');
  await mkdir(join(upper, 'etc'), { recursive: true });
  await mkdir(join(upper, 'var', 'cache'), { recursive: true });
  await mkdir(join(upper, 'proc'));
  await writeFile(join(upper, 'etc', 'motd'), 'hello\n');
  await link(join(upper, 'etc', 'motd'), join(upper, 'etc', 'motd.hard'));
  await symlink('motd', join(upper, 'etc', 'motd.link'));
  mknod(join(upper, 'etc', 'hostname'), constants.S_IFCHR, 0, 0); // overlayfs's whiteout of a lower file
  lsetxattr(join(upper, 'var', 'cache'), 'trusted.overlay.opaque', Buffer.from('y'));
  await writeFile(join(upper, 'var', 'cache', 'new'), 'n');
  await writeFile(join(upper, 'ping'), 'binary');
  const capability = Buffer.from([0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  lsetxattr(join(upper, 'ping'), 'security.capability', capability);

  const chunks: Buffer[] = [];
  for await (const chunk of layerTar(upper, { mountPoints: new Set(['proc']), what: 'test layer' })) chunks.push(chunk);
  const tar = Buffer.concat(chunks);
  const entries = await readTar(tar);
  t.deepEqual(
    entries.map((e) => `${e.type} ${e.path}${e.linkpath ? ` -> ${e.linkpath}` : ''}`),
    [
      'Directory etc/',
      'File etc/.wh.hostname',
      'File etc/motd',
      'Link etc/motd.hard -> etc/motd',
      'SymbolicLink etc/motd.link -> motd',
      'File ping',
      'Directory var/',
      'Directory var/cache/',
      'File var/cache/.wh..wh..opq',
      'File var/cache/new',
    ],
  );
  t.true(tar.includes(Buffer.from('SCHILY.xattr.security.capability=')));
  // Deterministic: the same tree gives the same bytes.
  const again: Buffer[] = [];
  for await (const chunk of layerTar(upper, { mountPoints: new Set(['proc']), what: 'test layer' })) again.push(chunk);
  t.true(Buffer.concat(again).equals(tar));

  // Compressed with digests; our own unpacker turns it back into an upper-like directory.
  const blobPath = join(dir, 'layer.tar.gz');
  const blob = await writeLayerBlob(layerTar(upper, { mountPoints: new Set(['proc']), what: 'test layer' }), blobPath, 'gzip');
  t.is(blob.diffId, sha256Digest(tar));
  t.is(blob.digest, sha256Digest(await readFile(blobPath)));
  t.is(blob.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const unpacked = join(dir, 'unpacked');
  await mkdir(unpacked);
  const result = await unpackLayer(blobPath, unpacked, 'test layer');
  t.is(result.diffId, blob.diffId);
  const whiteout = await lstat(join(unpacked, 'etc', 'hostname'));
  t.true(whiteout.isCharacterDevice());
  t.is(lgetxattr(join(unpacked, 'var', 'cache'), 'trusted.overlay.opaque')?.toString(), 'y');
  t.is((await lstat(join(unpacked, 'etc', 'motd.hard'))).ino, (await lstat(join(unpacked, 'etc', 'motd'))).ino);
  t.deepEqual((await readdir(unpacked)).sort(), ['etc', 'ping', 'var']);
});

test('zstd layers (zstd-napi): the blob is a zstd frame, its digests are right, and it unpacks to the same diff-id', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-zstd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const upper = join(dir, 'upper');
  await mkdir(join(upper, 'etc'), { recursive: true });
  await writeFile(join(upper, 'etc', 'motd'), 'zstd '.repeat(10_000));
  const chunks: Buffer[] = [];
  for await (const chunk of layerTar(upper, { what: 'zstd layer' })) chunks.push(chunk);
  const tar = Buffer.concat(chunks);
  const blobPath = join(dir, 'layer.tar.zst');
  const blob = await writeLayerBlob(layerTar(upper, { what: 'zstd layer' }), blobPath, 'zstd');
  const bytes = await readFile(blobPath);
  t.is(blob.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  t.deepEqual([...bytes.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  t.is(blob.size, bytes.length);
  t.true(blob.size < tar.length / 10, `${blob.size} bytes for a ${tar.length}-byte tar of repeated text`);
  t.is(blob.diffId, sha256Digest(tar));
  t.is(blob.digest, sha256Digest(bytes));
  const unpacked = join(dir, 'unpacked');
  await mkdir(unpacked);
  t.is((await unpackLayer(blobPath, unpacked, 'zstd layer')).diffId, blob.diffId);
  t.is(await readFile(join(unpacked, 'etc', 'motd'), 'utf8'), 'zstd '.repeat(10_000));
});

async function readTar(tar: Buffer): Promise<Array<{ path: string; type: string; linkpath?: string; uid?: number; mode?: number }>> {
  const entries: Array<{ path: string; type: string; linkpath?: string; uid?: number; mode?: number }> = [];
  const parser = new Parser({ strict: true });
  parser.on('entry', (entry: ReadEntry) => {
    entries.push({
      path: entry.path,
      type: entry.type,
      ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
      ...(entry.uid === undefined ? {} : { uid: entry.uid }),
      ...(entry.mode === undefined ? {} : { mode: entry.mode }),
    });
    entry.resume();
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
    parser.end(tar);
  });
  return entries;
}

test('tags and the --push target are checked before a build starts', (t) => {
  const request = { tags: ['app:1'], dockerfilePath: 'Dockerfile', buildArgs: {}, noCache: false, labels: {}, compression: 'gzip' as const, push: false };
  t.notThrows(() => checkTags(request));
  t.throws(() => checkTags({ ...request, tags: ['Bad Name'] }), { instanceOf: BuildError, message: /-t Bad Name/ });
  t.throws(() => checkTags({ ...request, tags: [], push: true }), { message: /--push needs a tag/ });
  t.throws(() => checkTags({ ...request, push: true }), { message: /--push: .*names no registry/ });
  t.notThrows(() => checkTags({ ...request, tags: ['127.0.0.1:5000/app:1'], push: true }));
});

test("an image's created is its newest history time (stable for a fully cached build); the clock only without one", (t) => {
  const history = [
    { created: '2024-01-01T00:00:00Z', created_by: 'base' },
    { created_by: 'no time' },
    { created: '2026-12-07T07:00:00.123Z', created_by: 'RUN' },
    { created: 'not a date', created_by: 'odd' },
    { created: '2026-12-07T06:59:59Z', created_by: 'ENV', empty_layer: true },
  ];
  t.is(imageCreated(history, '2030-01-01T00:00:00.000Z'), '2026-12-07T07:00:00.123Z');
  t.is(imageCreated([{ created_by: 'x' }], '2030-01-01T00:00:00.000Z'), '2030-01-01T00:00:00.000Z');
  t.is(imageCreated([], 'clock'), 'clock');
});

test('a base image’s ONBUILD triggers reach the planner (which runs them first and clears them for the child)', (t) => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { OnBuild: ['RUN echo hi'], Cmd: ['sh'] } }));
  const base = parseBaseConfig(config, 'image base', { architecture: 'amd64', os: 'linux' });
  t.deepEqual(toBuildImageConfig(base.config).onBuild, ['RUN echo hi']);
});
