// Mount planning (pure) and the node's volume preparation on real directories: copy-up, noCopy,
// subpath, binds that are missing or created, tmpfs options, driver options; plus the secret and
// config file plan and the mount order. No containers: the "rootfs" is a plain directory here.
import test from 'ava';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DeliveredFiles } from '../../common/dispatcher/stack-files.js';
import { orderMounts } from '../../agent/worker/container-config.js';
import { planTaskFiles, taskFileMounts } from '../../agent/worker/task-files.js';
import { NodeVolumes } from '../../agent/volumes/node-volumes.js';
import { driverMount, planVolumeMounts } from '../../agent/volumes/volume-plan.js';

function delivered(): DeliveredFiles {
  const files = new DeliveredFiles();
  files.apply(
    true,
    [
      { kind: 'Volume', stack: 'app', name: 'data', data: Buffer.alloc(0), volume: { driver: 'local' } },
      { kind: 'Volume', stack: '', name: 'ext', data: Buffer.alloc(0), volume: { driverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } } },
      { kind: 'Secret', stack: 'app', name: 'pw', data: Buffer.from('s3cret') },
      { kind: 'Config', stack: 'app', name: 'conf', data: Buffer.from('a=1') },
    ],
    [],
  );
  return files;
}

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-volumes-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('planVolumeMounts: named (own stack, then external), anonymous, bind, tmpfs; errors name the mount', (t) => {
  const ctx = { taskStack: 'app', volumesDir: '/v', anonymousDir: '/c/volumes', files: delivered() };
  const actions = planVolumeMounts(
    [
      { type: 'volume', source: 'data', target: '/data', subpath: 'sub/dir' },
      { type: 'volume', source: 'ext', target: '/ext', readOnly: true, noCopy: true },
      { type: 'volume', target: '/anon' },
      { type: 'bind', source: '/srv', target: '/srv', propagation: 'rslave', createHostPath: true },
      { type: 'tmpfs', target: '/tmp', sizeBytes: 4096, mode: 0o1777 },
    ],
    ctx,
  );
  t.deepEqual(actions[0], {
    type: 'named',
    destination: '/data',
    name: 'app/data',
    volumeDir: '/v/app/data',
    dataDir: '/v/app/data/_data',
    copy: true,
    subpath: 'sub/dir',
    readOnly: false,
  });
  t.like(actions[1], {
    type: 'named',
    name: 'ext',
    volumeDir: '/v/_/ext',
    copy: false,
    readOnly: true,
    driverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' },
  });
  t.deepEqual(actions[2], { type: 'anonymous', destination: '/anon', dataDir: '/c/volumes/2/_data', copy: true, readOnly: false });
  t.like(actions[3], { type: 'bind', source: '/srv', propagation: 'rslave', createHostPath: true });
  t.like(actions[4], { type: 'tmpfs', sizeBytes: 4096, mode: 0o1777 });
  t.throws(() => planVolumeMounts([{ type: 'volume', source: 'nope', target: '/x' }], ctx), {
    message: /mounts\[0\] \(\/x\): volume "nope" was not delivered/,
  });
  t.throws(() => planVolumeMounts([{ type: 'volume', source: 'data', target: '/x', subpath: '../../etc' }], ctx), {
    message: /subpath "..\/..\/etc" must be a relative path inside the volume/,
  });
});

test('driverMount: type/device/o become a mount(2) call; unknown or missing options are refused', (t) => {
  t.deepEqual(driverMount('v', { type: 'tmpfs', device: 'tmpfs', o: 'size=1m,uid=1000' }), {
    source: 'tmpfs',
    fstype: 'tmpfs',
    bind: false,
    data: 'size=1m,uid=1000',
  });
  t.deepEqual(driverMount('v', { device: '/srv/x', o: 'bind' }), { source: '/srv/x', fstype: '', bind: true, data: '' });
  t.throws(() => driverMount('v', { type: 'nfs', addr: '1.2.3.4' }), { message: /driver option\(s\) addr are not known/ });
  t.throws(() => driverMount('v', { o: 'size=1m' }), { message: /needs a type/ });
});

test('NodeVolumes.prepare: copy-up into a new volume only, noCopy, subpath, binds and tmpfs', async (t) => {
  const dir = await tempDir(t);
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'www'), { recursive: true });
  await writeFile(join(rootfs, 'www', 'index.html'), 'from the image');
  const volumes = new NodeVolumes();
  const plan = (mounts: Parameters<typeof planVolumeMounts>[0]) =>
    planVolumeMounts(mounts, { taskStack: 'app', volumesDir: join(dir, 'volumes'), anonymousDir: join(dir, 'c1', 'volumes'), files: delivered() });

  const mounts = await volumes.prepare(
    'c1',
    plan([
      { type: 'volume', source: 'data', target: '/www' },
      { type: 'volume', target: '/www', readOnly: true },
      { type: 'tmpfs', target: '/scratch', sizeBytes: 65536, mode: 0o700 },
      { type: 'bind', source: join(dir, 'created'), target: '/b', createHostPath: true, propagation: 'rshared' },
    ]),
    rootfs,
  );
  const data = join(dir, 'volumes', 'app', 'data', '_data');
  t.is(await readFile(join(data, 'index.html'), 'utf8'), 'from the image', "a new named volume gets the image's content");
  t.is(await readFile(join(dir, 'c1', 'volumes', '1', '_data', 'index.html'), 'utf8'), 'from the image', 'so does an anonymous one');
  t.deepEqual(mounts[0], { destination: '/www', type: 'bind', source: data, options: ['rbind', 'rprivate'] });
  t.deepEqual(mounts[1]!.options, ['rbind', 'rprivate', 'ro']);
  t.deepEqual(mounts[2], { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'size=65536', 'mode=700'] });
  t.deepEqual(mounts[3]!.options, ['rbind', 'rshared']);
  t.true((await stat(join(dir, 'created'))).isDirectory(), 'create_host_path made the directory');

  // Used again after the user emptied it: no second copy (the volume was initialised once).
  await rm(join(data, 'index.html'));
  await volumes.prepare('c2', plan([{ type: 'volume', source: 'data', target: '/www' }]), rootfs);
  await t.throwsAsync(stat(join(data, 'index.html')));

  // noCopy and subpath.
  const anon = await volumes.prepare(
    'c3',
    planVolumeMounts([{ type: 'volume', target: '/www', noCopy: true }], {
      taskStack: 'app',
      volumesDir: join(dir, 'volumes'),
      anonymousDir: join(dir, 'c3', 'volumes'),
    }),
    rootfs,
  );
  await t.throwsAsync(stat(join(anon[0]!.source!, 'index.html')), undefined, 'noCopy leaves the volume empty');
  await mkdir(join(data, 'sub'));
  const sub = await volumes.prepare('c4', plan([{ type: 'volume', source: 'data', target: '/x', subpath: 'sub' }]), rootfs);
  t.is(sub[0]!.source, join(data, 'sub'));
  await t.throwsAsync(volumes.prepare('c5', plan([{ type: 'volume', source: 'data', target: '/x', subpath: 'missing' }]), rootfs), {
    message: /subpath missing does not exist in the volume/,
  });

  // A missing bind source without create_host_path fails the task with a clear message.
  await t.throwsAsync(volumes.prepare('c6', plan([{ type: 'bind', source: join(dir, 'absent'), target: '/a' }]), rootfs), {
    message: /source .*absent does not exist on this node \(create it, or set bind.create_host_path\)/,
  });
});

test('planTaskFiles: secrets under /run/secrets share one directory, others and configs are bound one by one', (t) => {
  const files = delivered();
  const plan = planTaskFiles(
    {
      image: 'x',
      secrets: [
        { source: 'pw', target: 'pw' },
        { source: 'pw', target: '/etc/pw', uid: '1000', gid: '1001', mode: 0o400 },
      ],
      configs: [{ source: 'conf', target: '/etc/app.conf' }],
    },
    'app',
    files,
  );
  t.true(plan.secretsDir);
  t.deepEqual(
    plan.files.map((f) => [f.target, f.hostPath, f.mode, f.uid, f.gid, f.data.toString()]),
    [
      ['/run/secrets/pw', 'secrets/pw', 0o444, 0, 0, 's3cret'],
      ['/etc/pw', 'single/1', 0o400, 1000, 1001, 's3cret'],
      ['/etc/app.conf', 'single/2', 0o444, 0, 0, 'a=1'],
    ],
  );
  t.deepEqual(
    taskFileMounts(plan, '/run/t/files').map((m) => `${m.destination}<-${m.source}`),
    ['/run/secrets<-/run/t/files/secrets', '/etc/pw<-/run/t/files/single/1', '/etc/app.conf<-/run/t/files/single/2'],
  );
  t.throws(() => planTaskFiles({ image: 'x', secrets: [{ source: 'gone', target: 'gone' }] }, 'app', files), {
    message: /secret "gone" was not delivered to this node/,
  });
  t.throws(() => planTaskFiles({ image: 'x', secrets: [{ source: 'pw', target: '../../etc/shadow' }] }, 'app', files), {
    message: /is not a usable file path/,
  });
  t.throws(
    () =>
      planTaskFiles(
        {
          image: 'x',
          secrets: [
            { source: 'pw', target: 'a' },
            { source: 'pw', target: '/run/secrets/a' },
          ],
        },
        'app',
        files,
      ),
    { message: /two secrets or configs have the target \/run\/secrets\/a/ },
  );
  // The plan holds a copy: withdrawing the delivered secret (which zeroes it) does not change it.
  files.apply(false, [], ['Secret/app/pw']);
  t.is(plan.files[0]!.data.toString(), 's3cret');
});

test('orderMounts: parents before children, duplicates refused', (t) => {
  const ordered = orderMounts([
    { destination: '/run/secrets', source: 'a' },
    { destination: '/run', source: 'b' },
    { destination: '/data', source: 'c' },
  ]);
  t.deepEqual(
    ordered.map((m) => m.destination),
    ['/run', '/data', '/run/secrets'],
  );
  t.throws(() => orderMounts([{ destination: '/x' }, { destination: '/x/' }]), { message: /two mounts have the target \/x/ });
});
