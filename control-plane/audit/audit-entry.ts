// One audit log entry: who (the caller as the transport authenticated it), what (the objects a
// request touches and a digest of the request), when, and the result. Pure: the file it is written
// to is audit-log.ts's concern.
import { describeCaller, type Caller } from '../auth/caller.js';
import { sha256Digest } from '../../common/images/digest.js';
import { canonicalJson } from '../store/object-store.js';
import { cutText, requestObjects, rpcName } from './request-objects.js';

export { AUDITED_METHODS } from './request-objects.js';

/** A failure message is cut to this many characters: enough to say why, not a dump of the request. */
export const MAX_AUDIT_MESSAGE_CHARS = 512;

/** A gRPC status name is one short word (PERMISSION_DENIED); longer text is cut. */
const MAX_AUDIT_CODE_CHARS = 32;

/** RPC names are short words too; a method is named by the server, but bounded all the same. */
const MAX_AUDIT_METHOD_CHARS = 64;

/** A certificate serial is at most 20 bytes, i.e. 40 hex digits. */
const MAX_AUDIT_SERIAL_CHARS = 64;

/** Callers and managers are named by certificate subjects and node ids, which are names. */
const MAX_AUDIT_PARTY_CHARS = 300;

export interface AuditObject {
  kind: string;
  stack?: string;
  name: string;
}

export type AuditResult = { ok: true } | { ok: false; code: string; message: string };

export interface AuditEntry {
  /** When the request was answered, ISO 8601 in UTC. */
  time: string;
  /** describeCaller() of the caller: `user:alice (operator)`, `node:node-2 (manager)`, `local:root`. */
  caller: string;
  /** Serial number of the certificate the caller presented (none for local root). */
  certificateSerial?: string;
  /** The RPC name, e.g. `Apply`. */
  method: string;
  objects: AuditObject[];
  /** `sha256:<hex>` of the request as canonical JSON: it tells requests apart without showing them. */
  digest: string;
  result: AuditResult;
  /** Node id of the manager that served the request. */
  manager: string;
}

/**
 * The objects a request touches and a digest of the whole request. `request` is the message as
 * grpc-js decodes it (camelCase fields); for ImageLoad, a stream, it is `{}`.
 *
 * The digest is a SHA-256 over the request as JSON with sorted keys, so it changes with any field,
 * Secret data and CSRs included, but cannot be turned back into them. The request itself never goes
 * into an entry. The hash is unkeyed so digests compare across managers and restarts; the cost is
 * that a reader who can rebuild the rest of a request byte for byte could test guesses of a weak
 * secret in it against the digest.
 */
export function describeRequest(method: string, request: unknown): { objects: AuditObject[]; digest: string } {
  return { objects: requestObjects(method, request), digest: sha256Digest(canonicalJson(request ?? null)) };
}

/**
 * A caller the manager could not authenticate: `who` says what it presented (a revoked or foreign
 * certificate's subject, or "no verified certificate") and from where.
 */
export interface UnauthenticatedCaller {
  kind: 'unauthenticated';
  who: string;
  serial?: string;
}

export interface AuditEntryInput {
  time: Date;
  caller: Caller | UnauthenticatedCaller;
  /** The RPC name or the gRPC path (`/tessera.api.v1.Tessera/Apply`). */
  method: string;
  request: unknown;
  result: AuditResult;
  /** Node id of this manager. */
  manager: string;
}

/** The entry for one answered request, with every field bounded. */
export function auditEntry(input: AuditEntryInput): AuditEntry {
  const { objects, digest } = describeRequest(input.method, input.request);
  const entry: AuditEntry = {
    time: input.time.toISOString(),
    caller: cutText(input.caller.kind === 'unauthenticated' ? `unauthenticated: ${input.caller.who}` : describeCaller(input.caller), MAX_AUDIT_PARTY_CHARS),
    method: cutText(rpcName(input.method), MAX_AUDIT_METHOD_CHARS),
    objects,
    digest,
    result: boundedResult(input.result),
    manager: cutText(input.manager, MAX_AUDIT_PARTY_CHARS),
  };
  const serial = input.caller.kind === 'local-root' ? undefined : input.caller.serial;
  if (serial !== undefined) entry.certificateSerial = cutText(serial, MAX_AUDIT_SERIAL_CHARS);
  return entry;
}

/** The result with its code and message cut to their bounds. */
export function boundedResult(result: AuditResult): AuditResult {
  if (result.ok) return { ok: true };
  return { ok: false, code: cutText(result.code, MAX_AUDIT_CODE_CHARS), message: cutText(result.message, MAX_AUDIT_MESSAGE_CHARS) };
}
