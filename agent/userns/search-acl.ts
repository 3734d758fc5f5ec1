// A user-namespaced container's init does its mounts as the namespace's root, which is an
// unprivileged id on the host: it must be able to pass through the directories that lead to its
// rootfs, its secrets tmpfs and its volumes, all of which are root's only (0700/0710). Rather than
// opening those directories to everyone, each gets a POSIX ACL entry granting search (x) alone to
// the service range's root group; `ls` shows the mode unchanged apart from the mask. The ACL is
// written as the kernel's system.posix_acl_access xattr (no acl tools are needed on the node).
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { unlessAbsent } from '../fs-errors.js';

import { lgetxattr, lsetxattr } from '../runtime/native.js';

const ACL_XATTR = 'system.posix_acl_access';
const ACL_VERSION = 2;
const NO_ID = 0xffff_ffff;
const TAG = { userObj: 0x01, user: 0x02, groupObj: 0x04, group: 0x08, mask: 0x10, other: 0x20 } as const;
const SEARCH = 1;

export interface AclEntry {
  tag: number;
  perm: number;
  id: number;
}

/** Pure: the xattr's entries; throws on a malformed value. */
export function decodeAcl(value: Buffer): AclEntry[] {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== ACL_VERSION) throw new Error('not a version-2 POSIX ACL');
  const entries: AclEntry[] = [];
  for (let at = 4; at < value.length; at += 8) entries.push({ tag: value.readUInt16LE(at), perm: value.readUInt16LE(at + 2), id: value.readUInt32LE(at + 4) });
  return entries;
}

/** Pure: entries in the kernel's order (by tag, then id) as the xattr value. */
export function encodeAcl(entries: readonly AclEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => a.tag - b.tag || a.id - b.id);
  const out = Buffer.alloc(4 + 8 * sorted.length);
  out.writeUInt32LE(ACL_VERSION, 0);
  sorted.forEach((e, i) => {
    out.writeUInt16LE(e.tag, 4 + 8 * i);
    out.writeUInt16LE(e.perm, 6 + 8 * i);
    out.writeUInt32LE(e.id, 8 + 8 * i);
  });
  return out;
}

/** Pure: the minimal ACL a mode stands for. */
export function aclOfMode(mode: number): AclEntry[] {
  return [
    { tag: TAG.userObj, perm: (mode >> 6) & 7, id: NO_ID },
    { tag: TAG.groupObj, perm: (mode >> 3) & 7, id: NO_ID },
    { tag: TAG.other, perm: mode & 7, id: NO_ID },
  ];
}

/** Pure: `entries` with search granted to group `gid`; the mask covers the owning group and every named entry. */
export function withGroupSearch(entries: readonly AclEntry[], gid: number): AclEntry[] {
  const kept = entries.filter((e) => e.tag !== TAG.mask && !(e.tag === TAG.group && e.id === gid));
  const previous = entries.find((e) => e.tag === TAG.group && e.id === gid)?.perm ?? 0;
  const next = [...kept, { tag: TAG.group, perm: previous | SEARCH, id: gid }];
  return [...next, { tag: TAG.mask, perm: maskOf(next), id: NO_ID }];
}

/** Pure: `entries` without group `gid`'s entry; without named entries left, the mask goes too. */
export function withoutGroup(entries: readonly AclEntry[], gid: number): AclEntry[] {
  const kept = entries.filter((e) => e.tag !== TAG.mask && !(e.tag === TAG.group && e.id === gid));
  const named = kept.some((e) => e.tag === TAG.user || e.tag === TAG.group);
  return named ? [...kept, { tag: TAG.mask, perm: maskOf(kept), id: NO_ID }] : kept;
}

function maskOf(entries: readonly AclEntry[]): number {
  return entries.filter((e) => e.tag === TAG.groupObj || e.tag === TAG.user || e.tag === TAG.group).reduce((m, e) => m | e.perm, 0);
}

async function currentAcl(dir: string): Promise<AclEntry[]> {
  const value = lgetxattr(dir, ACL_XATTR);
  if (value !== undefined) return decodeAcl(value);
  return aclOfMode((await lstat(dir)).mode);
}

/**
 * Every change of an ACL here is a read-modify-write of one xattr, and containers of different
 * services share directories (containers/, run/): changes run one after another, or two grants
 * made at once would keep only the last.
 */
let aclChain: Promise<unknown> = Promise.resolve();
function serially<T>(work: () => Promise<T>): Promise<T> {
  const next = aclChain.then(work);
  aclChain = next.catch(() => undefined);
  return next;
}

/** Lets group `gid` pass through each directory (search only; no listing, no reading). */
export function grantSearch(dirs: readonly string[], gid: number): Promise<void> {
  return serially(() => grantNow(dirs, gid));
}

async function grantNow(dirs: readonly string[], gid: number): Promise<void> {
  for (const dir of dirs) {
    try {
      lsetxattr(dir, ACL_XATTR, encodeAcl(withGroupSearch(await currentAcl(dir), gid)));
    } catch (err) {
      throw new Error(`letting the user namespace's root pass through ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** Takes group `gid`'s entry off each directory that has one; a missing directory is skipped. */
export function revokeSearch(dirs: readonly string[], gid: number): Promise<void> {
  return serially(() => revokeNow(dirs, gid));
}

async function revokeNow(dirs: readonly string[], gid: number): Promise<void> {
  for (const dir of dirs) {
    let value: Buffer | undefined;
    try {
      value = lgetxattr(dir, ACL_XATTR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (value === undefined) continue;
    const entries = decodeAcl(value);
    if (!entries.some((e) => e.tag === TAG.group && e.id === gid)) continue;
    lsetxattr(dir, ACL_XATTR, encodeAcl(withoutGroup(entries, gid)));
  }
}

/**
 * When a range is freed: its group's entries come off the node's shared directories, those every
 * container's way passes (containers/, run/, run/tasks/) and the named volumes' (volumes/<stack>/<name>).
 * Per-container directories go with their containers.
 */
export async function revokeSearchUnder(dataRoot: string, gid: number): Promise<void> {
  const volumes = join(dataRoot, 'volumes');
  const stacks = (await unlessAbsent(readdir(volumes), [] as string[])).map((name) => join(volumes, name));
  const named: string[] = [];
  for (const stack of stacks) for (const name of await unlessAbsent(readdir(stack), [] as string[])) named.push(join(stack, name));
  const shared = [join(dataRoot, 'containers'), join(dataRoot, 'run'), join(dataRoot, 'run', 'tasks'), volumes, ...stacks, ...named];
  await revokeSearch(shared, gid);
}
