// Translates OCI mount entries (type + string options) into the addon's concrete mount calls.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { MountFlag, NativeMount } from './native.js';
import type { OciSpec } from './types.js';

type OciMount = NonNullable<OciSpec['mounts']>[number];

/** OCI option → flags it sets; options that only clear a default flag map to []. */
const FLAG_OPTIONS: Record<string, MountFlag[]> = {
  ro: ['rdonly'],
  rw: [],
  nosuid: ['nosuid'],
  suid: [],
  nodev: ['nodev'],
  dev: [],
  noexec: ['noexec'],
  exec: [],
  sync: ['synchronous'],
  async: [],
  dirsync: ['dirsync'],
  mand: ['mandlock'],
  nomand: [],
  atime: [],
  noatime: ['noatime'],
  diratime: [],
  nodiratime: ['nodiratime'],
  relatime: ['relatime'],
  norelatime: [],
  strictatime: ['strictatime'],
  nostrictatime: [],
  bind: ['bind'],
  rbind: ['bind', 'rec'],
};

/** Propagation options, applied to the mount after it is made (mount(2) cannot combine the two). */
const PROPAGATION: Record<string, MountFlag[]> = {
  private: ['private'],
  rprivate: ['private', 'rec'],
  shared: ['shared'],
  rshared: ['shared', 'rec'],
  slave: ['slave'],
  rslave: ['slave', 'rec'],
  unbindable: ['unbindable'],
  runbindable: ['unbindable', 'rec'],
};

const SUPPORTED_TYPES = new Set(['bind', 'proc', 'tmpfs', 'devpts', 'sysfs', 'mqueue', 'overlay', 'cgroup']);

/** What a `cgroup` mount shows: the container's own cgroups, which create() made before the plan. */
export interface CgroupMountContext {
  /** The driver's layout; hybrid hosts are driven (and mounted) as v1. */
  version: 'v1' | 'v2';
  /** Where the host's hierarchies are mounted, e.g. /sys/fs/cgroup. */
  mountRoot: string;
  /** The container's cgroup directories on the host (CgroupRecord.dirs): one per v1 hierarchy, or the v2 one. */
  dirs: readonly string[];
  /** The container has a cgroup namespace (its own or one joined by path). */
  namespace: boolean;
}

/** Builds the mount list for the addon; `field` prefixes error messages (e.g. "config.json mounts"). */
export async function planMounts(mounts: OciMount[], field: string, cgroup?: CgroupMountContext): Promise<NativeMount[]> {
  const planned: NativeMount[] = [];
  for (const [index, m] of mounts.entries()) {
    const where = `${field}[${index}] (${m.destination})`;
    const options = m.options ?? [];
    const flags = new Set<MountFlag>();
    const data: string[] = [];
    let propagation: MountFlag[] = [];
    for (const option of options) {
      const mapped = FLAG_OPTIONS[option];
      const prop = Object.hasOwn(PROPAGATION, option) ? PROPAGATION[option] : undefined;
      if (mapped !== undefined && Object.hasOwn(FLAG_OPTIONS, option)) for (const f of mapped) flags.add(f);
      else if (prop !== undefined) {
        if (propagation.length > 0) throw new Error(`${where}: more than one propagation option`);
        propagation = prop;
      } else data.push(option);
    }
    const isBind = m.type === 'bind' || flags.has('bind');
    const type = isBind ? 'bind' : (m.type ?? '');
    if (!SUPPORTED_TYPES.has(type)) {
      throw new Error(`${where}: mount type '${m.type ?? '(none)'}' is not supported (supported: ${[...SUPPORTED_TYPES].join(', ')})`);
    }
    if (type === 'cgroup') {
      if (data.length > 0) throw new Error(`${where}: unknown option(s) for a cgroup mount: ${data.join(', ')}`);
      if (cgroup === undefined) throw new Error(`${where}: a cgroup mount needs the container's cgroup, which this caller did not give`);
      planned.push(...planCgroupMount(m.destination, [...flags], propagation, cgroup, where));
      continue;
    }
    let targetKind: NativeMount['targetKind'] = 'dir';
    if (isBind) {
      flags.add('bind');
      if (m.source === undefined || !m.source.startsWith('/')) throw new Error(`${where}: a bind mount needs an absolute source path`);
      const st = await fs.stat(m.source).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`${where}: bind source ${m.source}: ${err.code ?? err.message}`);
      });
      targetKind = st.isDirectory() ? 'dir' : 'file';
      // File-system parameters (key=value, e.g. a tmpfs's mode=755 shared by a spec's mount
      // entries) do not apply to a bind: the kernel ignores mount(2)'s data with MS_BIND, and so
      // do runc and crun. A bare word that is no mount flag is still a mistake.
      const unknown = data.filter((option) => !option.includes('='));
      if (unknown.length > 0) throw new Error(`${where}: unknown option(s) for a bind mount: ${unknown.join(', ')}`);
      data.length = 0;
    }
    const readonly = flags.has('rdonly');
    planned.push({
      source: m.source ?? type,
      destination: m.destination,
      fstype: isBind ? '' : type,
      flags: [...flags],
      data: data.join(','),
      remountReadonly: isBind && readonly,
      targetKind,
      propagation,
    });
  }
  return planned;
}

/**
 * The mounts that show a container its own cgroups at `destination` (runc's behaviour for a
 * `cgroup` mount, which runc's and Docker's default specs ask for at /sys/fs/cgroup).
 *
 * v1 (and hybrid): a tmpfs holding one bind per hierarchy of the container's own cgroup directory,
 * named like the host's mount (memory, "cpu,cpuacct"), with a symlink per co-mounted controller
 * (cpu -> cpu,cpuacct). Binds look the same with or without a cgroup namespace (whose root is that
 * same directory). Hierarchies the container is not in (e.g. freezer, name=systemd; hybrid's
 * unified) are not shown: binding them would show the host's cgroups.
 * v2: with a cgroup namespace, a cgroup2 mount (its root is the namespace's root); without one, a
 * bind of the container's cgroup directory, so it never sees the host's tree.
 *
 * `ro` makes every bind and the tmpfs itself read-only (the tmpfs after its binds and links are in).
 */
export function planCgroupMount(
  destination: string,
  flags: readonly MountFlag[],
  propagation: MountFlag[],
  cgroup: CgroupMountContext,
  where: string,
): NativeMount[] {
  const readonly = flags.includes('rdonly');
  const bindOf = (source: string, dest: string): NativeMount => ({
    source,
    destination: dest,
    fstype: '',
    flags: [...new Set<MountFlag>([...flags, 'bind', 'rec'])],
    data: '',
    remountReadonly: readonly,
    targetKind: 'dir',
    propagation,
  });
  if (cgroup.version === 'v2') {
    const dir = cgroup.dirs[0];
    if (cgroup.namespace) {
      return [{ source: 'cgroup', destination, fstype: 'cgroup2', flags: [...flags], data: '', remountReadonly: false, targetKind: 'dir', propagation }];
    }
    if (dir === undefined) throw new Error(`${where}: the container has no cgroup v2 directory to show`);
    return [bindOf(dir, destination)];
  }
  const hierarchies = cgroup.dirs.map((dir) => ({ name: hierarchyName(cgroup.mountRoot, dir, where), dir }));
  const withoutRdonly = flags.filter((f) => f !== 'rdonly');
  const planned: NativeMount[] = [
    { source: 'tmpfs', destination, fstype: 'tmpfs', flags: withoutRdonly, data: 'mode=755', remountReadonly: false, targetKind: 'dir', propagation },
  ];
  const names = new Set(hierarchies.map((h) => h.name));
  for (const { name, dir } of [...hierarchies].sort((a, b) => a.name.localeCompare(b.name))) {
    planned.push(bindOf(dir, path.posix.join(destination, name)));
  }
  for (const name of [...names].sort()) {
    for (const controller of name.split(',')) {
      if (controller === name || controller === '' || names.has(controller)) continue;
      planned.push({
        source: '',
        destination: path.posix.join(destination, controller),
        fstype: '',
        flags: [],
        data: '',
        remountReadonly: false,
        targetKind: 'dir',
        symlinkTarget: name,
      });
    }
  }
  if (readonly) {
    // A remount of this mount point only (MS_BIND): the tmpfs's own options stay as they are.
    planned.push({
      source: '',
      destination,
      fstype: '',
      flags: [...new Set<MountFlag>([...withoutRdonly, 'remount', 'bind', 'rdonly'])],
      data: '',
      remountReadonly: false,
      targetKind: 'dir',
    });
  }
  return planned;
}

/** "memory" for <mountRoot>/memory/tessera/ctr: the hierarchy's directory under the mount root. */
function hierarchyName(mountRoot: string, dir: string, where: string): string {
  const relative = path.posix.relative(mountRoot, dir);
  const name = relative.split('/')[0];
  if (relative.startsWith('..') || path.posix.isAbsolute(relative) || name === undefined || name === '' || relative === name) {
    throw new Error(`${where}: the container's cgroup ${dir} is not inside a hierarchy under ${mountRoot}`);
  }
  return name;
}
