// The pure decisions behind `userns: auto`: reading subordinate-id files, the node's range, per-service
// blocks (stable, lowest free, disjoint, freed), id shifting, file capabilities and search ACLs.
import test from 'ava';

import {
  allocateBlock,
  blockCount,
  blockRange,
  chooseNodeRange,
  DEFAULT_RANGE,
  hostIdOf,
  IDS_PER_SERVICE,
  idMappingsOf,
  parseSubidFile,
  retainBlocks,
} from '../../agent/userns/id-ranges.js';
import { capabilityForRange, shiftedId } from '../../agent/userns/shifted-layers.js';
import { movedId, parseIdBase } from '../../agent/userns/volume-ownership.js';
import { aclOfMode, decodeAcl, encodeAcl, withGroupSearch, withoutGroup } from '../../agent/userns/search-acl.js';
import { directoriesOnTheWay } from '../../agent/userns/container-ids.js';
import { destinationSegments } from '../../agent/userns/mount-points.js';
import { userNamespaceProblem } from '../../agent/userns/kernel-support.js';
import { idMapsOf } from '../../agent/userns/idmapped-layers.js';
import { describeChoice } from '../../agent/userns/range-rootfs.js';

test('parseSubidFile reads owner:start:count lines and names the file and line of a bad one', (t) => {
  const entries = parseSubidFile('# comment\n\nalice:100000:65536\ntessera:200000:131072\n', '/etc/subuid');
  t.deepEqual(
    entries.map((e) => [e.owner, e.start, e.count, e.line]),
    [
      ['alice', 100000, 65536, 3],
      ['tessera', 200000, 131072, 4],
    ],
  );
  t.throws(() => parseSubidFile('alice:100000\n', '/etc/subuid'), { message: /^\/etc\/subuid:1: expected "owner:start:count"/ });
  t.throws(() => parseSubidFile('alice:-1:5\n', 'f'), { message: /^f:1:/ });
  t.throws(() => parseSubidFile('x\n'.repeat(10_001), 'f'), { message: /more than 10000 lines/ });
});

test('chooseNodeRange: the tessera entry, else the default (to be recorded), refusing clashes and short ranges', (t) => {
  const file = 'subuid';
  t.deepEqual(chooseNodeRange(parseSubidFile('tessera:500000:262144\n', file), file), { range: { start: 500000, count: 262144 }, record: false });
  t.deepEqual(chooseNodeRange(parseSubidFile('alice:100000:65536\n', file), file), { range: DEFAULT_RANGE, record: true });
  t.throws(() => chooseNodeRange(parseSubidFile(`bob:${DEFAULT_RANGE.start + 5}:10\n`, file), file), { message: /subuid:1: bob's range overlaps the default/ });
  t.throws(() => chooseNodeRange(parseSubidFile('tessera:500000:1000\n', file), file), { message: /has 1000 ids; a service needs 65536/ });
  t.throws(() => chooseNodeRange(parseSubidFile('tessera:1:65536\ntessera:70000:65536\n', file), file), { message: /2 entries for tessera \(lines 1, 2\)/ });
  t.throws(() => chooseNodeRange(parseSubidFile('tessera:4294901760:65536\n', file), file), { message: /must lie within/ });
});

test('allocateBlock: a service keeps its block, a new one gets the lowest free, and a full range is refused', (t) => {
  let allocations = {};
  const a = allocateBlock(allocations, 'web/a', 3);
  allocations = a.allocations;
  const b = allocateBlock(allocations, 'web/b', 3);
  allocations = b.allocations;
  t.deepEqual([a.block, b.block], [0, 1]);
  const again = allocateBlock(allocations, 'web/a', 3);
  t.is(again.block, 0);
  t.is(again.allocations, allocations, 'nothing new to record');
  // web/a's block freed: the next service takes it (lowest free), web/b stays where it is.
  const { allocations: kept, freed } = retainBlocks(allocations, new Set(['web/b']));
  t.deepEqual(freed, [0]);
  t.deepEqual(kept, { 'web/b': 1 });
  t.is(allocateBlock(kept, 'web/c', 3).block, 0);
  const full = { 'x/1': 0, 'x/2': 1, 'x/3': 2 };
  t.throws(() => allocateBlock(full, 'x/4', 3), { message: /all 3 ranges of 65536 ids are held/ });
});

test('blocks of different services never overlap, for uids and for gids', (t) => {
  const uids = { start: 1_000_000, count: 10 * IDS_PER_SERVICE };
  const gids = { start: 5_000_000, count: 4 * IDS_PER_SERVICE + 100 };
  const blocks = blockCount(uids, gids);
  t.is(blocks, 4, 'the smaller of the two ranges decides');
  let allocations = {};
  const ranges = [];
  for (let i = 0; i < blocks; i++) {
    const got = allocateBlock(allocations, `s/${i}`, blocks);
    allocations = got.allocations;
    ranges.push(blockRange(got.block, uids, gids));
  }
  for (const [i, r] of ranges.entries()) {
    t.true(r.gidStart + r.size <= gids.start + gids.count && r.uidStart + r.size <= uids.start + uids.count);
    for (const other of ranges.slice(i + 1)) {
      t.true(r.uidStart + r.size <= other.uidStart || other.uidStart + other.size <= r.uidStart);
      t.true(r.gidStart + r.size <= other.gidStart || other.gidStart + other.size <= r.gidStart);
    }
  }
  t.deepEqual(idMappingsOf(ranges[1]!), {
    uidMappings: [{ containerID: 0, hostID: 1_065_536, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 5_065_536, size: 65536 }],
  });
});

test('container ids seen from the host: shifted into the range; out-of-range ids refused or made nobody', (t) => {
  t.is(hostIdOf(0, 300000), 300000);
  t.is(hostIdOf(65535, 300000), 365535);
  t.throws(() => hostIdOf(65536, 300000), { message: /outside the container's 0\.\.65535/ });
  t.is(shiftedId(1000, 300000), 301000);
  t.is(shiftedId(100_000, 300000), 300000 + 65534, 'an id the range cannot hold becomes its nobody');
  t.is(movedId(300_005, 300_000, 500_000), 500_005, 'volume data moves from one range to the next');
  t.is(movedId(7, 300_000, 0), 65534, 'an id outside the recorded range becomes nobody');
  t.is(movedId(300_005, 300_000, 0), 5, 'back to the host ids');
  t.deepEqual(parseIdBase('300000 400000\n'), { uidStart: 300000, gidStart: 400000 });
  t.is(parseIdBase('garbage'), undefined);
});

test('capabilityForRange rewrites a file capability to revision 3 rooted at the range', (t) => {
  // Revision 2, effective, cap_net_bind_service (bit 10) permitted.
  const v2 = Buffer.alloc(20);
  v2.writeUInt32LE(0x0200_0001, 0);
  v2.writeUInt32LE(1 << 10, 4);
  const v3 = capabilityForRange(v2, 300000);
  t.is(v3?.length, 24);
  t.is(v3?.readUInt32LE(0), 0x0300_0001);
  t.is(v3?.readUInt32LE(4), 1 << 10);
  t.is(v3?.readUInt32LE(20), 300000);
  t.is(capabilityForRange(Buffer.alloc(12), 1), undefined, 'revision 1 (too short) is left out');
});

test('search ACL: the range group gets x alone, the mask keeps the mode, revoking restores the plain mode', (t) => {
  const plain = aclOfMode(0o40710);
  const granted = withGroupSearch(plain, 300000);
  const round = decodeAcl(encodeAcl(granted));
  t.deepEqual(
    round.map((e) => [e.tag, e.perm, e.id]),
    [
      [0x01, 7, 0xffffffff],
      [0x04, 1, 0xffffffff],
      [0x08, 1, 300000],
      [0x10, 1, 0xffffffff],
      [0x20, 0, 0xffffffff],
    ],
    'sorted as the kernel wants; mask --x: the mode still reads 0710',
  );
  const two = withGroupSearch(granted, 400000);
  t.is(two.filter((e) => e.tag === 0x08).length, 2);
  t.is(withGroupSearch(two, 400000).filter((e) => e.tag === 0x08).length, 2, 'granting twice adds nothing');
  t.deepEqual(withoutGroup(withoutGroup(two, 300000), 400000), plain, 'no named entries left: no mask');
  t.throws(() => decodeAcl(Buffer.from([1, 0, 0, 0])), { message: /version-2/ });
});

test('directoriesOnTheWay lists the directories between the data root and each mount source', (t) => {
  t.deepEqual(directoriesOnTheWay('/var/lib/tessera', ['/var/lib/tessera/containers/c1/rootfs', '/var/lib/tessera/run/tasks/c1/files/secrets', '/srv/data']), [
    '/var/lib/tessera/containers',
    '/var/lib/tessera/containers/c1',
    '/var/lib/tessera/run',
    '/var/lib/tessera/run/tasks',
    '/var/lib/tessera/run/tasks/c1',
    '/var/lib/tessera/run/tasks/c1/files',
  ]);
});

test('destinationSegments: mount points to make before a read-only rootfs, never under the runtime own /proc, /dev, /sys', (t) => {
  t.deepEqual(destinationSegments('/run/secrets/'), ['run', 'secrets']);
  t.is(destinationSegments('/dev/shm'), undefined);
  t.is(destinationSegments('/proc'), undefined);
  t.is(destinationSegments('/'), undefined);
  t.is(destinationSegments('/a/../etc'), undefined);
});

test('userNamespaceProblem tells a kernel without user namespaces and one that turned them off', (t) => {
  t.is(userNamespaceProblem(true, '96367\n'), undefined);
  t.is(userNamespaceProblem(true, undefined), undefined);
  t.regex(userNamespaceProblem(false, undefined) ?? '', /CONFIG_USER_NS/);
  t.regex(userNamespaceProblem(true, '0\n') ?? '', /user\.max_user_namespaces = 0/);
});

test("idMapsOf: the maps an idmapped layer is seen through are the container's own (0 onto the range start)", (t) => {
  const range = blockRange(2, { start: 300_000, count: 4 * IDS_PER_SERVICE }, { start: 900_000, count: 4 * IDS_PER_SERVICE });
  t.deepEqual(idMapsOf(range), { uidMap: `0 ${300_000 + 2 * IDS_PER_SERVICE} 65536\n`, gidMap: `0 ${900_000 + 2 * IDS_PER_SERVICE} 65536\n` });
  const { uidMappings } = idMappingsOf(range);
  t.is(idMapsOf(range).uidMap, `${uidMappings[0]?.containerID} ${uidMappings[0]?.hostID} ${uidMappings[0]?.size}\n`, "the same as the container's uid_map");
});

test('describeChoice: the log line says idmapped mounts, or copies and why', (t) => {
  t.regex(describeChoice({ mode: 'idmapped' }), /idmapped mounts/);
  t.regex(
    describeChoice({ mode: 'copy', reason: 'idmapped overlay layers do not work here: EINVAL' }),
    /chowned copies per range \(idmapped overlay layers do not work here: EINVAL\)/,
  );
});
