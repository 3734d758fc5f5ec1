// The whiteouts the unpacker writes are the ones overlayfs understands: mount real layers and
// look at the merged view.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { create } from 'tar';
import { LocalImageStore } from '../../agent/images/image-store.js';
import { unpackLayer } from '../../agent/images/layer-unpack.js';
import { buildBusyboxImage } from '../helpers/busybox-image.js';

const execFileAsync = promisify(execFile);

test('overlayfs hides whited-out files and the contents of opaque directories', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-overlay-'));
  const merged = join(dir, 'merged');
  let mounted = false;
  t.teardown(async () => {
    if (mounted) await execFileAsync('umount', [merged]);
    await rm(dir, { recursive: true, force: true });
  });

  const image = await buildBusyboxImage(join(dir, 'image'));
  const store = new LocalImageStore({ root: join(dir, 'store') });
  const [record] = await store.load(image.tarballPath);
  const base = (await store.get(record?.reference ?? ''))?.layerDirs[0];
  if (base === undefined) throw new Error('busybox layer missing');

  // An upper layer as a tool would write it: whiteout files are ordinary files in the tar.
  const staging = join(dir, 'staging');
  await mkdir(join(staging, 'www'), { recursive: true });
  await mkdir(join(staging, 'etc'), { recursive: true });
  await writeFile(join(staging, 'www', '.wh.index.html'), '');
  await writeFile(join(staging, 'etc', '.wh..wh..opq'), '');
  await writeFile(join(staging, 'etc', 'motd'), 'upper\n');
  const upperTar = join(dir, 'upper.tar');
  await create({ cwd: staging, file: upperTar }, ['www', 'etc']);
  const upper = join(dir, 'upper-layer');
  await mkdir(upper);
  await unpackLayer(upperTar, upper, 'upper layer');

  const work = join(dir, 'work');
  const rw = join(dir, 'rw');
  await Promise.all([mkdir(merged), mkdir(work), mkdir(rw)]);
  await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upper}:${base},upperdir=${rw},workdir=${work}`, merged]);
  mounted = true;

  t.deepEqual(await readdir(join(merged, 'www')), []);
  t.deepEqual(await readdir(join(merged, 'etc')), ['motd']);
  t.is(await readFile(join(merged, 'etc', 'motd'), 'utf8'), 'upper\n');
  const { stdout } = await execFileAsync(join(merged, 'bin', 'busybox'), ['cat', join(merged, 'etc', 'motd')]);
  t.is(stdout, 'upper\n');
});
