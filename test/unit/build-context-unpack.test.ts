// The manager's build context unpacker (issue 18) on real tar streams: hand-made headers for what
// no honest client sends (absolute paths, "..", links leading out, device nodes, duplicates), and
// node-tar's own archives of a real directory for what clients do send. The size cap is checked
// while the stream arrives: a stream that never ends is refused once it passes the cap.
import test from 'ava';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Header, Pax, create, type HeaderData } from 'tar';

import { ContextRefusedError, unpackContext } from '../../control-plane/build/context-unpack.js';

interface RawEntry extends HeaderData {
  body?: string | Buffer;
}

/** A tar archive of exactly these headers and bodies, ended by two zero blocks. */
function tarOf(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { body, ...data } of entries) {
    const content = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
    const header = new Header({ mode: 0o644, mtime: new Date(1_700_000_000_000), type: 'File', ...data, size: content.length });
    const block = Buffer.alloc(512);
    // A name too long for ustar goes in a pax header before it, as node-tar writes one.
    if (header.encode(block, 0)) blocks.push(new Pax({ path: data.path ?? '', linkpath: data.linkpath ?? '' }).encode());
    blocks.push(block, content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function* chunksOf(data: Buffer, size = 700): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

const LIMITS = { maxBytes: 16 * 1024 * 1024, maxEntries: 1000 };

async function freshDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'tessera-unpack-test-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const dir = join(base, 'context');
  await mkdir(dir);
  return dir;
}

/** Every path under dir with its type, mode and content digest or link target, sorted. */
async function treeOf(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const info = await lstat(join(dir, path));
    const mode = (info.mode & 0o7777).toString(8);
    if (info.isDirectory()) {
      out.push(`d ${path} ${mode}`);
      out.push(...(await treeOf(dir, path)));
    } else if (info.isSymbolicLink()) out.push(`l ${path} -> ${await readlink(join(dir, path))}`);
    else
      out.push(
        `f ${path} ${mode} ${createHash('sha256')
          .update(await readFile(join(dir, path)))
          .digest('hex')
          .slice(0, 16)}`,
      );
  }
  return out;
}

test('a real directory packed by node-tar arrives whole: files, modes, directories, links', async (t) => {
  const source = await freshDir(t);
  await mkdir(join(source, 'src/lib'), { recursive: true });
  await writeFile(join(source, 'Dockerfile'), 'FROM scratch\nCOPY . /\n');
  await writeFile(join(source, 'src/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await writeFile(join(source, 'src/lib/big.bin'), Buffer.alloc(300_000, 7));
  await symlink('lib/big.bin', join(source, 'src/link'));
  await symlink('../Dockerfile', join(source, 'src/up'));
  const pack = create({ cwd: source, portable: true }, ['Dockerfile', 'src']);
  const archive = Buffer.concat(await pack.collect());
  const target = await freshDir(t);
  const result = await unpackContext(chunksOf(archive, 4096), target, LIMITS);
  t.is(result.bytes, archive.length);
  t.is(result.entries, 7);
  t.deepEqual(await treeOf(target), await treeOf(source));
});

test('absolute paths and ".." are refused, naming the entry', async (t) => {
  for (const path of ['/etc/cron.d/evil', '../outside', 'a/../../outside']) {
    const dir = await freshDir(t);
    const err = await t.throwsAsync(unpackContext(chunksOf(tarOf([{ path, body: 'x' }])), dir, LIMITS), { instanceOf: ContextRefusedError });
    t.regex(err.message, /absolute path|"\.\."/, path);
    t.deepEqual(await readdir(dir), [], `${path}: nothing written`);
  }
});

test('symlinks leading out of the context are refused, also through a chain of links', async (t) => {
  const cases: Array<{ entries: RawEntry[]; bad: string }> = [
    { entries: [{ path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }], bad: 'passwd' },
    { entries: [{ path: 'up', type: 'SymbolicLink', linkpath: '../..' }], bad: 'up' },
    {
      // Each alone stays inside; d/b leads to the root, and x climbs from there.
      entries: [
        { path: 'd/', type: 'Directory', mode: 0o755 },
        { path: 'd/b', type: 'SymbolicLink', linkpath: '..' },
        { path: 'x', type: 'SymbolicLink', linkpath: 'd/b/../etc' },
      ],
      bad: 'x',
    },
  ];
  for (const { entries, bad } of cases) {
    const dir = await freshDir(t);
    const err = await t.throwsAsync(unpackContext(chunksOf(tarOf(entries)), dir, LIMITS), { instanceOf: ContextRefusedError });
    t.true(err.message.includes(`"${bad}"`), err.message);
    t.regex(err.message, /outside the context/);
  }
});

test('nothing is written through a symlink, and a link loop is refused', async (t) => {
  const through = await freshDir(t);
  const err = await t.throwsAsync(
    unpackContext(
      chunksOf(
        tarOf([
          { path: 'sub', type: 'SymbolicLink', linkpath: '.' },
          { path: 'sub/file', body: 'x' },
        ]),
      ),
      through,
      LIMITS,
    ),
    { instanceOf: ContextRefusedError },
  );
  t.regex(err.message, /written through the symlink "sub"/);
  const loop = await freshDir(t);
  const looped = await t.throwsAsync(
    unpackContext(
      chunksOf(
        tarOf([
          { path: 'a', type: 'SymbolicLink', linkpath: 'b' },
          { path: 'b', type: 'SymbolicLink', linkpath: 'a' },
        ]),
      ),
      loop,
      LIMITS,
    ),
    { instanceOf: ContextRefusedError },
  );
  t.regex(looped.message, /loops/);
});

test('device nodes and FIFOs are refused by name; hard links only to files already in the context', async (t) => {
  for (const type of ['CharacterDevice', 'BlockDevice', 'FIFO'] as const) {
    const dir = await freshDir(t);
    const err = await t.throwsAsync(unpackContext(chunksOf(tarOf([{ path: 'dev', type, devmaj: 1, devmin: 3 }])), dir, LIMITS), {
      instanceOf: ContextRefusedError,
    });
    t.regex(err.message, /"dev": a (device node|FIFO)/);
  }
  const outside = await freshDir(t);
  const err = await t.throwsAsync(unpackContext(chunksOf(tarOf([{ path: 'h', type: 'Link', linkpath: '../secret' }])), outside, LIMITS), {
    instanceOf: ContextRefusedError,
  });
  t.regex(err.message, /hard link/);
  const good = await freshDir(t);
  await unpackContext(
    chunksOf(
      tarOf([
        { path: 'f', body: 'same' },
        { path: 'h', type: 'Link', linkpath: 'f' },
      ]),
    ),
    good,
    LIMITS,
  );
  t.is((await lstat(join(good, 'h'))).ino, (await lstat(join(good, 'f'))).ino);
});

test('a path given twice is refused rather than overwritten', async (t) => {
  const dir = await freshDir(t);
  const err = await t.throwsAsync(
    unpackContext(
      chunksOf(
        tarOf([
          { path: 'a', body: 'one' },
          { path: 'a', body: 'two' },
        ]),
      ),
      dir,
      LIMITS,
    ),
    { instanceOf: ContextRefusedError },
  );
  t.regex(err.message, /appears twice/);
});

test('the size cap is enforced while the stream arrives: an endless stream is cut at the cap', async (t) => {
  const dir = await freshDir(t);
  let produced = 0;
  async function* endless(): AsyncGenerator<Buffer> {
    const header = Buffer.alloc(512);
    new Header({ path: 'huge', type: 'File', size: 8 * 1024 ** 3, mode: 0o644 }).encode(header, 0);
    yield header;
    produced += 512;
    for (;;) {
      produced += 64 * 1024;
      yield Buffer.alloc(64 * 1024, 1);
    }
  }
  const err = await t.throwsAsync(unpackContext(endless(), dir, { maxBytes: 1024 * 1024, maxEntries: 10 }), { instanceOf: ContextRefusedError });
  t.regex(err.message, /more than the 1048576 bytes \(1\.0 MiB\)/);
  t.true(produced <= 1024 * 1024 + 64 * 1024 + 512, `read ${produced} bytes`);
  // What was written before the cap stays below it.
  t.true((await lstat(join(dir, 'huge'))).size <= 1024 * 1024);
});

test('entry count and path limits are named', async (t) => {
  const many = await freshDir(t);
  const entries = Array.from({ length: 11 }, (_, i) => ({ path: `f${i}`, body: '' }));
  const err = await t.throwsAsync(unpackContext(chunksOf(tarOf(entries)), many, { maxBytes: LIMITS.maxBytes, maxEntries: 10 }), {
    instanceOf: ContextRefusedError,
  });
  t.regex(err.message, /more than 10 entries/);
  const long = await freshDir(t);
  const longErr = await t.throwsAsync(unpackContext(chunksOf(tarOf([{ path: `${'a'.repeat(300)}/f`, body: '' }])), long, LIMITS), {
    instanceOf: ContextRefusedError,
  });
  t.regex(longErr.message, /longer than 255 bytes/);
});

test('an empty context (only the end blocks) is accepted; garbage is not a tar', async (t) => {
  const empty = await freshDir(t);
  t.deepEqual(await unpackContext(chunksOf(Buffer.alloc(1024)), empty, LIMITS), { bytes: 1024, entries: 0 });
  const garbage = await freshDir(t);
  await t.throwsAsync(unpackContext(chunksOf(Buffer.alloc(2048, 0x41)), garbage, LIMITS), { instanceOf: ContextRefusedError, message: /not a valid tar/ });
});

test('directories missing from the archive are made; directory modes are applied once everything is in', async (t) => {
  const dir = await freshDir(t);
  await unpackContext(
    chunksOf(
      tarOf([
        { path: 'ro/', type: 'Directory', mode: 0o555 },
        { path: 'ro/inner/file', body: 'x', mode: 0o600 },
      ]),
    ),
    dir,
    LIMITS,
  );
  t.is((await lstat(join(dir, 'ro'))).mode & 0o777, 0o555);
  t.is((await lstat(join(dir, 'ro/inner'))).mode & 0o777, 0o755);
  t.is(await readFile(join(dir, 'ro/inner/file'), 'utf8'), 'x');
});
