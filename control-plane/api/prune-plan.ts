// `apply --prune`: the objects of the named stacks that the request no longer lists are deleted in
// the same transaction as the apply, so an apply with prune is all or nothing too. Only kinds users
// own are pruned (never Tasks or Nodes: the controllers own those and clean up after a deleted
// service). An object a remaining service still uses (a secret, config, volume or network) is not
// deleted from under it: that is a problem and nothing is applied.
import type { ObjectRef } from '../../proto/gen/tessera/api/v1/ObjectRef.js';
import type { Service, StackKind, StackObject } from '../../common/resources/types.js';
import { kindPrefix, objectKey } from '../store/keys.js';
import type { Compare, KeyValue, Store, TxnOp } from '../store/store.js';
import type { StackFileKind } from '../../common/resources/file-references.js';
import { DNS_LABEL } from '../../common/resources/names.js';
import { redactObject, servicesUsing } from './stack-objects.js';

export const PRUNABLE_KINDS: readonly StackKind[] = ['Service', 'Network', 'Secret', 'Config', 'Volume'];

export interface PrunedObject {
  ref: ObjectRef;
  action: 'pruned';
  object: StackObject;
}

/** Problems with the requested stacks themselves (the API is the last check). */
export function pruneStackProblems(stacks: readonly string[]): string[] {
  return stacks
    .filter((s) => s !== '' && !DNS_LABEL.test(s))
    .map((s) => `prune: ${JSON.stringify(s)} is not a stack name (a DNS label, or "" for the default stack)`);
}

function refKey(kind: string, stack: string, name: string): string {
  return `${kind}/${stack}/${name}`;
}

/**
 * Pure: which stored objects to prune, and why some may not be. `stored` is every object of the
 * prunable kinds in the stacks being pruned; `services` every stored service of the cluster;
 * `kept` the request's objects; `incoming` the request's services (their new specs count).
 */
export function choosePruned(
  stored: ReadonlyArray<{ object: StackObject; kv: KeyValue }>,
  services: readonly Service[],
  kept: ReadonlySet<string>,
  incoming: readonly Service[],
): { pruned: Array<{ object: StackObject; kv: KeyValue }>; problems: string[] } {
  const pruned = stored.filter(({ object }) => !kept.has(refKey(object.kind, object.metadata.stack ?? '', object.metadata.name)));
  const gone = new Set(pruned.filter((p) => p.object.kind === 'Service').map((p) => refKey('Service', p.object.metadata.stack ?? '', p.object.metadata.name)));
  const replaced = new Map(incoming.map((s) => [refKey('Service', s.metadata.stack ?? '', s.metadata.name), s]));
  const remaining = [
    ...services.filter((s) => {
      const key = refKey('Service', s.metadata.stack ?? '', s.metadata.name);
      return !gone.has(key) && !replaced.has(key);
    }),
    ...incoming,
  ];
  const problems: string[] = [];
  for (const { object } of pruned) {
    const stack = object.metadata.stack ?? '';
    const what = `${object.kind} ${stack ? `${stack}/` : ''}${object.metadata.name}`;
    let users: string[] = [];
    if (object.kind === 'Secret' || object.kind === 'Config' || object.kind === 'Volume') {
      users = servicesUsing(object.kind as StackFileKind, stack, object.metadata.name, remaining);
    } else if (object.kind === 'Network') {
      users = remaining
        .filter((s) => (s.spec.networks ?? []).some((n) => n.name === object.metadata.name) && ((s.metadata.stack ?? '') === stack || stack === ''))
        .map((s) => `${s.metadata.stack || '_'}/${s.metadata.name}`);
    }
    if (users.length > 0) problems.push(`prune: ${what} is not in the files but is still used by service(s) ${users.join(', ')}`);
  }
  return { pruned, problems };
}

/** Adds the deletes (each guarded by the object's revision) to a pending apply transaction. */
export async function planPrune(
  store: Store,
  stacks: readonly string[],
  kept: readonly ObjectRef[],
  incoming: readonly Service[],
  compare: Compare[],
  success: TxnOp[],
): Promise<{ planned: PrunedObject[]; problems: string[] }> {
  if (stacks.length === 0) return { planned: [], problems: [] };
  const problems = pruneStackProblems(stacks);
  if (problems.length > 0) return { planned: [], problems };
  const stored: Array<{ object: StackObject; kv: KeyValue }> = [];
  for (const stack of [...new Set(stacks)].sort()) {
    for (const kind of PRUNABLE_KINDS) {
      const { kvs } = await store.range(kindPrefix(kind, stack));
      for (const kv of kvs) stored.push({ object: JSON.parse(kv.value) as StackObject, kv });
    }
  }
  const services = (await store.range(kindPrefix('Service'))).kvs.map((kv) => JSON.parse(kv.value) as Service);
  const keptKeys = new Set(kept.map((r) => refKey(r.kind ?? '', r.stack ?? '', r.name ?? '')));
  const chosen = choosePruned(stored, services, keptKeys, incoming);
  if (chosen.problems.length > 0) return { planned: [], problems: chosen.problems };
  const planned: PrunedObject[] = [];
  for (const { object, kv } of chosen.pruned) {
    const stack = object.metadata.stack ?? '';
    const key = objectKey(object.kind, stack, object.metadata.name);
    compare.push({ key, target: 'modRevision', op: '=', value: kv.modRevision });
    success.push({ type: 'delete', key });
    const shown = redactObject(object);
    shown.metadata.resourceVersion = String(kv.modRevision);
    planned.push({ ref: { kind: object.kind, stack, name: object.metadata.name }, action: 'pruned', object: shown });
  }
  return { planned, problems: [] };
}
