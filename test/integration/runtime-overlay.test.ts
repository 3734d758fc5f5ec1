// Overlay rootfs from layer directories, used as a container's root.

import test from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import { mountOverlayRootfs, unmountRootfs } from '../../agent/runtime/rootfs.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';
import { RuntimeFixture } from '../helpers/runtime-fixture.js';

test('an overlay of two layers is a container root; writes land in upper; unmount leaves no mount', async (t) => {
  const fx = await RuntimeFixture.create();
  const containerDir = path.join(fx.dir, 'container');
  t.teardown(async () => {
    await unmountRootfs(containerDir).catch(() => undefined);
    await fx.cleanup();
  });
  const bottom = path.join(fx.dir, 'layers', 'bottom');
  const top = path.join(fx.dir, 'layers', 'top');
  await makeBusyboxRootfs(bottom);
  await fs.writeFile(path.join(bottom, 'etc/from-bottom'), 'bottom\n');
  await fs.writeFile(path.join(bottom, 'etc/shadowed'), 'bottom version\n');
  await fs.mkdir(path.join(top, 'etc'), { recursive: true });
  await fs.writeFile(path.join(top, 'etc/from-top'), 'top\n');
  await fs.writeFile(path.join(top, 'etc/shadowed'), 'top version\n');

  const rootfs = await mountOverlayRootfs([bottom, top], containerDir);
  t.is(rootfs, path.join(containerDir, 'rootfs'));
  t.deepEqual(await fx.leftoverMounts(), [rootfs]);

  const { exit, log } = await fx.run({
    args: ['sh', '-c', 'cat /etc/from-bottom /etc/from-top /etc/shadowed; echo written > /etc/new-file'],
    rootfsPath: rootfs,
  });
  t.is(exit.exitCode, 0, log);
  t.deepEqual(log.trim().split('\n'), ['bottom', 'top', 'top version']);
  t.is(await fs.readFile(path.join(containerDir, 'upper/etc/new-file'), 'utf8'), 'written\n');
  t.false(
    await fs.stat(path.join(bottom, 'etc/new-file')).then(
      () => true,
      () => false,
    ),
    'layers stay untouched',
  );
  t.false(
    await fs.stat(path.join(top, 'etc/new-file')).then(
      () => true,
      () => false,
    ),
    'layers stay untouched',
  );

  await unmountRootfs(containerDir);
  t.deepEqual(await fx.leftoverMounts(), [], 'no mount left');
  await unmountRootfs(containerDir); // unmounting twice is harmless
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});
