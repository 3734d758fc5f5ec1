// Pure decision of what `apply` does to one object: create it, change it, or leave it alone.
// Fields the server owns (uid, creation time, generation, status) are kept from the stored object.
import { isDeepStrictEqual } from 'node:util';

import type { Service } from '../../common/resources/types.js';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export function planApply(existing: Service | undefined, incoming: Service, now: Date, newUid: () => string): { action: ApplyAction; object: Service } {
  if (!existing) {
    const object: Service = {
      ...incoming,
      metadata: {
        ...incoming.metadata,
        stack: incoming.metadata.stack ?? '',
        uid: newUid(),
        generation: 1,
        createdAt: now.toISOString(),
      },
    };
    delete object.metadata.resourceVersion;
    delete object.status;
    return { action: 'created', object };
  }
  const sameSpec = isDeepStrictEqual(existing.spec, incoming.spec);
  const sameLabels = isDeepStrictEqual(existing.metadata.labels ?? {}, incoming.metadata.labels ?? {});
  if (sameSpec && sameLabels) return { action: 'unchanged', object: existing };
  const object: Service = {
    ...existing,
    metadata: {
      ...existing.metadata,
      ...(incoming.metadata.labels ? { labels: incoming.metadata.labels } : {}),
      generation: (existing.metadata.generation ?? 1) + (sameSpec ? 0 : 1),
    },
    spec: incoming.spec,
  };
  if (!incoming.metadata.labels) delete object.metadata.labels;
  return { action: 'configured', object };
}
