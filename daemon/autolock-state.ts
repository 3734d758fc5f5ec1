// The cluster's autolock setting in the replicated store: on or off, and the current unlock key.
//
// The key is kept in the store (which is sealed at rest, as Swarm keeps its unlock key in its Raft
// store) so that every manager can re-wrap its own keyring under it: one that joins an autolocked
// cluster, and each one when the key rotates. It is never in a plaintext file, a log or argv. The
// record sits outside /tessera/objects/, so no Get, List or Watch of the API can return it; only
// the Autolock service (admins and root) hands the key out.
import { parseUnlockKey, type UnlockKeyError } from '../control-plane/raft/storage/unlock-key.js';
import type { Store } from '../control-plane/store/store.js';

export const AUTOLOCK_KEY = '/tessera/autolock/state';
/** A record is a few hundred bytes; a larger value is not one. */
const MAX_RECORD_BYTES = 4096;

export interface AutolockRecord {
  enabled: boolean;
  /** The current unlock key (TSUK-1-...), when enabled. */
  unlockKey?: string;
}

export class AutolockRecordError extends Error {
  constructor(detail: string) {
    super(`${AUTOLOCK_KEY}: ${detail}`);
    this.name = 'AutolockRecordError';
  }
}

/** Parses and checks the record; errors never quote the key. Pure. */
export function parseAutolockRecord(text: string): AutolockRecord {
  if (text.length > MAX_RECORD_BYTES) throw new AutolockRecordError(`is ${text.length} bytes, more than a record can be`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new AutolockRecordError('is not JSON');
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (typeof o.enabled !== 'boolean') throw new AutolockRecordError('enabled is not a boolean');
  if (!o.enabled) return { enabled: false };
  if (typeof o.unlockKey !== 'string') throw new AutolockRecordError('autolock is on but the record holds no unlock key');
  try {
    parseUnlockKey(o.unlockKey);
  } catch (err) {
    throw new AutolockRecordError((err as UnlockKeyError).message);
  }
  return { enabled: true, unlockKey: o.unlockKey };
}

export function formatAutolockRecord(record: AutolockRecord): string {
  return JSON.stringify(record.enabled ? { enabled: true, unlockKey: record.unlockKey } : { enabled: false });
}

/** The record and its revision (0 when there is none: autolock was never turned on). */
export async function readAutolock(store: Store): Promise<{ record: AutolockRecord; modRevision: number }> {
  const kv = await store.get(AUTOLOCK_KEY);
  if (!kv) return { record: { enabled: false }, modRevision: 0 };
  return { record: parseAutolockRecord(kv.value), modRevision: kv.modRevision };
}

/**
 * Replaces the record if it is still at `modRevision` (0: absent); false when another write came
 * first (the caller reads again and decides anew).
 */
export async function writeAutolock(store: Store, record: AutolockRecord, modRevision: number): Promise<boolean> {
  const res = await store.txn({
    compare: [{ key: AUTOLOCK_KEY, target: 'modRevision', op: '=', value: modRevision }],
    success: [{ type: 'put', key: AUTOLOCK_KEY, value: formatAutolockRecord(record) }],
    failure: [],
  });
  return res.succeeded;
}
