// Viewers get no Secret or Config data (issue 14). Secrets are redacted for everyone by the API
// server (stack-objects.ts); this adds Configs for viewers, in the same shape. Pure.
import { REDACTED } from '../api/stack-objects.js';
import type { Caller } from './caller.js';

const FILE_KINDS: ReadonlySet<string> = new Set(['Secret', 'Config']);

/**
 * The object as `caller` may see it: viewers get no Secret or Config data (Secrets are redacted
 * for everyone already; this adds Configs, in the same shape). Other callers get the input.
 * `kind` is what the server believes the object is; the JSON's own kind is checked too, so a
 * mismatch cannot leak data.
 */
export function redactFor(caller: Caller, kind: string, objectJson: string): string {
  if (caller.kind !== 'user' || caller.role !== 'viewer') return objectJson;
  const parsed = parseObject(objectJson);
  const ownKind = parsed?.['kind'];
  if (!FILE_KINDS.has(kind) && !(typeof ownKind === 'string' && FILE_KINDS.has(ownKind))) return objectJson;
  // A Secret or Config the store holds as something other than a JSON object is corrupt: fail
  // closed with the redacted shape and none of its content.
  if (parsed === undefined) return JSON.stringify({ kind, spec: { data: REDACTED } });
  // The shape redactObject gives a Secret (a unit test holds the two together).
  return JSON.stringify({ ...parsed, spec: { data: REDACTED } });
}

/** The JSON object in `json`, or undefined for anything else (not JSON, an array, a scalar). */
function parseObject(json: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    // Deliberately no error: the caller treats "not an object" the same whatever the reason.
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
