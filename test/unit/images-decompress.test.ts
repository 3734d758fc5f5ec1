// Layer blobs read back uncompressed: gzip, zstd (fzstd; the files are made with the zstd CLI,
// an independent encoder), plain, and damaged zstd refused with the blob named.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { detectCompression, readDecompressed } from '../../agent/images/decompress.js';

async function collect(path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readDecompressed(path, 'layer x')) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test('gzip, zstd (several frames) and plain files come back byte for byte', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-images-decompress-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // Half random, half repetitive: both zstd block kinds (raw and compressed) appear.
  const data = Buffer.concat([randomBytes(700_000), Buffer.alloc(900_000, 'tessera ')]);
  await writeFile(join(dir, 'plain'), data);
  await writeFile(join(dir, 'gz'), gzipSync(data));
  execFileSync('zstd', ['-q', '-3', join(dir, 'plain'), '-o', join(dir, 'one.zst')]);
  // Two frames back to back, as a parallel encoder writes them.
  await writeFile(join(dir, 'a'), data.subarray(0, 800_000));
  await writeFile(join(dir, 'b'), data.subarray(800_000));
  execFileSync('zstd', ['-q', join(dir, 'a'), '-o', join(dir, 'a.zst')]);
  execFileSync('zstd', ['-q', join(dir, 'b'), '-o', join(dir, 'b.zst')]);
  await writeFile(join(dir, 'two.zst'), Buffer.concat([await readFile(join(dir, 'a.zst')), await readFile(join(dir, 'b.zst'))]));

  t.is(await detectCompression(join(dir, 'gz')), 'gzip');
  t.is(await detectCompression(join(dir, 'one.zst')), 'zstd');
  t.is(await detectCompression(join(dir, 'plain')), 'none');
  for (const name of ['plain', 'gz', 'one.zst', 'two.zst']) t.true((await collect(join(dir, name))).equals(data), name);
});

test('a truncated or corrupt zstd stream is an error naming the blob', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-images-decompress-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'plain'), randomBytes(300_000));
  execFileSync('zstd', ['-q', join(dir, 'plain'), '-o', join(dir, 'x.zst')]);
  const whole = await readFile(join(dir, 'x.zst'));
  await writeFile(join(dir, 'cut.zst'), whole.subarray(0, whole.length >> 1));
  await t.throwsAsync(collect(join(dir, 'cut.zst')), { message: /^layer x: cannot decompress zstd/ });
  const garbled = Buffer.from(whole);
  garbled.fill(0xff, 4, 40);
  await writeFile(join(dir, 'bad.zst'), garbled);
  await t.throwsAsync(collect(join(dir, 'bad.zst')), { message: /^layer x: cannot decompress zstd/ });
});
