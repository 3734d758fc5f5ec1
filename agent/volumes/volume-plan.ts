// Pure: what each of a service's mounts becomes on this node. Named volumes are directories under
// the node's volumes root (<volumesDir>/<stack or _>/<name>/_data), anonymous ones live in the
// container's bundle and go with it, binds are host paths, tmpfs mounts are made by the runtime.
import { join } from 'node:path';

import type { FileLookup } from '../../common/dispatcher/stack-files.js';
import type { Mount } from '../../common/resources/types.js';

export type MountAction =
  | {
      type: 'named';
      destination: string;
      name: string;
      volumeDir: string;
      dataDir: string;
      driverOpts?: Record<string, string>;
      copy: boolean;
      subpath?: string;
      readOnly: boolean;
    }
  | { type: 'anonymous'; destination: string; dataDir: string; copy: boolean; readOnly: boolean }
  | { type: 'bind'; destination: string; source: string; createHostPath: boolean; propagation?: string; readOnly: boolean }
  | { type: 'tmpfs'; destination: string; sizeBytes?: number; mode?: number; readOnly: boolean };

export interface VolumePlanContext {
  /** The task's stack: named volumes resolve in it, then in the default stack (external ones). */
  taskStack: string;
  volumesDir: string;
  /** Where this container's anonymous volumes live (removed with the container). */
  anonymousDir: string;
  /** The Volume objects the manager delivered to this node. */
  files?: FileLookup;
}

/** A relative path that stays inside its base; throws naming the field otherwise. */
function checkSubpath(subpath: string, field: string): string {
  const segments = subpath.split('/').filter((s) => s !== '' && s !== '.');
  if (subpath.startsWith('/') || segments.length === 0 || segments.includes('..')) {
    throw new Error(`${field}: subpath ${JSON.stringify(subpath)} must be a relative path inside the volume (no "..")`);
  }
  return segments.join('/');
}

export function planVolumeMounts(mounts: readonly Mount[], ctx: VolumePlanContext): MountAction[] {
  return mounts.map((m, index): MountAction => {
    const field = `mounts[${index}] (${m.target})`;
    const readOnly = m.readOnly === true;
    switch (m.type) {
      case 'volume': {
        if (m.source === undefined) {
          return { type: 'anonymous', destination: m.target, dataDir: join(ctx.anonymousDir, String(index), '_data'), copy: m.noCopy !== true, readOnly };
        }
        const volume = ctx.files?.resolve('Volume', ctx.taskStack, m.source);
        if (!volume) throw new Error(`${field}: volume "${m.source}" was not delivered to this node (does the Volume object exist?)`);
        const volumeDir = join(ctx.volumesDir, volume.stack || '_', volume.name);
        const driverOpts = volume.volume?.driverOpts;
        return {
          type: 'named',
          destination: m.target,
          name: volume.stack ? `${volume.stack}/${volume.name}` : volume.name,
          volumeDir,
          dataDir: join(volumeDir, '_data'),
          ...(driverOpts && Object.keys(driverOpts).length > 0 ? { driverOpts } : {}),
          copy: m.noCopy !== true,
          ...(m.subpath !== undefined ? { subpath: checkSubpath(m.subpath, field) } : {}),
          readOnly,
        };
      }
      case 'bind':
        if (m.source === undefined || !m.source.startsWith('/')) throw new Error(`${field}: a bind mount needs an absolute host path`);
        return {
          type: 'bind',
          destination: m.target,
          source: m.source,
          createHostPath: m.createHostPath === true,
          ...(m.propagation ? { propagation: m.propagation } : {}),
          readOnly,
        };
      case 'tmpfs':
        return {
          type: 'tmpfs',
          destination: m.target,
          ...(m.sizeBytes !== undefined ? { sizeBytes: m.sizeBytes } : {}),
          ...(m.mode !== undefined ? { mode: m.mode } : {}),
          readOnly,
        };
    }
  });
}

/** Volume driver options (type, device, o) as a mount(2) call; throws naming what is missing. */
export function driverMount(name: string, opts: Record<string, string>): { source: string; fstype: string; bind: boolean; data: string } {
  const unknown = Object.keys(opts).filter((k) => k !== 'type' && k !== 'device' && k !== 'o');
  if (unknown.length > 0) throw new Error(`volume ${name}: driver option(s) ${unknown.join(', ')} are not known (type, device, o)`);
  const options = (opts['o'] ?? '').split(',').filter((o) => o !== '');
  const bind = options.includes('bind') || options.includes('rbind');
  const fstype = opts['type'] ?? '';
  if (!bind && fstype === '') throw new Error(`volume ${name}: driver_opts needs a type (e.g. tmpfs) or o: bind`);
  const device = opts['device'] ?? (bind ? '' : fstype);
  if (bind && !device.startsWith('/')) throw new Error(`volume ${name}: a bind volume needs an absolute device path`);
  return { source: device, fstype: bind ? '' : fstype, bind, data: options.filter((o) => o !== 'bind' && o !== 'rbind').join(',') };
}
