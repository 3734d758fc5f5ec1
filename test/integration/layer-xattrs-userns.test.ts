// Layer unpacking and `userns: auto` agree on file capabilities: a registry layer whose pax headers
// carry a revision 3 capability (rooted at uid 1000 of the machine that made it) and a user.*
// xattr is unpacked by the image store's unpacker (stored as revision 2), and a rootfs over it for
// a service's id range, over idmapped layers and over the shifted copy, shows the capability as
// revision 3 rooted at the range's root, the user.* xattr and the hard link as one inode. Real
// tar, real unpacker, real overlay and idmapped mounts (or copies); no container is started.
import test, { type ExecutionContext } from 'ava';
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { END_OF_ARCHIVE, encodeEntryHeader, padding, type LayerEntryHeader } from '../../agent/build/tar-entries.js';
import { unpackLayer } from '../../agent/images/layer-unpack.js';
import { lgetxattr } from '../../agent/runtime/native.js';
import { unmountRootfs } from '../../agent/runtime/rootfs.js';
import { blockRange } from '../../agent/userns/id-ranges.js';
import { RangeRootfs } from '../../agent/userns/range-rootfs.js';
import { ShiftedLayers } from '../../agent/userns/shifted-layers.js';

const RANGE = blockRange(2, { start: 400_000, count: 4 * 65_536 }, { start: 900_000, count: 4 * 65_536 });
/** CAP_NET_BIND_SERVICE permitted and effective, revision 3, rooted at uid 1000 of another machine. */
const CAP_V3_ELSEWHERE = Buffer.from([1, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x03, 0, 0]);

function fileEntry(path: string, body: string, extra: Partial<LayerEntryHeader> = {}): Buffer[] {
  const data = Buffer.from(body);
  return [encodeEntryHeader({ path, type: 'File', mode: 0o755, uid: 0, gid: 0, size: data.length, mtime: new Date(0), ...extra }), data, padding(data.length)];
}

async function unpackedRegistryLayer(dir: string): Promise<string> {
  const tar = join(dir, 'layer.tar');
  await writeFile(
    tar,
    Buffer.concat([
      ...fileEntry('bin/server', 'server', {
        xattrs: new Map([
          ['security.capability', CAP_V3_ELSEWHERE],
          ['user.origin', Buffer.from('registry')],
        ]),
      }),
      ...fileEntry('data', 'd', { uid: 1000, gid: 1000, mode: 0o644 }),
      encodeEntryHeader({ path: 'data-link', type: 'Link', linkpath: 'data', mode: 0o644, uid: 1000, gid: 1000, size: 0, mtime: new Date(0) }),
      END_OF_ARCHIVE,
    ]),
  );
  const layer = join(dir, 'layer');
  await mkdir(layer);
  await unpackLayer(tar, layer, 'registry layer');
  return layer;
}

async function agrees(t: ExecutionContext, ownership: 'idmapped' | 'copy'): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-layer-userns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const layer = await unpackedRegistryLayer(dir);
  t.is(lgetxattr(join(layer, 'bin', 'server'), 'security.capability')?.readUInt32LE(0), 0x0200_0001, 'unpacked as revision 2');

  const usernsDir = join(dir, 'userns');
  const rootfsOf = new RangeRootfs(join(usernsDir, 'idmapped'), new ShiftedLayers(join(usernsDir, 'layers')), ownership);
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  // Registered before the mount (teardowns run last first): unmounted before the directory goes.
  t.teardown(() => unmountRootfs(bundle));
  const rootfs = await rootfsOf.mount([layer], bundle, RANGE, () => undefined);
  const capability = lgetxattr(join(rootfs, 'bin', 'server'), 'security.capability');
  t.is(capability?.readUInt32LE(0), 0x0300_0001, 'revision 3 in the range’s rootfs');
  t.is(capability?.readUInt32LE(4), 1 << 10, 'the same capability');
  t.is(capability?.readUInt32LE(20), RANGE.uidStart, 'rooted at the range’s root, not at the uid 1000 of the layer’s maker');
  t.deepEqual(lgetxattr(join(rootfs, 'bin', 'server'), 'user.origin'), Buffer.from('registry'));
  const data = await lstat(join(rootfs, 'data'));
  t.is((await lstat(join(rootfs, 'data-link'))).ino, data.ino, 'the hard link is one inode');
  t.deepEqual([data.uid - RANGE.uidStart, data.gid - RANGE.gidStart], [1000, 1000]);
}

test('over idmapped layers', async (t) => {
  await agrees(t, 'idmapped');
});

test('over the shifted copy', async (t) => {
  await agrees(t, 'copy');
});
