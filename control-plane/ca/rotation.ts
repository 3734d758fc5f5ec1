// Root CA rotation without downtime, as swarmkit does it: a new root is made and cross-signed by
// the old key; for the rotation's length both roots are trusted and new certificates are signed by
// the new root, presented with the cross-signed certificate so that peers trusting only the old
// root still accept them. Nodes renew at once; when every node holds a certificate from the new
// root, the old root is dropped, and with it every join token (they pin the old root). Pure
// decisions; the manager does the I/O.
import { caDigest } from '../../common/identity/certificate.js';
import type { ClusterMeta, IssuedRecord } from './cluster-meta.js';

/** The root new node certificates come from: the new one while a rotation runs. */
export function signingRootPem(meta: ClusterMeta): string {
  const root = meta.rotation?.newRootPem ?? meta.trustedRootPems[0];
  if (root === undefined) throw new Error('the cluster trusts no root certificate');
  return root;
}

/**
 * The root presented at the end of a chain: the old one during a rotation, which is what join
 * tokens pin and what a node that has not heard of the rotation trusts.
 */
export function presentedRootPem(meta: ClusterMeta): string {
  const root = meta.trustedRootPems[0];
  if (root === undefined) throw new Error('the cluster trusts no root certificate');
  return root;
}

export function startedRotation(meta: ClusterMeta, newRootPem: string, crossSignedPem: string, now: Date): ClusterMeta {
  if (meta.rotation) throw new Error('a root CA rotation is already in progress');
  const oldRoot = presentedRootPem(meta);
  return { ...meta, trustedRootPems: [oldRoot, newRootPem], rotation: { newRootPem, crossSignedPem, startedAt: now.toISOString() } };
}

export interface RotationProgress {
  /** Nodes whose newest certificate is from the new root. */
  done: string[];
  /** Nodes still on a certificate from the old root (or with none on record). */
  waiting: string[];
}

export function rotationProgress(meta: ClusterMeta, issued: ReadonlyMap<string, readonly IssuedRecord[]>): RotationProgress {
  const newDigest = caDigest(signingRootPem(meta));
  const done: string[] = [];
  const waiting: string[] = [];
  for (const [node, records] of issued) {
    const newest = records[records.length - 1];
    (newest?.rootDigest === newDigest ? done : waiting).push(node);
  }
  return { done: done.sort(), waiting: waiting.sort() };
}

/** The meta once every node is on the new root: only it is trusted, and the given fresh token hashes replace the old ones. */
export function completedRotation(meta: ClusterMeta, freshTokenHashes: ClusterMeta['tokenHashes']): ClusterMeta {
  if (!meta.rotation) throw new Error('no root CA rotation is in progress');
  const { rotation, ...rest } = meta;
  return { ...rest, trustedRootPems: [rotation.newRootPem], tokenHashes: freshTokenHashes };
}
