// What every manager must agree on about the cluster's identity, kept in the replicated store:
// the cluster id, the roots every node trusts, the join tokens (hashed: the store never holds a
// usable token) and the lifetime of node certificates. Pure encoding and checks; the store I/O is
// in cluster-security.ts.
import { IDENTITY_NAME, type NodeRole } from '../../common/identity/certificate.js';
import { MIN_VALIDITY_MS } from './issue.js';

export const CLUSTER_META_KEY = '/tessera/cluster/meta';
export const REVOCATIONS_KEY = '/tessera/cluster/revoked';
/** + node id: the serials and expiry of every certificate issued to that node, so that removing it can revoke them all. */
export const ISSUED_PREFIX = '/tessera/cluster/issued/';

export interface RootRotation {
  /** The new root; its key is in each manager's CA file next to the old one. */
  newRootPem: string;
  /** The new root cross-signed by the old key: nodes still trusting only the old root accept chains through it. */
  crossSignedPem: string;
  startedAt: string;
}

export interface ClusterMeta {
  clusterId: string;
  /** Every root the cluster trusts now; the first signs new certificates unless a rotation is in progress. */
  trustedRootPems: string[];
  /** sha256 hashes of the join secrets (hashJoinSecret); a rotated-out secret matches none. */
  tokenHashes: Record<NodeRole, string>;
  nodeCertValidityMs: number;
  rotation?: RootRotation;
}

const HASH = /^sha256:[0-9a-f]{64}$/;

/** Parses the meta a manager wrote; throws naming the field when the store holds something else. */
export function parseClusterMeta(text: string): ClusterMeta {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${CLUSTER_META_KEY}: not JSON (${(err as Error).message})`);
  }
  const meta = value as Partial<ClusterMeta> | null;
  const problem = (what: string) => new Error(`${CLUSTER_META_KEY}: ${what}`);
  if (typeof meta?.clusterId !== 'string' || !IDENTITY_NAME.test(meta.clusterId)) throw problem('clusterId is not a DNS label');
  if (!Array.isArray(meta.trustedRootPems) || meta.trustedRootPems.length === 0 || meta.trustedRootPems.some((p) => typeof p !== 'string'))
    throw problem('trustedRootPems is not a non-empty list of PEM certificates');
  const hashes = meta.tokenHashes;
  if (typeof hashes?.worker !== 'string' || typeof hashes.manager !== 'string' || !HASH.test(hashes.worker) || !HASH.test(hashes.manager))
    throw problem('tokenHashes must hold a sha256 hash for worker and manager');
  if (typeof meta.nodeCertValidityMs !== 'number' || !(meta.nodeCertValidityMs >= MIN_VALIDITY_MS)) throw problem('nodeCertValidityMs is missing or too short');
  const rotation = meta.rotation;
  if (
    rotation !== undefined &&
    (typeof rotation.newRootPem !== 'string' || typeof rotation.crossSignedPem !== 'string' || typeof rotation.startedAt !== 'string')
  )
    throw problem('rotation must hold newRootPem, crossSignedPem and startedAt');
  return {
    clusterId: meta.clusterId,
    trustedRootPems: meta.trustedRootPems,
    tokenHashes: { worker: hashes.worker, manager: hashes.manager },
    nodeCertValidityMs: meta.nodeCertValidityMs,
    ...(rotation ? { rotation } : {}),
  };
}

export interface IssuedRecord {
  serial: string;
  notAfter: string;
  /** caDigest of the root that signed it: a CA rotation is complete when every node's newest is the new root's. */
  rootDigest?: string;
}

export function parseIssued(text: string, nodeId: string): IssuedRecord[] {
  const value = JSON.parse(text) as unknown;
  if (!Array.isArray(value)) throw new Error(`${ISSUED_PREFIX}${nodeId}: expected a list`);
  return value.map((item: unknown, i) => {
    const record = item as Partial<IssuedRecord> | null;
    if (typeof record?.serial !== 'string' || typeof record.notAfter !== 'string')
      throw new Error(`${ISSUED_PREFIX}${nodeId}: entry ${i} is not {serial, notAfter}`);
    return { serial: record.serial, notAfter: record.notAfter, ...(typeof record.rootDigest === 'string' ? { rootDigest: record.rootDigest } : {}) };
  });
}
