// The reader the build oracle compares images with (test/helpers/image-tree.ts): layers applied
// with OCI whiteout rules, hard links, config normalisation and the difference list. Layer blobs
// here are real tars written with node-tar (gzip and plain), read back through the same path the
// oracle uses for buildah's and our images.
import test from 'ava';
import { mkdir, mkdtemp, rm, symlink, writeFile, link, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as tarCreate } from 'tar';
import {
  type ComparableImage,
  type TreeEntry,
  applyLayer,
  compareImages,
  comparableConfig,
  normalisePath,
  readLayerEntries,
  withHardLinkGroups,
} from '../helpers/image-tree.js';
import { encodeEntryHeader, padding, END_OF_ARCHIVE } from '../../agent/build/tar-entries.js';

async function layer(dir: string, name: string, files: (root: string) => Promise<void>, paths: string[], gzip: boolean): Promise<string> {
  const root = join(dir, `${name}-root`);
  await mkdir(root, { recursive: true });
  await files(root);
  const out = join(dir, `${name}.tar${gzip ? '.gz' : ''}`);
  await tarCreate({ cwd: root, file: out, gzip, portable: true }, paths);
  return out;
}

test('normalisePath strips ./, leading and trailing slashes', (t) => {
  t.is(normalisePath('./etc/passwd'), 'etc/passwd');
  t.is(normalisePath('/etc/'), 'etc');
  t.is(normalisePath('./'), '');
  t.is(normalisePath('.'), '');
});

test('layers apply in order: whiteouts hide lower paths, an opaque dir hides all below it, hard links become files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-image-tree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lower = await layer(
    dir,
    'lower',
    async (root) => {
      await mkdir(join(root, 'data', 'sub'), { recursive: true });
      await mkdir(join(root, 'tree'));
      await writeFile(join(root, 'data', 'a'), 'a\n');
      await writeFile(join(root, 'data', 'sub', 'b'), 'b\n');
      await writeFile(join(root, 'tree', 't'), 't\n');
      await writeFile(join(root, 'gone'), 'gone\n');
      await writeFile(join(root, 'keep'), 'keep\n');
      await chmod(join(root, 'keep'), 0o640);
      await symlink('keep', join(root, 'keep-link'));
    },
    ['data', 'tree', 'gone', 'keep', 'keep-link'],
    true,
  );
  const upper = await layer(
    dir,
    'upper',
    async (root) => {
      await mkdir(join(root, 'data'));
      await writeFile(join(root, 'data', '.wh..wh..opq'), '');
      await writeFile(join(root, 'data', 'new'), 'new\n');
      await writeFile(join(root, '.wh.gone'), '');
      await writeFile(join(root, '.wh.tree'), '');
      await writeFile(join(root, 'hard-source'), 'shared\n');
      await link(join(root, 'hard-source'), join(root, 'hard-copy'));
    },
    ['data', '.wh.gone', '.wh.tree', 'hard-source', 'hard-copy'],
    false,
  );
  const tree = new Map<string, TreeEntry>();
  applyLayer(tree, await readLayerEntries(lower));
  applyLayer(tree, await readLayerEntries(upper));
  t.deepEqual([...tree.keys()].sort(), ['data', 'data/new', 'hard-copy', 'hard-source', 'keep', 'keep-link']);
  t.like(tree.get('keep'), { type: 'file', mode: 0o640, size: 5 });
  t.like(tree.get('keep-link'), { type: 'symlink', linkTarget: 'keep' });
  t.deepEqual(tree.get('hard-copy'), tree.get('hard-source'));
  t.is(tree.get('hard-copy')?.type, 'file');
});

test('a whiteout in a layer hides only lower paths: the same layer may add the path again', (t) => {
  const tree = new Map<string, TreeEntry>([['x', { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1, sha256: 'old' }]]);
  applyLayer(tree, [
    { path: 'x', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 },
    { path: '.wh.x', type: 'file', mode: 0, uid: 0, gid: 0, size: 0 },
  ]);
  t.like(tree.get('x'), { type: 'dir' });
});

test('comparableConfig leaves out empty fields (null, [], {}, "") and io.buildah.version, sorts ports and volumes', (t) => {
  t.deepEqual(
    comparableConfig({
      Env: ['A=1'],
      Cmd: null,
      Entrypoint: [],
      Labels: { 'io.buildah.version': '1.28.2', b: '2' },
      ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
      Volumes: {},
      WorkingDir: '',
    }),
    { env: ['A=1'], labels: { b: '2' }, exposedPorts: ['53/udp', '8080/tcp'] },
  );
  t.deepEqual(comparableConfig({ Labels: { 'io.buildah.version': '1.28.2' } }), {});
});

test('compareImages lists each difference on its own line, and none for equal images', (t) => {
  const base = (tree: Array<[string, TreeEntry]>, config = {}, layers = 2): ComparableImage => ({
    source: 'x',
    layers,
    diffIds: [],
    emptyLayerHistory: 0,
    tree: new Map(tree),
    config,
  });
  const file: TreeEntry = { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64) };
  t.deepEqual(compareImages(base([['f', file]]), base([['f', file]])), []);
  t.deepEqual(
    compareImages(
      base(
        [
          ['f', file],
          ['only-ours', file],
        ],
        { labels: { a: '1', b: '2' } },
        3,
      ),
      base(
        [
          ['f', { ...file, uid: 1000, sha256: 'b'.repeat(64) }],
          ['only-theirs', { type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 }],
        ],
        { labels: { b: '2', a: '1' }, user: 'x' },
      ),
    ),
    [
      'layers: ours 3, theirs 2',
      '/f: ours file, mode 0644, uid 0, gid 0, 3 B, sha256 aaaaaaaaaaaa; theirs file, mode 0644, uid 1000, gid 0, 3 B, sha256 bbbbbbbbbbbb',
      '/only-ours: only in ours (file, mode 0644, uid 0, gid 0, 3 B, sha256 aaaaaaaaaaaa)',
      '/only-theirs: only in theirs (dir, mode 0755, uid 0, gid 0)',
      'config user: ours absent, theirs "x"',
    ],
    'label key order is no difference',
  );
  t.deepEqual(compareImages(base([['run/x', file]]), base([]), { ignorePaths: ['run'] }), []);
});

test('hard-link groups and xattrs are part of the comparison: two separate files are not one linked file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-image-tree-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const capability = Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const data = Buffer.from('x');
  const base = { mode: 0o755, uid: 0, gid: 0, mtime: new Date(0) };
  const linkedTar = join(dir, 'linked.tar');
  await writeFile(
    linkedTar,
    Buffer.concat([
      encodeEntryHeader({ ...base, path: 'a', type: 'File', size: 1, xattrs: new Map([['security.capability', capability]]) }),
      data,
      padding(1),
      encodeEntryHeader({ ...base, path: 'b', type: 'Link', size: 0, linkpath: 'a' }),
      END_OF_ARCHIVE,
    ]),
  );
  const separateTar = join(dir, 'separate.tar');
  await writeFile(
    separateTar,
    Buffer.concat([
      encodeEntryHeader({ ...base, path: 'a', type: 'File', size: 1 }),
      data,
      padding(1),
      encodeEntryHeader({ ...base, path: 'b', type: 'File', size: 1 }),
      data,
      padding(1),
      END_OF_ARCHIVE,
    ]),
  );
  const image = async (blob: string): Promise<ComparableImage> => {
    const tree = new Map<string, TreeEntry>();
    applyLayer(tree, await readLayerEntries(blob));
    withHardLinkGroups(tree);
    return { source: blob, layers: 1, diffIds: [], emptyLayerHistory: 0, tree, config: {} };
  };
  const linked = await image(linkedTar);
  t.deepEqual(linked.tree.get('a')?.hardLinks, ['b']);
  t.deepEqual(linked.tree.get('b')?.hardLinks, ['a']);
  t.deepEqual(linked.tree.get('b')?.xattrs, { 'security.capability': capability.toString('hex') }, 'the link shares the inode’s xattrs');
  const lines = compareImages(linked, await image(separateTar));
  t.is(lines.length, 2, lines.join('\n'));
  t.regex(
    lines[0] ?? '',
    /^\/a: ours .*hard-linked with b, xattr security\.capability=0100000200040000.*; theirs file, mode 0755, uid 0, gid 0, 1 B, sha256 \w+$/,
  );
  t.regex(lines[1] ?? '', /^\/b: ours .*hard-linked with a.*; theirs /);
});
