// Which objects a mutating API request touches, as the audit log names them. Only kinds, stacks and
// names are taken from a request: never a spec, a Secret's data, a CSR or any other content, so an
// entry can be shown to whoever may read the audit log without showing them what was sent.
import type { AuditObject } from './audit-entry.js';

/** At most this many objects are listed in one entry; the rest are counted in a last `and N more`. */
export const MAX_LISTED_OBJECTS = 100;

/** Object names (and stacks) are cut to this many characters, like a DNS name. */
export const MAX_AUDIT_NAME_CHARS = 253;

/** Kinds are cut shorter: a real kind is one short word, anything longer came from a bad request. */
const MAX_AUDIT_KIND_CHARS = 63;

type Fields = Record<string, unknown>;

type Describer = (request: Fields) => AuditObject[];

const imageByReference: Describer = (request) => [named('Image', text(request, 'reference'))];

/** The API's mutating methods (proto/api.proto `service Tessera`), by RPC name. */
const DESCRIBERS: ReadonlyMap<string, Describer> = new Map<string, Describer>([
  ['Apply', applyObjects],
  ['Delete', deleteObjects],
  ['Scale', (request) => [refObject(request.ref)]],
  ['UpdateNode', (request) => [named('Node', text(request, 'name'))]],
  ['RemoveNode', (request) => [named('Node', text(request, 'name'))]],
  ['JoinToken', (request) => [named('JoinToken', text(request, 'role'))]],
  ['ClusterMemberChange', (request) => [named('ClusterMember', text(request, 'name'))]],
  ['IssueUserCertificate', (request) => [named('User', text(request, 'name'))]],
  ['RotateCa', () => [named('RootCA', 'cluster')]],
  ['UpdateCluster', () => [named('ClusterSettings', 'cluster')]],
  ['ImagePull', imageByReference],
  ['ImagePullProgress', imageByReference],
  ['ImageRemove', imageByReference],
  // A load is a stream of archive bytes: which images it holds is known only once it is unpacked.
  ['ImageLoad', () => [named('Image', '(uploaded archive)')]],
  ['ImagePrune', () => [named('Image', '(unused images)')]],
  // The image pushed and the name it was pushed as (empty: its own).
  ['ImagePush', (request) => [named('Image', text(request, 'reference')), named('PushTarget', text(request, 'target') || text(request, 'reference'))]],
  // The task exec'd into; the command only in the digest (it may carry a secret), stdin never.
  ['Exec', (request) => [objectOf('Task', request.stack, request.task)]],
  // The images a build stores (its tags); build args only in the digest, the context never.
  ['BuildImage', buildTags],
]);

/** RPC names of the methods that change something, i.e. those the audit log records. */
export const AUDITED_METHODS: ReadonlySet<string> = new Set(DESCRIBERS.keys());

/** The RPC name of a method given either bare (`Apply`) or as a gRPC path (`/tessera.api.v1.Tessera/Apply`). */
export function rpcName(method: string): string {
  return method.slice(method.lastIndexOf('/') + 1);
}

/**
 * The objects a request touches, at most MAX_LISTED_OBJECTS of them and a last `and N more`. A
 * method that is not among AUDITED_METHODS lists none (its entry still says who called it, and the digest).
 */
export function requestObjects(method: string, request: unknown): AuditObject[] {
  const describe = DESCRIBERS.get(rpcName(method));
  return describe === undefined ? [] : describe(fieldsOf(request));
}

/** The stacks pruned first, so a long Apply does not hide them in `and N more`; then the objects. */
function applyObjects(request: Fields): AuditObject[] {
  const pruned = list(request, 'pruneStacks', 'prune_stacks').map((stack) =>
    // The default stack is "", which would read as a missing name.
    named('PruneStack', typeof stack === 'string' ? (stack === '' ? '(default stack)' : stack) : '?'),
  );
  const objectsJson = list(request, 'objectsJson', 'objects_json');
  // Only the objects that will be listed are parsed; the rest are just counted.
  const described = objectsJson.slice(0, Math.max(0, MAX_LISTED_OBJECTS - pruned.length)).map(manifestObject);
  return bounded([...pruned, ...described], pruned.length + objectsJson.length);
}

function buildTags(request: Fields): AuditObject[] {
  const tags = list(request, 'tags');
  return bounded(
    tags.slice(0, MAX_LISTED_OBJECTS).map((tag) => named('Image', typeof tag === 'string' ? tag : '?')),
    tags.length,
  );
}

function deleteObjects(request: Fields): AuditObject[] {
  const refs = list(request, 'refs');
  return bounded(refs.slice(0, MAX_LISTED_OBJECTS).map(refObject), refs.length);
}

/** kind, metadata.stack and metadata.name of one `objects_json` entry (N counts from 1, as Apply's errors do). */
function manifestObject(json: unknown, index: number): AuditObject {
  const unparseable = named('?', `<unparseable object ${index + 1}>`);
  if (typeof json !== 'string') return unparseable;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    // Deliberately not an error here: Apply itself refuses the object and says why.
    return unparseable;
  }
  if (!isFields(parsed)) return unparseable;
  const metadata = fieldsOf(parsed.metadata);
  return objectOf(parsed.kind, metadata.stack, metadata.name);
}

/** An ObjectRef message ({kind, stack, name}). */
function refObject(ref: unknown): AuditObject {
  const fields = fieldsOf(ref);
  return objectOf(fields.kind, fields.stack, fields.name);
}

function objectOf(kind: unknown, stack: unknown, name: unknown): AuditObject {
  const object = named(typeof kind === 'string' ? kind : '?', typeof name === 'string' ? name : '?');
  // The default stack ("" or absent) is left out, as it is everywhere else objects are named.
  if (typeof stack === 'string' && stack !== '') object.stack = cutText(stack, MAX_AUDIT_NAME_CHARS);
  return object;
}

function named(kind: string, name: string): AuditObject {
  return { kind: cutText(kind, MAX_AUDIT_KIND_CHARS), name: cutText(name, MAX_AUDIT_NAME_CHARS) };
}

/** The first MAX_LISTED_OBJECTS of `total` objects, and `and N more` for the others. */
function bounded(objects: AuditObject[], total: number): AuditObject[] {
  const listed = objects.slice(0, MAX_LISTED_OBJECTS);
  if (total <= listed.length) return listed;
  return [...listed, { kind: '…', name: `and ${total - listed.length} more` }];
}

/**
 * The text cut to at most `max` characters, ending in `…` when it was cut. A surrogate pair is
 * never split, so the result stays valid UTF-16 (and valid UTF-8 once written).
 */
export function cutText(value: string, max: number): string {
  if (value.length <= max) return value;
  let end = max - 1;
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${value.slice(0, end)}…`;
}

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fieldsOf(value: unknown): Fields {
  return isFields(value) ? value : {};
}

/** A string field; `?` when it is missing or not a string (the request is then refused anyway). */
function text(request: Fields, key: string): string {
  const value = request[key];
  return typeof value === 'string' ? value : '?';
}

/** A repeated field under its camelCase name (grpc-js) or, failing that, its proto name. */
function list(request: Fields, ...keys: string[]): unknown[] {
  for (const key of keys) {
    const value = request[key];
    if (Array.isArray(value)) return value;
  }
  return [];
}
