// Secret, Config and Volume objects in `apply`: validated with the stack-object schema, checked
// against the services that refer to them, and written in the same all-or-nothing transaction as
// the rest of the request. Kept apart from server.ts like network-objects.ts.
//
// Rules (Swarm's): secrets and configs are immutable once created — new data needs a new name —
// and so are a volume's driver options; only labels may change. A service may refer only to
// objects of its own stack or, for external ones, of the default stack "".
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';

import type { ObjectRef } from '../../proto/gen/tessera/api/v1/ObjectRef.js';
import { formatIssuePath, validateStackObject } from '../../common/resources/schema.js';
import { decodedSize, MAX_FILE_OBJECT_BYTES } from '../../common/resources/limits.js';
import { referenceStacks, STACK_FILE_KINDS, type StackFileKind, type StackFileObject } from '../../common/resources/file-references.js';
import type { Secret, Service } from '../../common/resources/types.js';
import { kindPrefix, objectKey } from '../store/keys.js';
import type { Compare, Store, TxnOp } from '../store/store.js';
import type { ApplyAction } from './apply-plan.js';

// Swarm's limit for secrets and configs (500 KiB of decoded data) is checked by the schema, so the
// CLI refuses such an object before sending it too.
export { decodedSize, MAX_FILE_OBJECT_BYTES };
/** What `get` shows instead of a secret's data. */
export const REDACTED = '<redacted>';

export function isStackFileManifest(parsed: unknown): boolean {
  const kind = typeof parsed === 'object' && parsed !== null ? (parsed as { kind?: unknown }).kind : undefined;
  return (STACK_FILE_KINDS as readonly unknown[]).includes(kind);
}

/** Validates one Secret/Config/Volume manifest; problems read "object N: path: message". */
export function validateStackFileManifest(parsed: unknown, index: number): { ok: true; object: StackFileObject } | { ok: false; problems: string[] } {
  const result = validateStackObject(parsed);
  if (!result.ok) return { ok: false, problems: result.issues.map((i) => `object ${index + 1}: ${formatIssuePath(i.path)}: ${i.message}`) };
  return { ok: true, object: result.object as StackFileObject };
}

/** Every Secret/Config/Volume a service refers to, by kind and name (anonymous volumes have none). */
export function referencesOf(spec: Service['spec']): Array<{ kind: StackFileKind; name: string; field: string }> {
  const refs: Array<{ kind: StackFileKind; name: string; field: string }> = [];
  (spec.secrets ?? []).forEach((s, i) => refs.push({ kind: 'Secret', name: s.source, field: `spec.secrets.${i}.source` }));
  (spec.configs ?? []).forEach((c, i) => refs.push({ kind: 'Config', name: c.source, field: `spec.configs.${i}.source` }));
  (spec.mounts ?? []).forEach((m, i) => {
    if (m.type === 'volume' && m.source !== undefined) refs.push({ kind: 'Volume', name: m.source, field: `spec.mounts.${i}.source` });
  });
  return refs;
}

export type ExistsFn = (kind: StackFileKind, stack: string, name: string) => boolean;

/** Pure: a problem for every reference that resolves to nothing, naming the service, the field and the object. */
export function missingReferences(services: readonly Service[], exists: ExistsFn): string[] {
  const problems: string[] = [];
  for (const service of services) {
    const stack = service.metadata.stack ?? '';
    for (const ref of referencesOf(service.spec)) {
      if (referenceStacks(stack).some((s) => exists(ref.kind, s, ref.name))) continue;
      problems.push(
        `Service ${service.metadata.name}: ${ref.field}: ${ref.kind} "${ref.name}" does not exist in stack "${stack || '_'}"` +
          `${stack ? ' (nor as an external object in the default stack)' : ''}; apply it with the service or create it first`,
      );
    }
  }
  return problems;
}

/** Pure: a problem for every container path that two mounts, secrets or configs of one service claim. */
export function conflictingTargets(services: readonly Service[]): string[] {
  const problems: string[] = [];
  for (const service of services) {
    const claimed = new Map<string, string>();
    const claim = (path: string, field: string) => {
      const normal = `/${path
        .split('/')
        .filter((p) => p !== '' && p !== '.')
        .join('/')}`;
      const first = claimed.get(normal);
      if (first) problems.push(`Service ${service.metadata.name}: ${field}: target ${normal} is already used by ${first}`);
      else claimed.set(normal, field);
    };
    (service.spec.mounts ?? []).forEach((m, i) => claim(m.target, `spec.mounts.${i}`));
    (service.spec.secrets ?? []).forEach((r, i) => claim(r.target.startsWith('/') ? r.target : `/run/secrets/${r.target}`, `spec.secrets.${i}`));
    (service.spec.configs ?? []).forEach((r, i) => claim(r.target.startsWith('/') ? r.target : `/${r.target}`, `spec.configs.${i}`));
  }
  return problems;
}

/** Pure: the services that refer to the object, as "stack/name" (for refusing its deletion). */
export function servicesUsing(kind: StackFileKind, stack: string, name: string, services: readonly Service[]): string[] {
  return services
    .filter((s) => {
      const own = s.metadata.stack ?? '';
      const resolvesHere = (refName: string) => refName === name && (own === stack || (stack === '' && own !== ''));
      return referencesOf(s.spec).some((r) => r.kind === kind && resolvesHere(r.name));
    })
    .map((s) => `${s.metadata.stack || '_'}/${s.metadata.name}`);
}

export type FilePlan = { ok: true; action: ApplyAction; object: StackFileObject } | { ok: false; problem: string };

/** Pure decision for one object: create, change labels, leave alone — or refuse a change of immutable content. */
export function planStackFile(existing: StackFileObject | undefined, incoming: StackFileObject, now: Date, newUid: () => string): FilePlan {
  const stack = incoming.metadata.stack ?? '';
  const what = `${incoming.kind} ${stack ? `${stack}/` : ''}${incoming.metadata.name}`;
  if (!existing) {
    const object = structuredClone(incoming);
    object.metadata = { ...object.metadata, stack, uid: newUid(), generation: 1, createdAt: now.toISOString() };
    delete object.metadata.resourceVersion;
    if (object.kind === 'Secret' || object.kind === 'Config') object.status = { sizeBytes: decodedSize(object.spec.data) };
    return { ok: true, action: 'created', object };
  }
  if (existing.kind !== incoming.kind) return { ok: false, problem: `${what}: stored as a ${existing.kind}` };
  if (!isDeepStrictEqual(normalSpec(existing), normalSpec(incoming))) {
    const why =
      incoming.kind === 'Volume'
        ? "a volume's driver options cannot change once it exists (its data may already be on nodes); use a new name"
        : `${incoming.kind.toLowerCase()}s are immutable: new data needs a new name (e.g. ${incoming.metadata.name}-v2), and the services pointed at it`;
    return { ok: false, problem: `${what}: ${why}` };
  }
  if (isDeepStrictEqual(existing.metadata.labels ?? {}, incoming.metadata.labels ?? {})) return { ok: true, action: 'unchanged', object: existing };
  const object = structuredClone(existing);
  if (incoming.metadata.labels) object.metadata.labels = { ...incoming.metadata.labels };
  else delete object.metadata.labels;
  return { ok: true, action: 'configured', object };
}

function normalSpec(o: StackFileObject): unknown {
  return o.kind === 'Volume' ? { driver: o.spec.driver ?? 'local', driverOpts: o.spec.driverOpts ?? {} } : o.spec;
}

/** The object as the API shows it: a secret's data is never returned. */
export function redactObject<T extends { kind: string }>(object: T): T {
  if (object.kind !== 'Secret') return object;
  const secret = structuredClone(object) as unknown as Secret;
  secret.spec = { data: REDACTED };
  return secret as unknown as T;
}

/** The same for a stored JSON document (watch events carry the raw value). */
export function redactJson(json: string): string {
  try {
    const parsed = JSON.parse(json) as { kind?: unknown };
    return parsed.kind === 'Secret' ? JSON.stringify(redactObject(parsed as { kind: string })) : json;
  } catch {
    // Not JSON, so not a Secret we could show: the watcher's own parse reports the corrupt value
    // (the informer's "corrupt object at ..."), and the API server only ever stores JSON.
    return json;
  }
}

type Planned = { ref: ObjectRef; action: ApplyAction; object: StackFileObject };

/**
 * Plans the request's Secrets, Configs and Volumes into the pending transaction and checks every
 * service's references against the request and the store. Throws nothing: problems are returned,
 * and the caller applies nothing when there are any.
 */
export async function planStackFiles(
  store: Store,
  objects: readonly StackFileObject[],
  services: readonly Service[],
  compare: Compare[],
  success: TxnOp[],
  now: Date = new Date(),
): Promise<{ planned: Planned[]; problems: string[] }> {
  const planned: Planned[] = [];
  const problems: string[] = [];
  const inRequest = new Set(objects.map((o) => objectKey(o.kind, o.metadata.stack ?? '', o.metadata.name)));
  for (const incoming of objects) {
    const stack = incoming.metadata.stack ?? '';
    const key = objectKey(incoming.kind, stack, incoming.metadata.name);
    const kv = await store.get(key);
    const existing = kv ? (JSON.parse(kv.value) as StackFileObject) : undefined;
    if (existing && kv) existing.metadata.resourceVersion = String(kv.modRevision);
    compare.push({ key, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 });
    const plan = planStackFile(existing, incoming, now, randomUUID);
    if (!plan.ok) {
      problems.push(plan.problem);
      continue;
    }
    if (plan.action !== 'unchanged') {
      const stored = structuredClone(plan.object);
      delete stored.metadata.resourceVersion;
      success.push({ type: 'put', key, value: JSON.stringify(stored) });
    }
    planned.push({ ref: { kind: incoming.kind, stack, name: incoming.metadata.name }, action: plan.action, object: plan.object });
  }

  // References: to an object of this request, or to one in the store (guarded so a concurrent
  // delete makes the transaction fail and the plan run again).
  const stored = new Map<string, number>();
  for (const service of services) {
    for (const ref of referencesOf(service.spec)) {
      for (const stack of referenceStacks(service.metadata.stack ?? '')) {
        const key = objectKey(ref.kind, stack, ref.name);
        if (inRequest.has(key) || stored.has(key)) continue;
        const kv = await store.get(key);
        if (kv) stored.set(key, kv.modRevision);
      }
    }
  }
  const exists: ExistsFn = (kind, stack, name) => inRequest.has(objectKey(kind, stack, name)) || stored.has(objectKey(kind, stack, name));
  problems.push(...missingReferences(services, exists));
  problems.push(...conflictingTargets(services));
  for (const [key, revision] of stored) compare.push({ key, target: 'modRevision', op: '=', value: revision });
  return { planned, problems };
}

/**
 * Why the object may not be deleted now, or undefined: secrets, configs and volumes in use by a
 * service stay. Services deleted by the same request ("stack/name" in `alsoDeleted`) do not count.
 */
export async function deletionBlocker(
  store: Store,
  kind: string,
  stack: string,
  name: string,
  alsoDeleted: ReadonlySet<string> = new Set(),
): Promise<string | undefined> {
  if (!(STACK_FILE_KINDS as readonly string[]).includes(kind)) return undefined;
  const { kvs } = await store.range(kindPrefix('Service'));
  const services = kvs.map((kv) => JSON.parse(kv.value) as Service).filter((s) => !alsoDeleted.has(`${s.metadata.stack ?? ''}/${s.metadata.name}`));
  const users = servicesUsing(kind as StackFileKind, stack, name, services);
  if (users.length === 0) return undefined;
  return `${kind} ${stack ? `${stack}/` : ''}${name} is in use by service(s) ${users.join(', ')}; remove it from them (or delete them) first`;
}
