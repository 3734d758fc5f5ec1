// Extended attributes through layers: the pax SCHILY.xattr reader (fed in odd chunk sizes, global
// and local headers, bounds), the allow-list, the revision-3 capability made revision 2, and real
// round trips on disk: an upper dir with a file capability and user.* xattrs → layerTar → our
// unpacker sets exactly the allowed ones; a hand-made layer (what an image from a registry
// carries) with forbidden ones (trusted.overlay.*, security.selinux, user.overlay.*) sets none of
// those and says so in its notes; ADD of a local archive and COPY keep the allowed ones. Runs as root (file capabilities need CAP_SETFCAP), as the
// image store does.
import test from 'ava';
import { Header } from 'tar';
import { mkdir, mkdtemp, readFile, rm, writeFile, link, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layerTar, keptXattr } from '../../agent/build/layer-diff.js';
import { encodeEntryHeader, padding, paxRecord, END_OF_ARCHIVE, type LayerEntryHeader } from '../../agent/build/tar-entries.js';
import { unpackLayer } from '../../agent/images/layer-unpack.js';
import { MAX_XATTR_VALUE_BYTES, TarXattrScanner, layerCapability, parsePaxRecords, tarNumber, xattrDecision } from '../../agent/images/tar-xattrs.js';
import { lgetxattr, llistxattr, lsetxattr } from '../../agent/runtime/native.js';
import { unpackArchive } from '../../agent/build/add-archive.js';
import { applyCopy } from '../../agent/build/copy-apply.js';
import { digestOfMatches, directorySource } from '../../agent/build/copy-sources.js';

/** CAP_NET_BIND_SERVICE (bit 10) permitted and effective, revision 2. */
const CAP_V2 = Buffer.from([1, 0, 0, 2, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const CAP_V3 = Buffer.concat([Buffer.from([1, 0, 0, 3]), CAP_V2.subarray(4), Buffer.from([0xe8, 0x03, 0, 0])]);

const entry = (path: string, body: string, xattrs?: Map<string, Buffer>): Buffer[] => {
  const data = Buffer.from(body);
  const header: LayerEntryHeader = { path, type: 'File', mode: 0o755, uid: 0, gid: 0, size: data.length, mtime: new Date(0), ...(xattrs ? { xattrs } : {}) };
  return [encodeEntryHeader(header), data, padding(data.length)];
};

/** A pax global header ('g') carrying `records`. */
function globalHeader(records: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write('pax_global_header', 0);
  header.write('0000644\0', 100);
  header.write(`${records.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('g', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([header, records, padding(records.length)]);
}

test('the scanner finds each entry’s xattrs, binary values intact, however the stream is cut', (t) => {
  const tar = Buffer.concat([
    ...entry('a', 'plain'),
    ...entry('bin/ping', 'x'.repeat(700), new Map([['security.capability', CAP_V2]])),
    ...entry('c', '', new Map([['user.note', Buffer.from([0xff, 0x00, 0x0a, 0x3d])]])),
    END_OF_ARCHIVE,
  ]);
  for (const size of [1, 7, 511, 512, 513, tar.length]) {
    const scanner = new TarXattrScanner();
    for (let at = 0; at < tar.length; at += size) scanner.write(tar.subarray(at, at + size));
    t.is(scanner.take(0), undefined, `chunks of ${size}: entry 0 has none`);
    t.deepEqual(scanner.take(1), new Map([['security.capability', CAP_V2]]), `chunks of ${size}`);
    t.deepEqual(scanner.take(2), new Map([['user.note', Buffer.from([0xff, 0x00, 0x0a, 0x3d])]]), `chunks of ${size}: newline, NUL and "=" in a value`);
    t.is(scanner.take(1), undefined, 'taken once');
  }
});

test('a global pax header gives its xattrs to every later entry; a local one wins', (t) => {
  const records = paxRecord('SCHILY.xattr.user.a', Buffer.from('g'));
  const tar = Buffer.concat([globalHeader(records), ...entry('one', '1'), ...entry('two', '2', new Map([['user.a', Buffer.from('l')]])), END_OF_ARCHIVE]);
  const scanner = new TarXattrScanner();
  scanner.write(tar);
  t.deepEqual(scanner.take(0), new Map([['user.a', Buffer.from('g')]]));
  t.deepEqual(scanner.take(1), new Map([['user.a', Buffer.from('l')]]));
});

test('pax records and numbers: malformed or oversized input is refused by name', (t) => {
  t.deepEqual([...parsePaxRecords(Buffer.from('11 path=ab\n'))], [['path', Buffer.from('ab')]]);
  t.throws(() => parsePaxRecords(Buffer.from('99 path=ab\n')), { message: /cut or not ended/ });
  t.throws(() => parsePaxRecords(Buffer.from('x path=ab\n')), { message: /has length/ });
  t.is(tarNumber(Buffer.from('0000644\0')), 0o644);
  t.is(tarNumber(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0])), 512);
  t.throws(() => tarNumber(Buffer.from('12x\0')), { message: /not octal/ });
  const big = Buffer.alloc(MAX_XATTR_VALUE_BYTES + 1, 1);
  const scanner = new TarXattrScanner();
  t.throws(() => scanner.write(Buffer.concat([...entry('f', '', new Map([['user.big', big]])), END_OF_ARCHIVE])), { message: /user\.big has 65537 bytes/ });
});

test('allow-list: security.capability (root only) and user.* are kept; trusted.*, security labels, user.overlay.*, ACLs are not', (t) => {
  t.deepEqual(xattrDecision('security.capability', true), { keep: true });
  t.false(xattrDecision('security.capability', false).keep);
  t.deepEqual(xattrDecision('user.mime_type', false), { keep: true });
  for (const name of [
    'trusted.overlay.opaque',
    'trusted.overlay.redirect',
    'user.overlay.origin',
    'security.selinux',
    'security.ima',
    'system.posix_acl_access',
  ])
    t.false(xattrDecision(name, true).keep, name);
  // The layer writer keeps the same set.
  t.true(keptXattr('security.capability') && keptXattr('user.x'));
  t.false(keptXattr('trusted.overlay.opaque') || keptXattr('user.overlay.impure') || keptXattr('security.selinux'));
});

test('a revision 3 capability (a root uid of somewhere else) is stored as revision 2; a malformed one is refused', (t) => {
  t.is(layerCapability(CAP_V2), CAP_V2);
  t.deepEqual(layerCapability(CAP_V3), CAP_V2);
  t.throws(() => layerCapability(Buffer.alloc(12)), { message: /12 bytes/ });
  t.throws(() => layerCapability(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.alloc(16)])), { message: /revision 0x3000000 with 20 bytes/ });
});

test('round trip on disk: an upper dir’s capability and user.* xattrs go into the layer and are set again by unpacking, hard links one inode', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-xattrs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const upper = join(dir, 'upper');
  await mkdir(join(upper, 'bin'), { recursive: true });
  await writeFile(join(upper, 'bin', 'server'), 'binary');
  await link(join(upper, 'bin', 'server'), join(upper, 'bin', 'server2'));
  lsetxattr(join(upper, 'bin', 'server'), 'security.capability', CAP_V2);
  lsetxattr(join(upper, 'bin', 'server'), 'user.origin', Buffer.from('build'));
  lsetxattr(join(upper, 'bin'), 'user.dir', Buffer.from('d'));
  lsetxattr(join(upper, 'bin'), 'trusted.other', Buffer.from('node-only'));

  const chunks: Buffer[] = [];
  for await (const chunk of layerTar(upper, { what: 'xattr layer' })) chunks.push(chunk);
  const blob = join(dir, 'layer.tar');
  await writeFile(blob, Buffer.concat(chunks));
  const out = join(dir, 'out');
  await mkdir(out);
  const result = await unpackLayer(blob, out, 'xattr layer');
  t.deepEqual(lgetxattr(join(out, 'bin', 'server'), 'security.capability'), CAP_V2);
  t.deepEqual(lgetxattr(join(out, 'bin', 'server'), 'user.origin'), Buffer.from('build'));
  t.deepEqual(lgetxattr(join(out, 'bin'), 'user.dir'), Buffer.from('d'));
  t.false(llistxattr(join(out, 'bin')).includes('trusted.other'), 'trusted.* never goes into a layer');
  t.is((await lstat(join(out, 'bin', 'server2'))).ino, (await lstat(join(out, 'bin', 'server'))).ino, 'the hard link is one inode');
  t.deepEqual(lgetxattr(join(out, 'bin', 'server2'), 'security.capability'), CAP_V2, 'and so shares the capability');
  t.deepEqual(result.notes, []);
});

test('a registry layer’s forbidden xattrs are not set and are noted once per name; v3 capabilities land as v2', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-xattrs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const forbidden = new Map([
    ['trusted.overlay.redirect', Buffer.from('/etc')],
    ['security.selinux', Buffer.from('system_u:object_r:shadow_t:s0')],
    ['user.overlay.metacopy', Buffer.from('')],
  ]);
  const tar = Buffer.concat([
    ...entry('one', 'a', new Map([...forbidden, ['user.kept', Buffer.from('k')]])),
    ...entry('two', 'b', forbidden),
    ...entry('ping', 'c', new Map([['security.capability', CAP_V3]])),
    END_OF_ARCHIVE,
  ]);
  const blob = join(dir, 'layer.tar');
  await writeFile(blob, tar);
  const out = join(dir, 'out');
  await mkdir(out);
  const result = await unpackLayer(blob, out, 'registry layer');
  t.deepEqual(llistxattr(join(out, 'one')), ['user.kept']);
  t.deepEqual(llistxattr(join(out, 'two')), []);
  t.deepEqual(lgetxattr(join(out, 'ping'), 'security.capability'), CAP_V2);
  t.is(await readFile(join(out, 'one'), 'utf8'), 'a');
  t.deepEqual(
    result.notes.map((n) => n.replace(/ \(.*\)/, '')),
    [
      'skipped xattr security.selinux, first on one',
      'skipped xattr trusted.overlay.redirect, first on one',
      'skipped xattr user.overlay.metacopy, first on one',
    ],
  );

  const bad = join(dir, 'bad.tar');
  await writeFile(bad, Buffer.concat([...entry('x', 'a', new Map([['security.capability', Buffer.alloc(12)]])), END_OF_ARCHIVE]));
  const badOut = join(dir, 'bad');
  await mkdir(badOut);
  await t.throwsAsync(unpackLayer(bad, badOut, 'bad layer'), {
    name: 'UnsafeLayerError',
    message: /bad layer: entry "x": refused: security\.capability of 12 bytes/,
  });
});

test('ADD of a local archive sets its allowed xattrs, COPY carries them on, and they are part of the step’s cache key', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-xattrs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const archive = join(dir, 'archive.tar');
  await writeFile(
    archive,
    Buffer.concat([
      ...entry(
        'bin/server',
        'srv',
        new Map([
          ['security.capability', CAP_V2],
          ['user.origin', Buffer.from('archive')],
          ['trusted.x', Buffer.from('no')],
        ]),
      ),
      ...entry('plain', 'p'),
      END_OF_ARCHIVE,
    ]),
  );
  const unpacked = join(dir, 'unpacked');
  await unpackArchive(archive, 'tar', unpacked, join(dir, 'scratch'), 'ADD archive.tar /x/');
  t.deepEqual(lgetxattr(join(unpacked, 'bin', 'server'), 'security.capability'), CAP_V2);
  t.deepEqual(lgetxattr(join(unpacked, 'bin', 'server'), 'user.origin'), Buffer.from('archive'));
  t.false(llistxattr(join(unpacked, 'bin', 'server')).includes('trusted.x'));
  t.deepEqual(llistxattr(join(unpacked, 'plain')), []);

  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs);
  const source = await directorySource(unpacked, 'archive.tar', true);
  await applyCopy([source], { rootfs, dest: '/x/', what: 'ADD archive.tar /x/' });
  t.deepEqual(lgetxattr(join(rootfs, 'x', 'bin', 'server'), 'security.capability'), CAP_V2, 'kept through the copy (set after its chown)');
  t.deepEqual(lgetxattr(join(rootfs, 'x', 'bin', 'server'), 'user.origin'), Buffer.from('archive'));

  const withXattrs = await digestOfMatches([source]);
  lsetxattr(join(unpacked, 'bin', 'server'), 'user.origin', Buffer.from('changed'));
  t.not(await digestOfMatches([source]), withXattrs, 'a changed xattr is another cache key');
});

test('a pax header before a GNU long-name header still gives its xattrs to the entry after both, as node-tar reads it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-xattrs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const longName = `${'d'.repeat(120)}/file`;
  const paxBody = paxRecord('SCHILY.xattr.user.long', Buffer.from('yes'));
  const block = (data: ConstructorParameters<typeof Header>[0]): Buffer => {
    const out = Buffer.alloc(512);
    new Header(data).encode(out, 0);
    return out;
  };
  const nameBody = Buffer.from(`${longName}\0`);
  const tar = Buffer.concat([
    block({ path: 'PaxHeader/file', type: 'ExtendedHeader', size: paxBody.length, mode: 0o644, mtime: new Date(0) }),
    paxBody,
    padding(paxBody.length),
    block({ path: '././@LongLink', type: 'NextFileHasLongPath', size: nameBody.length, mode: 0o644, mtime: new Date(0) }),
    nameBody,
    padding(nameBody.length),
    block({ path: 'short', type: 'File', size: 1, mode: 0o644, mtime: new Date(0) }),
    Buffer.from('x'),
    padding(1),
    END_OF_ARCHIVE,
  ]);
  const blob = join(dir, 'layer.tar');
  await writeFile(blob, tar);
  const out = join(dir, 'out');
  await mkdir(out);
  await unpackLayer(blob, out, 'long-name layer');
  t.deepEqual(lgetxattr(join(out, longName), 'user.long'), Buffer.from('yes'));
});
