// The files tmpfs of a container on the real kernel (root; a tmpfs mounted in a temporary
// directory and always unmounted): files written with their modes and owners onto a tmpfs, and
// swept when an earlier tsd left them for a container that is no longer kept; volume mounts swept
// by `tsd cleanup`.
import test from 'ava';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DeliveredFiles } from '../../common/dispatcher/stack-files.js';
import { sweepTaskFiles } from '../../agent/worker/task-files-mounts.js';
import { planTaskFiles, removeTaskFiles, taskFilesDir, writeTaskFiles } from '../../agent/worker/task-files.js';
import { sweepVolumeMounts } from '../../agent/volumes/node-volumes.js';
import { mount, umount } from '../../agent/runtime/native.js';

async function fsTypeOf(path: string): Promise<string | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] === path) return fields[fields.indexOf('-') + 1];
  }
  return undefined;
}

test("files land on a tmpfs of the container's own with mode and owner; a sweep unmounts what is not kept", async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tessera-task-files-'));
  const containersDir = join(root, 'containers');
  const filesRoot = join(root, 'run');
  const dirs = ['kept', 'stale'].map((id) => taskFilesDir(filesRoot, id));
  t.teardown(async () => {
    for (const dir of dirs) await removeTaskFiles(dir).catch(() => {});
    await rm(root, { recursive: true, force: true });
  });
  const files = new DeliveredFiles();
  files.apply(
    true,
    [
      { kind: 'Secret', stack: 'app', name: 'pw', data: Buffer.from('s3cret') },
      { kind: 'Config', stack: 'app', name: 'conf', data: Buffer.from('a=1') },
    ],
    [],
  );
  const plan = planTaskFiles(
    { image: 'x', secrets: [{ source: 'pw', target: 'pw', uid: '1000', gid: '1001', mode: 0o400 }], configs: [{ source: 'conf', target: '/etc/conf' }] },
    'app',
    files,
  );

  for (const dir of dirs) {
    const mounts = await writeTaskFiles(plan, dir);
    t.is(await fsTypeOf(dir), 'tmpfs');
    t.deepEqual(
      mounts.map((m) => m.destination),
      ['/run/secrets', '/etc/conf'],
    );
  }
  const secret = await stat(join(dirs[0]!, 'secrets', 'pw'));
  t.deepEqual([secret.mode & 0o7777, secret.uid, secret.gid], [0o400, 1000, 1001]);
  t.is(await readFile(join(dirs[0]!, 'secrets', 'pw'), 'utf8'), 's3cret');
  t.is((await stat(join(dirs[0]!, 'single', '1'))).mode & 0o7777, 0o444, 'configs default to 0444');

  t.deepEqual(await sweepTaskFiles(containersDir, new Set(['kept']), filesRoot), ['stale']);
  t.is(await fsTypeOf(dirs[1]!), undefined, 'the stale tmpfs is unmounted');
  t.deepEqual(await readdir(join(filesRoot, 'tasks')), ['kept']);
  t.is(await fsTypeOf(dirs[0]!), 'tmpfs', 'the kept one stays');
});

test('sweepVolumeMounts unmounts driver-option volumes under the volumes root and keeps their directories', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tessera-volume-sweep-'));
  const dataDir = join(root, 'volumes', 'app', 'v', '_data');
  t.teardown(async () => {
    try {
      umount(dataDir, true);
    } catch {
      // already unmounted by the sweep
    }
    await rm(root, { recursive: true, force: true });
  });
  await mkdir(dataDir, { recursive: true });
  mount('tmpfs', dataDir, 'tmpfs', [], 'size=1m');
  t.is(await fsTypeOf(dataDir), 'tmpfs');
  t.deepEqual(await sweepVolumeMounts(join(root, 'volumes')), [dataDir]);
  t.is(await fsTypeOf(dataDir), undefined);
  t.true((await stat(dataDir)).isDirectory());
});
