// The cluster root CA's certificate and private key as the managers keep them: one key of the
// replicated store, under the cluster prefix, so it is sealed at rest with the rest of the store
// (Raft WAL and snapshots, or the sealed etcd wrapper) and every member can sign as soon as its
// store holds it. No API path reads this key: the API reads /tessera/objects/ only, and Raft's
// Range is served to manager certificates, which may hold the CA anyway. Pure encoding and checks.
import { MAX_PEM_BYTES } from '../../common/identity/x509.js';
import type { CaMaterial } from './root-ca.js';

export const CA_KEY = '/tessera/cluster/ca';

export interface CaRecord {
  /** The root that signs outside a rotation. */
  current: CaMaterial;
  /** During a root rotation: the new root (the one that signs while the rotation runs). */
  next?: CaMaterial;
}

/** A CA record is two PEM pairs and their JSON; anything much larger is not one. */
const MAX_RECORD_BYTES = 8 * MAX_PEM_BYTES;

function material(value: unknown, where: string): CaMaterial {
  const m = value as Partial<CaMaterial> | null;
  if (typeof m?.certPem !== 'string' || !m.certPem.includes('-----BEGIN CERTIFICATE-----'))
    throw new Error(`${CA_KEY}: ${where}.certPem is not a PEM certificate`);
  if (typeof m.keyPem !== 'string' || !m.keyPem.includes('-----BEGIN PRIVATE KEY-----')) throw new Error(`${CA_KEY}: ${where}.keyPem is not a PKCS#8 PEM key`);
  return { certPem: m.certPem, keyPem: m.keyPem };
}

/** Parses the record a manager wrote; throws naming the field when the store holds something else. */
export function parseCaRecord(text: string): CaRecord {
  if (text.length > MAX_RECORD_BYTES) throw new Error(`${CA_KEY}: ${text.length} bytes, more than a CA record holds (${MAX_RECORD_BYTES})`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${CA_KEY}: not JSON (${(err as Error).message})`);
  }
  const record = value as { current?: unknown; next?: unknown } | null;
  if (typeof record !== 'object' || record === null) throw new Error(`${CA_KEY}: not a JSON object`);
  const current = material(record.current, 'current');
  return record.next === undefined || record.next === null ? { current } : { current, next: material(record.next, 'next') };
}

export function formatCaRecord(record: CaRecord): string {
  return JSON.stringify(record.next ? { current: record.current, next: record.next } : { current: record.current });
}

/** The material whose certificate is `rootPem`, if the record holds it. */
export function materialFor(record: CaRecord, rootPem: string): CaMaterial | undefined {
  if (record.next?.certPem === rootPem) return record.next;
  if (record.current.certPem === rootPem) return record.current;
  return undefined;
}
