// The file side of `userns: auto` on a real file system: a layer's shifted copy (owners moved into
// the range; hard links, set-id bits, overlay whiteouts and opaque directories, file capabilities
// kept), the same rootfs over idmapped layers and over copies, a volume's data moved between ranges
// and back, and search ACLs on real directories.
import test, { type ExecutionContext } from 'ava';
import { appendFile, chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile, chown } from 'node:fs/promises';
import { closeSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createUserNamespace, idmappedMount, lgetxattr, lsetxattr, mknod, umount } from '../../agent/runtime/native.js';
import { idMapsOf } from '../../agent/userns/idmapped-layers.js';
import { blockRange } from '../../agent/userns/id-ranges.js';
import { rangeCacheDir, ShiftedLayers } from '../../agent/userns/shifted-layers.js';
import { RangeRootfs, type LayerOwnership } from '../../agent/userns/range-rootfs.js';
import { unmountRootfs } from '../../agent/runtime/rootfs.js';
import { adoptNewVolumeData, claimVolumeData, HOST_IDS } from '../../agent/userns/volume-ownership.js';
import { decodeAcl, grantSearch, revokeSearch } from '../../agent/userns/search-acl.js';

const RANGE = blockRange(1, { start: 400_000, count: 4 * 65_536 }, { start: 900_000, count: 4 * 65_536 });

function umountIfMounted(path: string): void {
  try {
    umount(path, true);
  } catch {
    // Not mounted (any more): what the test wanted.
  }
}

async function scratch(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-userns-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a shifted layer: owners in the range, links, set-id bits, whiteouts, opaque dirs and capabilities kept', async (t) => {
  const dir = await scratch(t);
  const layer = join(dir, 'layer');
  await mkdir(join(layer, 'opaque'), { recursive: true });
  await writeFile(join(layer, 'suid'), 'x', { mode: 0o755 });
  await chmod(join(layer, 'suid'), 0o4755);
  await writeFile(join(layer, 'user-file'), 'y');
  await chown(join(layer, 'user-file'), 1000, 1000);
  await link(join(layer, 'user-file'), join(layer, 'hard-link'));
  await symlink('user-file', join(layer, 'sym'));
  mknod(join(layer, 'gone'), constants.S_IFCHR, 0, 0);
  lsetxattr(join(layer, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'));
  const capability = Buffer.alloc(20);
  capability.writeUInt32LE(0x0200_0001, 0);
  capability.writeUInt32LE(1 << 10, 4);
  await writeFile(join(layer, 'capped'), 'z', { mode: 0o755 });
  lsetxattr(join(layer, 'capped'), 'security.capability', capability);

  const layers = new ShiftedLayers(join(dir, 'cache'));
  const [copy] = await layers.layersFor([layer], RANGE);
  if (copy === undefined) throw new Error('no copy');
  const owner = async (name: string) => {
    const info = await lstat(join(copy, name));
    return [info.uid, info.gid];
  };
  t.deepEqual(await owner('.'), [RANGE.uidStart, RANGE.gidStart]);
  t.deepEqual(await owner('user-file'), [RANGE.uidStart + 1000, RANGE.gidStart + 1000], 'a hard link is shifted once, not twice');
  t.is((await lstat(join(copy, 'hard-link'))).ino, (await lstat(join(copy, 'user-file'))).ino);
  t.deepEqual(await owner('sym'), [RANGE.uidStart, RANGE.gidStart]);
  t.is((await stat(join(copy, 'suid'))).mode & 0o7777, 0o4755, 'chown clears set-id bits; they are put back');
  const whiteout = await lstat(join(copy, 'gone'));
  t.true(whiteout.isCharacterDevice() && whiteout.rdev === 0);
  t.is(lgetxattr(join(copy, 'opaque'), 'trusted.overlay.opaque')?.toString(), 'y');
  const shiftedCap = lgetxattr(join(copy, 'capped'), 'security.capability');
  t.is(shiftedCap?.readUInt32LE(0), 0x0300_0001, 'revision 3');
  t.is(shiftedCap?.readUInt32LE(20), RANGE.uidStart, 'rooted at the range');
  t.deepEqual([(await lstat(join(layer, 'user-file'))).uid], [1000], 'the original layer is untouched');

  // Asked again (another task, another image with the layer): the same copy, not made again.
  const again = await layers.layersFor([layer], RANGE);
  t.deepEqual(again, [copy]);
  await layers.remove(RANGE);
  await t.throwsAsync(stat(copy), { code: 'ENOENT' });
});

/** Two layers: the lower with owners, links, set-id bits and a capability; the upper deleting and making opaque. */
async function twoLayers(dir: string): Promise<[string, string]> {
  const [bottom, top] = [join(dir, 'bottom'), join(dir, 'top')];
  await mkdir(join(bottom, 'opaque'), { recursive: true });
  await writeFile(join(bottom, 'opaque', 'hidden'), 'h');
  await writeFile(join(bottom, 'deleted'), 'd');
  await writeFile(join(bottom, 'user-file'), 'y');
  await chown(join(bottom, 'user-file'), 1000, 1000);
  await link(join(bottom, 'user-file'), join(bottom, 'hard-link'));
  await symlink('user-file', join(bottom, 'sym'));
  await writeFile(join(bottom, 'suid'), 'x', { mode: 0o755 });
  await chmod(join(bottom, 'suid'), 0o4755);
  const capability = Buffer.alloc(20);
  capability.writeUInt32LE(0x0200_0001, 0);
  capability.writeUInt32LE(1 << 10, 4);
  await writeFile(join(bottom, 'capped'), 'z', { mode: 0o755 });
  lsetxattr(join(bottom, 'capped'), 'security.capability', capability);
  await mkdir(join(top, 'opaque'), { recursive: true });
  lsetxattr(join(top, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'));
  await writeFile(join(top, 'opaque', 'kept'), 'k');
  mknod(join(top, 'deleted'), constants.S_IFCHR, 0, 0);
  return [bottom, top];
}

/** The same rootfs, whichever way the layers come to be owned by the range. */
async function rangeRootfsBehaves(t: ExecutionContext, ownership: Exclude<LayerOwnership, 'auto'>): Promise<void> {
  const dir = await scratch(t);
  const layers = await twoLayers(dir);
  const usernsDir = join(dir, 'userns');
  const copies = new ShiftedLayers(join(usernsDir, 'layers'));
  const rootfsOf = new RangeRootfs(join(usernsDir, 'idmapped'), copies, ownership);
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  const logs: string[] = [];
  t.teardown(() => unmountRootfs(bundle));
  const rootfs = await rootfsOf.mount(layers, bundle, RANGE, (m) => logs.push(m));
  t.is((await rootfsOf.chosen(RANGE, () => undefined)).mode, ownership);
  t.regex(logs.join('\n'), ownership === 'idmapped' ? /idmapped mounts/ : /chowned copies per range \(configured\)/, 'the choice is logged');

  const owner = async (name: string) => {
    const info = await lstat(join(rootfs, name));
    return [info.uid - RANGE.uidStart, info.gid - RANGE.gidStart];
  };
  t.deepEqual(await owner('.'), [0, 0], "the container's root owns /");
  t.deepEqual(await owner('user-file'), [1000, 1000]);
  t.deepEqual(await owner('sym'), [0, 0]);
  t.deepEqual(await owner('opaque/kept'), [0, 0]);
  t.is((await lstat(join(rootfs, 'hard-link'))).ino, (await lstat(join(rootfs, 'user-file'))).ino, 'hard links stay one file');
  t.is((await stat(join(rootfs, 'suid'))).mode & 0o7777, 0o4755);
  await t.throwsAsync(lstat(join(rootfs, 'deleted')), { code: 'ENOENT' }, 'the whiteout deletes');
  await t.throwsAsync(lstat(join(rootfs, 'opaque', 'hidden')), { code: 'ENOENT' }, 'the opaque directory hides the lower one');
  const capability = lgetxattr(join(rootfs, 'capped'), 'security.capability');
  t.is(capability?.readUInt32LE(0), 0x0300_0001, 'the capability reads as revision 3');
  t.is(capability?.readUInt32LE(20), RANGE.uidStart, "rooted at the range's root");
  // A write copies the file up keeping its (range) owner.
  await appendFile(join(rootfs, 'user-file'), '+');
  const upper = await lstat(join(bundle, 'upper', 'user-file'));
  t.deepEqual([upper.uid, upper.gid], [RANGE.uidStart + 1000, RANGE.gidStart + 1000]);
  t.is(await readFile(join(layers[0], 'user-file'), 'utf8'), 'y', 'the layer itself is not written');

  // The layers on disk: untouched with idmapped mounts; copied (and the copy shifted) otherwise.
  t.deepEqual([(await lstat(join(layers[0], 'user-file'))).uid, (await lstat(layers[0])).uid], [1000, 0], 'the layer keeps its host owners');
  const copied = await stat(rangeCacheDir(join(usernsDir, 'layers'), RANGE)).then(
    () => true,
    () => false,
  );
  t.is(copied, ownership === 'copy', ownership === 'copy' ? 'copies made' : 'nothing copied');
  // No idmapped bind is left staged: the overlay holds its own.
  const staged = await readdir(join(usernsDir, 'idmapped')).catch(() => []);
  t.deepEqual(staged, []);
}

test('a rootfs over idmapped layers: owners, links, set-id bits, whiteouts, opaque dirs, capabilities; nothing chowned on disk', async (t) => {
  await rangeRootfsBehaves(t, 'idmapped');
});

test('the same rootfs over chowned copies (the fallback, forced)', async (t) => {
  await rangeRootfsBehaves(t, 'copy');
});

test('binds an earlier agent left staged (a crash mid-mount, mid-probe) are detached, never emptied, before the probe', async (t) => {
  const dir = await scratch(t);
  const [bottom] = await twoLayers(dir);
  const idmapped = join(dir, 'userns', 'idmapped');
  const staged = [join(idmapped, 'a1b2c3', '0'), join(idmapped, 'probe-d4e5f6', 'staging', '0')];
  const { uidMap, gidMap } = idMapsOf(RANGE);
  const usernsFd = createUserNamespace(uidMap, gidMap);
  try {
    for (const path of staged) {
      await mkdir(path, { recursive: true });
      idmappedMount(bottom, path, usernsFd);
      t.teardown(() => umountIfMounted(path));
    }
  } finally {
    closeSync(usernsFd);
  }
  t.is((await lstat(join(staged[0]!, 'user-file'))).uid, RANGE.uidStart + 1000, 'the leftover bind is idmapped');
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  t.teardown(() => unmountRootfs(bundle));
  const rootfsOf = new RangeRootfs(idmapped, new ShiftedLayers(join(dir, 'userns', 'layers')), 'idmapped');
  await rootfsOf.mount([bottom], bundle, RANGE, () => undefined);
  t.deepEqual(await readdir(idmapped), [], 'the leftovers are gone');
  t.deepEqual((await readdir(bottom)).sort(), ['capped', 'deleted', 'hard-link', 'opaque', 'suid', 'sym', 'user-file'], "the layer's files are all there");
});

test('volume data follows the range that mounts it: host ids -> range -> host ids', async (t) => {
  const dir = await scratch(t);
  const data = join(dir, 'vol', '_data');
  await mkdir(join(data, 'sub'), { recursive: true });
  await writeFile(join(data, 'sub', 'f'), 'v');
  await chown(join(data, 'sub', 'f'), 33, 33);
  await claimVolumeData(data, RANGE);
  t.is((await lstat(join(data, 'sub', 'f'))).uid, RANGE.uidStart + 33);
  t.is((await lstat(data)).gid, RANGE.gidStart);
  // Mounted again by the same range: nothing moves (the record says so).
  await claimVolumeData(data, RANGE);
  t.is((await lstat(join(data, 'sub', 'f'))).uid, RANGE.uidStart + 33);
  await claimVolumeData(data, HOST_IDS);
  t.deepEqual([(await lstat(join(data, 'sub', 'f'))).uid, (await lstat(data)).uid], [33, 0]);

  // A new, empty volume made by host root for a range task: only its directory is handed over.
  const fresh = join(dir, 'new', '_data');
  await claimVolumeData(fresh, RANGE);
  await mkdir(fresh, { recursive: true });
  await adoptNewVolumeData(fresh, RANGE);
  t.deepEqual([(await lstat(fresh)).uid, (await lstat(fresh)).gid], [RANGE.uidStart, RANGE.gidStart]);
});

test('search ACLs on a real directory: the mode stays, the entry comes and goes', async (t) => {
  const dir = await scratch(t);
  const target = join(dir, 'private');
  await mkdir(target, { mode: 0o700 });
  await chmod(target, 0o700);
  await Promise.all([grantSearch([target], 1_000_001), grantSearch([target], 1_000_002)]);
  const groups = () => decodeAcl(lgetxattr(target, 'system.posix_acl_access') ?? Buffer.from([2, 0, 0, 0])).flatMap((e) => (e.tag === 8 ? [e.id] : []));
  t.deepEqual(groups(), [1_000_001, 1_000_002], 'two grants made at once both hold');
  t.is((await stat(target)).mode & 0o777, 0o710, 'group bits show the mask: search only');
  await revokeSearch([target], 1_000_001);
  await revokeSearch([target], 1_000_002);
  t.deepEqual(groups(), []);
  t.is((await stat(target)).mode & 0o777, 0o700, 'back to the plain mode');
});
