import test from 'ava';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header, type ReadEntry } from 'tar';
import { sha256Digest } from '../../common/images/digest.js';
import { OVERLAY_OPAQUE_XATTR, UnsafeLayerError, unpackLayer } from '../../agent/images/layer-unpack.js';
import { lgetxattr } from '../../agent/runtime/native.js';

interface RawEntry {
  path: string;
  type: ReadEntry['type'];
  mode?: number;
  data?: string;
  linkpath?: string;
  uid?: number;
  gid?: number;
}

/** A tar built header by header, so tests can say things a filesystem-made tar never would. */
function tarOf(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const header = Buffer.alloc(512);
    new Header({
      path: e.path,
      type: e.type,
      mode: e.mode ?? (e.type === 'Directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: data.length,
      mtime: new Date('2026-01-01T00:00:00Z'),
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
    }).encode(header, 0);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function workspace(t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ dir: string; target: string; outside: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-unpack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const target = join(dir, 'layer');
  const outside = join(dir, 'outside');
  await mkdir(target);
  await mkdir(outside);
  return { dir, target, outside };
}

async function unpackBytes(dir: string, target: string, bytes: Buffer): Promise<Awaited<ReturnType<typeof unpackLayer>>> {
  const path = join(dir, `layer-${Math.random().toString(16).slice(2)}.tar`);
  await writeFile(path, bytes);
  return unpackLayer(path, target, 'test layer');
}

test('unpacks files, directories, links and modes; diff-id is the sha256 of the tar, gzip or not', async (t) => {
  const { dir, target } = await workspace(t);
  const tar = tarOf([
    { path: 'etc/', type: 'Directory' },
    { path: 'etc/hostname', type: 'File', data: 'box\n' },
    { path: 'bin/', type: 'Directory' },
    { path: 'bin/su', type: 'File', data: 'x', mode: 0o4755 },
    { path: 'bin/sh', type: 'SymbolicLink', linkpath: '/bin/busybox' },
    { path: 'etc/hostname2', type: 'Link', linkpath: 'etc/hostname' },
    { path: 'home/user/', type: 'Directory', mode: 0o700, uid: 1000, gid: 1000 },
    { path: 'run/fifo', type: 'FIFO', mode: 0o600 },
    { path: 'dev/null', type: 'CharacterDevice' },
    { path: './tmp/', type: 'Directory', mode: 0o1777 },
  ]);
  const plain = await unpackBytes(dir, target, tar);
  t.is(plain.diffId, sha256Digest(tar));
  t.deepEqual(plain.notes, ['skipped character device dev/null: the runtime provides /dev']);

  t.is(await readFile(join(target, 'etc/hostname'), 'utf8'), 'box\n');
  t.is((await lstat(join(target, 'bin/su'))).mode & 0o7777, 0o4755);
  t.is(await readlink(join(target, 'bin/sh')), '/bin/busybox');
  t.is((await lstat(join(target, 'etc/hostname2'))).ino, (await lstat(join(target, 'etc/hostname'))).ino);
  const home = await lstat(join(target, 'home/user'));
  t.is(home.mode & 0o7777, 0o700);
  t.is(home.uid, 1000);
  t.true((await lstat(join(target, 'run/fifo'))).isFIFO());
  t.deepEqual(await readdir(join(target, 'dev')), []);
  t.is((await lstat(join(target, 'tmp'))).mode & 0o7777, 0o1777);
  t.is((await lstat(join(target, 'etc/hostname'))).mtime.toISOString(), '2026-01-01T00:00:00.000Z');
  t.is((await lstat(join(target, 'etc'))).mtime.toISOString(), '2026-01-01T00:00:00.000Z');

  const gzTarget = join(dir, 'gz');
  await mkdir(gzTarget);
  const gz = await unpackBytes(dir, gzTarget, gzipSync(tar));
  t.is(gz.diffId, plain.diffId);
  t.is(await readFile(join(gzTarget, 'etc/hostname'), 'utf8'), 'box\n');
});

test('whiteouts become overlayfs whiteouts: .wh.NAME a 0/0 char device, .wh..wh..opq an opaque xattr', async (t) => {
  const { dir, target } = await workspace(t);
  await unpackBytes(
    dir,
    target,
    tarOf([
      { path: 'etc/', type: 'Directory' },
      { path: 'etc/.wh.gone', type: 'File' },
      { path: 'var/cache/', type: 'Directory' },
      { path: 'var/cache/.wh..wh..opq', type: 'File' },
      { path: 'var/cache/new', type: 'File', data: 'n' },
      { path: 'deep/.wh.dir', type: 'File' },
    ]),
  );
  const gone = await lstat(join(target, 'etc/gone'));
  t.true(gone.isCharacterDevice());
  t.is(gone.rdev, 0);
  t.true((await lstat(join(target, 'deep/dir'))).isCharacterDevice());
  t.deepEqual(lgetxattr(join(target, 'var/cache'), OVERLAY_OPAQUE_XATTR), Buffer.from('y'));
  t.is(lgetxattr(join(target, 'etc'), OVERLAY_OPAQUE_XATTR), undefined);
  t.deepEqual((await readdir(join(target, 'var/cache'))).sort(), ['new']);
  t.deepEqual((await readdir(join(target, 'etc'))).sort(), ['gone']);
});

const refusals: [string, RawEntry[], RegExp][] = [
  ['a ".." path', [{ path: '../evil', type: 'File', data: 'x' }], /contains "\.\."/],
  ['a nested ".." path', [{ path: 'a/../../evil', type: 'File', data: 'x' }], /contains "\.\."/],
  ['an absolute path', [{ path: '/evil', type: 'File', data: 'x' }], /absolute path/],
  ['a hard link out of the layer', [{ path: 'h', type: 'Link', linkpath: '../outside/secret' }], /contains "\.\."/],
  [
    'a write through an absolute symlink',
    [
      { path: 'esc', type: 'SymbolicLink', linkpath: '/' },
      { path: 'esc/evil', type: 'File', data: 'x' },
    ],
    /through symlink esc -> \//,
  ],
  [
    'a write through a relative symlink that climbs out',
    [
      { path: 'a/', type: 'Directory' },
      { path: 'a/up', type: 'SymbolicLink', linkpath: '../../outside' },
      { path: 'a/up/evil', type: 'File', data: 'x' },
    ],
    /through symlink a\/up -> \.\.\/\.\.\/outside/,
  ],
  [
    'a whiteout through a symlink',
    [
      { path: 'esc', type: 'SymbolicLink', linkpath: '../outside' },
      { path: 'esc/.wh.victim', type: 'File' },
    ],
    /through symlink/,
  ],
];

for (const [name, entries, message] of refusals) {
  test(`refuses ${name} and writes nothing outside the layer`, async (t) => {
    const { dir, target, outside } = await workspace(t);
    await writeFile(join(outside, 'victim'), 'keep');
    const error = await t.throwsAsync(unpackBytes(dir, target, tarOf(entries)), { instanceOf: UnsafeLayerError });
    t.regex(error.message, message);
    t.deepEqual((await readdir(outside)).sort(), ['victim']);
    t.is(await readFile(join(outside, 'victim'), 'utf8'), 'keep');
    t.false((await readdir(dir)).includes('evil'));
  });
}

test('a file entry replaces a symlink instead of writing through it', async (t) => {
  const { dir, target, outside } = await workspace(t);
  await writeFile(join(outside, 'victim'), 'keep');
  await symlink(join(outside, 'victim'), join(target, 'pre-existing'));
  await unpackBytes(
    dir,
    target,
    tarOf([
      { path: 'link', type: 'SymbolicLink', linkpath: join(outside, 'victim') },
      { path: 'link', type: 'File', data: 'replaced' },
      { path: 'pre-existing', type: 'File', data: 'replaced too' },
    ]),
  );
  t.is(await readFile(join(outside, 'victim'), 'utf8'), 'keep');
  t.true((await lstat(join(target, 'link'))).isFile());
  t.is(await readFile(join(target, 'link'), 'utf8'), 'replaced');
  t.is(await readFile(join(target, 'pre-existing'), 'utf8'), 'replaced too');
});

test('an empty layer (only end-of-archive blocks) unpacks to nothing', async (t) => {
  const { dir, target } = await workspace(t);
  const result = await unpackBytes(dir, target, gzipSync(Buffer.alloc(1024)));
  t.is(result.diffId, sha256Digest(Buffer.alloc(1024)));
  t.deepEqual(await readdir(target), []);
});

test('a truncated layer is an error, not a hang', async (t) => {
  const { dir, target } = await workspace(t);
  const tar = tarOf([{ path: 'big', type: 'File', data: 'y'.repeat(5000) }]);
  await t.throwsAsync(unpackBytes(dir, target, tar.subarray(0, 2048)), { message: /invalid tar|Truncated/ });
  await t.throwsAsync(unpackBytes(dir, target, gzipSync(tar).subarray(0, 60)), { message: /cannot read layer|invalid tar/ });
});

test('zstd layers are refused with a clear message', async (t) => {
  const { dir, target } = await workspace(t);
  await t.throwsAsync(unpackBytes(dir, target, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0])), { message: /zstd/ });
});
