// Hard links through a build's COPY (issue 18): names of one inode in the sources stay one inode in
// the step's root (so the layer carries a tar Link entry, not two files), the step's cache key
// tells linked from separate files, and our layer diff and unpacker keep the link; the context
// tsctl sends carries them as links and the manager unpacks them as one inode again. Real files in a
// temp dir; the "rootfs" is a plain directory (COPY resolves every path inside it the same way).
import test from 'ava';
import { link, lstat, mkdir, mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { applyCopy } from '../../agent/build/copy-apply.js';
import { digestOfMatches, expandSources } from '../../agent/build/copy-sources.js';
import { layerTar } from '../../agent/build/layer-diff.js';
import { walkContext } from '../../cli/build/context-walk.js';
import { contextTar } from '../../cli/build/context-tar.js';
import { unpackContext } from '../../control-plane/build/context-unpack.js';

async function context(dir: string, linked: boolean): Promise<string> {
  const ctx = join(dir, linked ? 'linked' : 'separate');
  await mkdir(join(ctx, 'app'), { recursive: true });
  await writeFile(join(ctx, 'app', 'a'), 'same bytes\n');
  if (linked) await link(join(ctx, 'app', 'a'), join(ctx, 'app', 'b'));
  else await copyFile(join(ctx, 'app', 'a'), join(ctx, 'app', 'b'));
  await writeFile(join(ctx, 'app', 'c'), 'other\n');
  return ctx;
}

async function tarEntries(upper: string): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of layerTar(upper, { what: 'copy layer' })) chunks.push(chunk);
  const entries: string[] = [];
  const parser = new Parser();
  parser.on('entry', (entry: ReadEntry) => {
    entries.push(`${entry.type} ${entry.path}${entry.type === 'Link' ? ` -> ${entry.linkpath ?? ''}` : ''}`);
    entry.resume();
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
    parser.end(Buffer.concat(chunks));
  });
  return entries;
}

test('COPY keeps hard links of its sources as one inode, and the layer carries them as a Link entry', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-hardlinks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ctx = await context(dir, true);
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs);
  const matches = await expandSources(ctx, ['app'], false, 'COPY app /opt/app');
  await applyCopy(matches, { rootfs, dest: '/opt/app', what: 'COPY app /opt/app' });
  const a = await lstat(join(rootfs, 'opt', 'app', 'a'));
  const b = await lstat(join(rootfs, 'opt', 'app', 'b'));
  const c = await lstat(join(rootfs, 'opt', 'app', 'c'));
  t.is(a.ino, b.ino, 'a and b are one inode');
  t.is(a.nlink, 2);
  t.not(c.ino, a.ino);
  t.is(await readFile(join(rootfs, 'opt', 'app', 'b'), 'utf8'), 'same bytes\n');
  t.deepEqual(await tarEntries(rootfs), ['Directory opt/', 'Directory opt/app/', 'File opt/app/a', 'Link opt/app/b -> opt/app/a', 'File opt/app/c']);
});

test('the cache key of a COPY tells hard-linked sources from equal separate files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-hardlinks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const linked = await digestOfMatches(await expandSources(await context(dir, true), ['app'], false, 'COPY'));
  const separate = await digestOfMatches(await expandSources(await context(dir, false), ['app'], false, 'COPY'));
  t.not(linked, separate);
  t.is(await digestOfMatches(await expandSources(join(dir, 'linked'), ['app'], false, 'COPY')), linked, 'stable');
});

test('the build context keeps hard links: tsctl’s tar has a Link entry and the manager unpacks one inode', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-hardlinks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ctx = await context(dir, true);
  const walked = await walkContext(ctx);
  const out = join(dir, 'received');
  await mkdir(out);
  await unpackContext(contextTar(ctx, walked.entries), out, { maxBytes: 1024 * 1024, maxEntries: 100 });
  t.is((await lstat(join(out, 'app', 'b'))).ino, (await lstat(join(out, 'app', 'a'))).ino);
  t.not((await lstat(join(out, 'app', 'c'))).ino, (await lstat(join(out, 'app', 'a'))).ino);
});
