// Network objects in `apply`: validated with the stack-object schema and written in the same
// all-or-nothing transaction as the services of the request. Kept apart from server.ts so the
// Service path stays untouched.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';

import type { ObjectRef } from '../../proto/gen/tessera/api/v1/ObjectRef.js';
import { formatIssuePath, validateStackObject } from '../../common/resources/schema.js';
import type { Network } from '../../common/resources/types.js';
import { objectKey } from '../store/keys.js';
import type { Compare, Store, TxnOp } from '../store/store.js';
import type { ApplyAction } from './apply-plan.js';

export function isNetworkManifest(parsed: unknown): boolean {
  return typeof parsed === 'object' && parsed !== null && (parsed as { kind?: unknown }).kind === 'Network';
}

/** Validates one Network manifest; problems are phrased like the Service ones ("object N: path: message"). */
export function validateNetworkManifest(parsed: unknown, index: number): { ok: true; object: Network } | { ok: false; problems: string[] } {
  const result = validateStackObject(parsed);
  if (!result.ok) return { ok: false, problems: result.issues.map((i) => `object ${index + 1}: ${formatIssuePath(i.path)}: ${i.message}`) };
  return { ok: true, object: result.object as Network };
}

/** Adds the compare/put of each network to a pending apply transaction and says what will happen to it. */
export async function planNetworks(
  store: Store,
  networks: readonly Network[],
  compare: Compare[],
  success: TxnOp[],
  now: Date = new Date(),
): Promise<Array<{ ref: ObjectRef; action: ApplyAction; object: Network }>> {
  const planned: Array<{ ref: ObjectRef; action: ApplyAction; object: Network }> = [];
  for (const network of networks) {
    const stack = network.metadata.stack ?? '';
    const key = objectKey('Network', stack, network.metadata.name);
    const kv = await store.get(key);
    const existing = kv ? (JSON.parse(kv.value) as Network) : undefined;
    compare.push({ key, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 });
    let action: ApplyAction;
    let object: Network;
    if (!existing) {
      action = 'created';
      object = { ...network, metadata: { ...network.metadata, stack, uid: randomUUID(), generation: 1, createdAt: now.toISOString() } };
    } else if (isDeepStrictEqual(existing.spec, network.spec) && isDeepStrictEqual(existing.metadata.labels ?? {}, network.metadata.labels ?? {})) {
      action = 'unchanged';
      object = { ...existing, metadata: { ...existing.metadata, resourceVersion: String(kv!.modRevision) } };
    } else {
      action = 'configured';
      object = { ...existing, spec: network.spec, metadata: { ...existing.metadata, generation: (existing.metadata.generation ?? 1) + 1 } };
      if (network.metadata.labels) object.metadata.labels = network.metadata.labels;
      else delete object.metadata.labels;
    }
    if (action !== 'unchanged') {
      const stored = structuredClone(object);
      delete stored.metadata.resourceVersion;
      success.push({ type: 'put', key, value: JSON.stringify(stored) });
    }
    planned.push({ ref: { kind: 'Network', stack, name: network.metadata.name }, action, object });
  }
  return planned;
}
