// The image store tells "not there" (the file does not exist) from "could not be read": only the
// first is an image that is not in the store; the second surfaces, naming the file, instead of
// passing for "not found" (which made `ensure` pull again and `remove` say the image is unknown).
// The read failures are real file-system errors: a directory where a record file should be
// (EISDIR) and a file where the index directory should be (ENOTDIR).
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ImageNotFoundError, LocalImageStore } from '../../agent/images/image-store.js';

const REFERENCE = 'docker.io/library/busybox:latest';

async function storeAt(t: ExecutionContext): Promise<{ store: LocalImageStore; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-images-errors-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return { store: new LocalImageStore({ root, credentialsFile: join(root, 'no-credentials.json') }), root };
}

function recordPath(root: string, reference: string): string {
  return join(root, 'images', `${createHash('sha256').update(reference).digest('hex')}.json`);
}

test('an image that was never stored is not found', async (t) => {
  const { store } = await storeAt(t);
  t.is(await store.get('busybox'), undefined);
  t.deepEqual(await store.list(), []);
  await t.throwsAsync(store.remove('busybox'), { instanceOf: ImageNotFoundError });
  await t.throwsAsync(store.remove('not a reference!'), { instanceOf: ImageNotFoundError });
});

test('a record that cannot be read is an error naming it, not "not found"', async (t) => {
  const { store, root } = await storeAt(t);
  const path = recordPath(root, REFERENCE);
  await mkdir(path, { recursive: true });

  const get = await t.throwsAsync(store.get('busybox'));
  t.true(get.message.includes(path) && get.message.includes('EISDIR'), get.message);
  const remove = await t.throwsAsync(store.remove('busybox'));
  t.false(remove instanceof ImageNotFoundError, 'remove does not call an unreadable image unknown');
  t.true(remove.message.includes('EISDIR'), remove.message);
  t.is(await store.get('alpine'), undefined, 'other images are still simply absent');
});

test('a record that is not JSON is reported damaged, naming the file', async (t) => {
  const { store, root } = await storeAt(t);
  const path = recordPath(root, REFERENCE);
  await mkdir(join(root, 'images'), { recursive: true });
  await writeFile(path, '{"reference": "docker.io/libr');
  const error = await t.throwsAsync(store.get('busybox'));
  t.true(error.message.startsWith(`image record ${path} is damaged`), error.message);
});

test('an index directory that cannot be listed is an error, not an empty store', async (t) => {
  const { store, root } = await storeAt(t);
  await writeFile(join(root, 'images'), 'not a directory');
  const error = await t.throwsAsync(store.list());
  t.true(error.message.includes('ENOTDIR'), error.message);
});
