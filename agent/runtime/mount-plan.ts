// Translates OCI mount entries (type + string options) into the addon's concrete mount calls.

import fs from 'node:fs/promises';
import type { MountFlag, NativeMount } from './native.js';
import type { OciSpec } from './types.js';

type OciMount = NonNullable<OciSpec['mounts']>[number];

/** OCI option → flags it sets; options that only clear a default flag map to []. */
const FLAG_OPTIONS: Record<string, MountFlag[]> = {
  ro: ['rdonly'], rw: [], nosuid: ['nosuid'], suid: [], nodev: ['nodev'], dev: [],
  noexec: ['noexec'], exec: [], sync: ['synchronous'], async: [], dirsync: ['dirsync'],
  mand: ['mandlock'], nomand: [], atime: [], noatime: ['noatime'], diratime: [],
  nodiratime: ['nodiratime'], relatime: ['relatime'], norelatime: [], strictatime: ['strictatime'],
  nostrictatime: [], bind: ['bind'], rbind: ['bind', 'rec'],
};

/** Propagation options, applied to the mount after it is made (mount(2) cannot combine the two). */
const PROPAGATION: Record<string, MountFlag[]> = {
  private: ['private'], rprivate: ['private', 'rec'], shared: ['shared'], rshared: ['shared', 'rec'],
  slave: ['slave'], rslave: ['slave', 'rec'], unbindable: ['unbindable'], runbindable: ['unbindable', 'rec'],
};

const SUPPORTED_TYPES = new Set(['bind', 'proc', 'tmpfs', 'devpts', 'sysfs', 'mqueue', 'overlay']);

/** Builds the mount list for the addon; `field` prefixes error messages (e.g. "config.json mounts"). */
export async function planMounts(mounts: OciMount[], field: string): Promise<NativeMount[]> {
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
    let targetKind: NativeMount['targetKind'] = 'dir';
    if (isBind) {
      flags.add('bind');
      if (m.source === undefined || !m.source.startsWith('/')) throw new Error(`${where}: a bind mount needs an absolute source path`);
      const st = await fs.stat(m.source).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`${where}: bind source ${m.source}: ${err.code ?? err.message}`);
      });
      targetKind = st.isDirectory() ? 'dir' : 'file';
      if (data.length > 0) throw new Error(`${where}: unknown option(s) for a bind mount: ${data.join(', ')}`);
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
