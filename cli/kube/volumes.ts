// Pod volumes and the container's volumeMounts → mounts, secrets and configs.
//   configMap / secret   → one Config / Secret reference per key, at mountPath/key (or mountPath with subPath)
//   emptyDir             → an anonymous volume; medium: Memory → tmpfs
//   hostPath             → a bind mount
//   persistentVolumeClaim → the Volume the claim translates to (a Volume of the stack)
//   a StatefulSet's volumeClaimTemplates → a Volume per ordinal (see stateful-set.ts)
import { posix } from 'node:path';
import type { IssuePath } from '../../common/resources/schema.js';
import type { FileReference, Mount } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { parseKubeQuantity } from './quantity.js';
import { readBool, readInt, readList, readMap, readString } from './read.js';
import type { KeyedData, KubeLookup } from './types.js';

type PodVolume =
  | { type: 'keyed'; what: 'ConfigMap' | 'Secret'; data: KeyedData; items?: Array<{ key: string; path: string; mode?: number }>; defaultMode?: number }
  | { type: 'mount'; mount: Omit<Mount, 'target'> };

const REFUSED_SOURCES = 'only configMap, secret, emptyDir, hostPath and persistentVolumeClaim volumes exist in Tessera';

function keyedItems(ctx: DocContext, value: unknown, path: IssuePath): Array<{ key: string; path: string; mode?: number }> | undefined {
  const list = readList(ctx, value, path);
  if (!list) return undefined;
  const items: Array<{ key: string; path: string; mode?: number }> = [];
  list.forEach((entry, i) => {
    const item = readMap(ctx, entry, [...path, i]);
    if (!item) return;
    checkFields(ctx, item, [...path, i], { key: true, path: true, mode: true });
    const key = readString(ctx, item['key'], [...path, i, 'key']);
    const to = readString(ctx, item['path'], [...path, i, 'path']);
    const mode = readInt(ctx, item['mode'], [...path, i, 'mode']);
    if (key !== undefined && to !== undefined) items.push({ key, path: to, ...(mode !== undefined ? { mode } : {}) });
  });
  return items;
}

function podVolume(ctx: DocContext, volume: Readonly<Record<string, unknown>>, path: IssuePath, stack: string, lookup: KubeLookup): PodVolume | undefined {
  const sources = Object.keys(volume).filter((k) => k !== 'name');
  checkFields(ctx, volume, path, { name: true, configMap: true, secret: true, emptyDir: true, hostPath: true, persistentVolumeClaim: true });
  const source = sources.find((k) => ['configMap', 'secret', 'emptyDir', 'hostPath', 'persistentVolumeClaim'].includes(k));
  if (source === undefined) {
    if (sources.length === 0) ctx.invalid(path, `a volume needs a source (${REFUSED_SOURCES})`);
    return undefined;
  }
  const at: IssuePath = [...path, source];
  const spec = readMap(ctx, volume[source], at) ?? {};
  switch (source) {
    case 'configMap':
    case 'secret': {
      const what = source === 'configMap' ? 'ConfigMap' : 'Secret';
      const nameKey = source === 'configMap' ? 'name' : 'secretName';
      checkFields(ctx, spec, at, { [nameKey]: true, items: true, defaultMode: true, optional: true });
      const name = readString(ctx, spec[nameKey], [...at, nameKey]);
      if (name === undefined) {
        ctx.invalid([...at, nameKey], 'required field is missing');
        return undefined;
      }
      const data = what === 'ConfigMap' ? lookup.configMap(stack, name) : lookup.secret(stack, name);
      if (!data) {
        ctx.refuse([...at, nameKey], `${what} ${JSON.stringify(name)} is not in the files applied together: its keys decide which files are mounted`);
        return undefined;
      }
      const items = keyedItems(ctx, spec['items'], [...at, 'items']);
      const defaultMode = readInt(ctx, spec['defaultMode'], [...at, 'defaultMode']);
      for (const [i, item] of (items ?? []).entries()) {
        if (!data.objectNames.has(item.key)) ctx.invalid([...at, 'items', i, 'key'], `${what} ${JSON.stringify(name)} has no key ${JSON.stringify(item.key)}`);
      }
      return { type: 'keyed', what, data, ...(items ? { items } : {}), ...(defaultMode !== undefined ? { defaultMode } : {}) };
    }
    case 'emptyDir': {
      checkFields(ctx, spec, at, { medium: true, sizeLimit: true });
      const medium = readString(ctx, spec['medium'], [...at, 'medium']) ?? '';
      const size = spec['sizeLimit'] === undefined ? undefined : parseKubeQuantity(spec['sizeLimit'] as string | number);
      if (medium === 'Memory') return { type: 'mount', mount: { type: 'tmpfs', ...(size !== undefined ? { sizeBytes: Math.ceil(size) } : {}) } };
      if (medium !== '') ctx.refuse([...at, 'medium'], `only "" (disk) and Memory, got ${JSON.stringify(medium)}`);
      if (spec['sizeLimit'] !== undefined) ctx.refuse([...at, 'sizeLimit'], 'volumes on disk have no size limit');
      return { type: 'mount', mount: { type: 'volume' } };
    }
    case 'hostPath': {
      checkFields(ctx, spec, at, { path: true, type: true });
      const hostPath = readString(ctx, spec['path'], [...at, 'path']);
      if (hostPath === undefined) {
        ctx.invalid([...at, 'path'], 'required field is missing');
        return undefined;
      }
      const type = readString(ctx, spec['type'], [...at, 'type']) ?? '';
      if (type === 'FileOrCreate') ctx.refuse([...at, 'type'], 'a missing host path is created as a directory, never as a file');
      return { type: 'mount', mount: { type: 'bind', source: hostPath, ...(type === 'DirectoryOrCreate' ? { createHostPath: true } : {}) } };
    }
    default: {
      checkFields(ctx, spec, at, { claimName: true, readOnly: true });
      const claim = readString(ctx, spec['claimName'], [...at, 'claimName']);
      if (claim === undefined) {
        ctx.invalid([...at, 'claimName'], 'required field is missing');
        return undefined;
      }
      const readOnly = readBool(ctx, spec['readOnly'], [...at, 'readOnly']);
      return { type: 'mount', mount: { type: 'volume', source: claim, ...(readOnly ? { readOnly } : {}) } };
    }
  }
}

export interface VolumeTranslation {
  mounts: Mount[];
  secrets: FileReference[];
  configs: FileReference[];
  claimMounts: Array<{ claim: string; mount: Mount }>;
}

export function translateVolumes(
  ctx: DocContext,
  podSpec: Readonly<Record<string, unknown>>,
  podPath: IssuePath,
  container: Readonly<Record<string, unknown>>,
  containerPath: IssuePath,
  stack: string,
  lookup: KubeLookup,
  claimTemplates: ReadonlySet<string>,
): VolumeTranslation {
  const out: VolumeTranslation = { mounts: [], secrets: [], configs: [], claimMounts: [] };
  const volumes = new Map<string, PodVolume | undefined>();
  readList(ctx, podSpec['volumes'], [...podPath, 'volumes'])?.forEach((entry, i) => {
    const volume = readMap(ctx, entry, [...podPath, 'volumes', i]);
    if (!volume) return;
    const name = readString(ctx, volume['name'], [...podPath, 'volumes', i, 'name']);
    if (name === undefined) {
      ctx.invalid([...podPath, 'volumes', i, 'name'], 'required field is missing');
      return;
    }
    volumes.set(name, podVolume(ctx, volume, [...podPath, 'volumes', i], stack, lookup));
  });
  readList(ctx, container['volumeMounts'], [...containerPath, 'volumeMounts'])?.forEach((entry, i) => {
    const at: IssuePath = [...containerPath, 'volumeMounts', i];
    const vm = readMap(ctx, entry, at);
    if (!vm) return;
    checkFields(ctx, vm, at, {
      name: true,
      mountPath: true,
      readOnly: true,
      subPath: true,
      mountPropagation: true,
      subPathExpr: 'paths are not expanded from environment variables',
      recursiveReadOnly: 'read-only mounts are made read-only at the top only',
    });
    const name = readString(ctx, vm['name'], [...at, 'name']);
    const target = readString(ctx, vm['mountPath'], [...at, 'mountPath']);
    if (name === undefined || target === undefined) {
      ctx.invalid(at, 'expected name and mountPath');
      return;
    }
    const readOnly = readBool(ctx, vm['readOnly'], [...at, 'readOnly']) === true;
    const subPath = readString(ctx, vm['subPath'], [...at, 'subPath']);
    const propagation = readString(ctx, vm['mountPropagation'], [...at, 'mountPropagation']);
    if (propagation !== undefined && propagation !== 'None') ctx.refuse([...at, 'mountPropagation'], 'mounts are private (None)');
    if (claimTemplates.has(name)) {
      out.claimMounts.push({ claim: name, mount: { type: 'volume', target, ...(readOnly ? { readOnly } : {}), ...(subPath ? { subpath: subPath } : {}) } });
      return;
    }
    if (!volumes.has(name)) {
      ctx.invalid([...at, 'name'], `no volume named ${JSON.stringify(name)} in the pod's volumes`);
      return;
    }
    const volume = volumes.get(name);
    if (!volume) return; // refused or invalid above
    if (volume.type === 'mount') {
      const mount: Mount = { ...volume.mount, target };
      if (readOnly) mount.readOnly = true;
      if (subPath !== undefined) {
        if (mount.type === 'volume') mount.subpath = subPath;
        else ctx.refuse([...at, 'subPath'], `subPath applies to persistent volumes only, not to ${mount.type} mounts`);
      }
      out.mounts.push(mount);
      return;
    }
    const into = volume.what === 'ConfigMap' ? out.configs : out.secrets;
    const keys: Array<{ key: string; path: string; mode?: number }> = volume.items ?? [...volume.data.objectNames.keys()].map((key) => ({ key, path: key }));
    for (const item of keys) {
      const source = volume.data.objectNames.get(item.key);
      if (source === undefined) continue;
      if (subPath !== undefined && item.path !== subPath) continue;
      const mode = item.mode ?? volume.defaultMode;
      into.push({ source, target: subPath !== undefined ? target : posix.join(target, item.path), ...(mode !== undefined ? { mode } : {}) });
    }
    if (subPath !== undefined && !keys.some((k) => k.path === subPath)) {
      ctx.invalid([...at, 'subPath'], `${volume.what} volume ${JSON.stringify(name)} has no file ${JSON.stringify(subPath)}`);
    }
  });
  return out;
}
