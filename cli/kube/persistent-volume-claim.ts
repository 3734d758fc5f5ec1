// v1 PersistentVolumeClaim → a Volume (the local driver: a directory on the node that runs the task).
import type { IssuePath } from '../../common/resources/schema.js';
import { API_VERSION, type Volume, type VolumeSpec } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { readMap, readString, readStringList, type YamlMap } from './read.js';
import type { KubeMeta } from './types.js';

/** The spec of a claim (also a StatefulSet's volumeClaimTemplates[i].spec). */
export function translateClaimSpec(ctx: DocContext, value: unknown, path: IssuePath): VolumeSpec {
  const spec = readMap(ctx, value, path) ?? {};
  checkFields(ctx, spec, path, {
    accessModes: true,
    resources: true,
    volumeMode: true,
    storageClassName: 'Tessera has one volume driver (local); there are no storage classes',
    selector: 'volumes are not bound to pre-made persistent volumes',
    volumeName: 'volumes are not bound to pre-made persistent volumes',
    dataSource: "volumes start empty (or with the image's content)",
    dataSourceRef: "volumes start empty (or with the image's content)",
    volumeAttributesClassName: 'Tessera has one volume driver (local)',
  });
  readStringList(ctx, spec['accessModes'], [...path, 'accessModes'])?.forEach((mode, i) => {
    if (mode !== 'ReadWriteOnce' && mode !== 'ReadWriteOncePod') {
      ctx.refuse([...path, 'accessModes', i], `a local volume lives on one node: only ReadWriteOnce, got ${JSON.stringify(mode)}`);
    }
  });
  const volumeMode = readString(ctx, spec['volumeMode'], [...path, 'volumeMode']);
  if (volumeMode !== undefined && volumeMode !== 'Filesystem') ctx.refuse([...path, 'volumeMode'], 'only Filesystem volumes');
  const resources = readMap(ctx, spec['resources'], [...path, 'resources']);
  if (resources) {
    checkFields(ctx, resources, [...path, 'resources'], {
      requests: true,
      limits: 'local volumes have no size limit',
    });
    const requests = readMap(ctx, resources['requests'], [...path, 'resources', 'requests']);
    if (requests)
      checkFields(ctx, requests, [...path, 'resources', 'requests'], { storage: "local volumes have no size: the space is whatever the node's disk has" });
  }
  return { driver: 'local' };
}

export function translatePersistentVolumeClaim(ctx: DocContext, doc: YamlMap, meta: KubeMeta): Volume {
  return {
    apiVersion: API_VERSION,
    kind: 'Volume',
    metadata: { name: meta.name, ...(meta.stack ? { stack: meta.stack } : {}), ...(meta.labels ? { labels: meta.labels } : {}) },
    spec: translateClaimSpec(ctx, doc['spec'], ['spec']),
  };
}
