import test from 'ava';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobStore } from '../../agent/images/blob-store.js';
import { DigestMismatchError, SizeMismatchError, sha256Digest } from '../../common/images/digest.js';

async function store(t: { teardown: (fn: () => Promise<void>) => void }): Promise<BlobStore> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-blobs-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return new BlobStore(root);
}

test('stores a blob under blobs/sha256/<hex> only when digest and size match', async (t) => {
  const blobs = await store(t);
  const data = Buffer.from('hello blob');
  const digest = sha256Digest(data);
  await blobs.ingest({ digest, size: data.length }, [data.subarray(0, 3), data.subarray(3)], 'test blob');
  t.is(blobs.path(digest), join(blobs.root, 'blobs', 'sha256', digest.slice(7)));
  t.deepEqual(await readFile(blobs.path(digest)), data);
  t.true(await blobs.has(digest, data.length));
  t.false(await blobs.has(digest, data.length + 1));

  const wrong = sha256Digest('something else');
  await t.throwsAsync(blobs.ingest({ digest: wrong, size: data.length }, [data], 'bad blob'), {
    instanceOf: DigestMismatchError,
    message: `bad blob: digest mismatch: expected ${wrong}, got ${digest}`,
  });
  await t.throwsAsync(blobs.ingest({ digest, size: 3 }, [data], 'long blob'), { instanceOf: SizeMismatchError });
  t.false(await blobs.has(wrong));
  t.deepEqual(await readdir(blobs.tmpDir), []);
});

test('removes temp work of dead processes and keeps that of live ones', async (t) => {
  const blobs = await store(t);
  await mkdir(blobs.tmpDir, { recursive: true });
  const dead = join(blobs.tmpDir, 'layer-2147483646-abcdef');
  const mine = await blobs.tempPath('blob');
  await mkdir(dead);
  await writeFile(join(dead, 'partial'), 'x');
  await writeFile(mine, 'in progress');
  await blobs.removeStaleTemp();
  t.deepEqual(await readdir(blobs.tmpDir), [mine.slice(blobs.tmpDir.length + 1)]);
});
