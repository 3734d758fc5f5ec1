// An offline verifier of certificate chains: the path to one of the roots, the validity dates,
// CA constraints, usages, cluster and revocation, each failure with its IdentityError code. tsd
// leaves chain verification to OpenSSL in the handshake (and reads the subject per call,
// control-plane/auth/authenticate.ts); the tests and the CA benchmark use this as a second,
// independent judge of the chains the CA issues, e.g. during a root rotation.
import { type NodeRole, type UserRole, identityOf, isNodeRole, isUserRole } from '../../common/identity/certificate.js';
import { isSignedBy, MAX_INTERMEDIATES } from '../../common/identity/chain.js';
import { IdentityError, OID_CLIENT_AUTH, OID_SERVER_AUTH, parseCertificate, x509 } from '../../common/identity/x509.js';
import type { RevocationSet } from '../../control-plane/ca/revocation.js';

interface VerifiedCommon {
  clusterId: string;
  serial: string;
  notAfter: Date;
}
export type VerifiedIdentity =
  (VerifiedCommon & { kind: 'node'; nodeId: string; role: NodeRole }) | (VerifiedCommon & { kind: 'user'; name: string; role: UserRole });

export interface VerifyChecks {
  /** The cluster this manager serves; a certificate of another cluster is refused even if a root matched. */
  clusterId?: string;
  revocations?: RevocationSet;
}

export async function verifyChain(
  leafPem: string | Uint8Array,
  intermediatePems: readonly string[],
  trustedRootPems: readonly string[],
  now: Date = new Date(),
  checks: VerifyChecks = {},
): Promise<VerifiedIdentity> {
  if (trustedRootPems.length === 0) throw new IdentityError('unknown-ca', 'no trusted root certificate was given');
  const leaf = parseCertificate('presented certificate', leafPem);
  const intermediates = intermediatePems.map((pem, index) => parseCertificate(`presented intermediate #${index}`, pem));
  const roots = trustedRootPems.map((pem, index) => parseCertificate(`trusted root #${index}`, pem));

  const path = await buildPath(leaf, intermediates, roots);
  assertValidAt(leaf, now, 'certificate');
  path.slice(1).forEach((issuer, intermediatesBelow) => {
    assertCanIssue(issuer, intermediatesBelow);
    assertValidAt(issuer, now, 'CA certificate');
  });
  assertLeafUsage(leaf);

  const subject = identityOf(leaf);
  const root = path[path.length - 1];
  const rootCluster = root?.subjectName.getField('O') ?? [];
  if (rootCluster.length !== 1 || rootCluster[0] !== subject.o) {
    throw new IdentityError(
      'wrong-cluster',
      `certificate ${leaf.subject} names cluster ${subject.o}, but the root that signed it belongs to cluster ${rootCluster.join(',')}`,
    );
  }
  if (checks.clusterId !== undefined && subject.o !== checks.clusterId) {
    throw new IdentityError('wrong-cluster', `certificate ${leaf.subject} belongs to cluster ${subject.o}, this is cluster ${checks.clusterId}`);
  }
  const revoked = checks.revocations?.lookup(subject.serial);
  if (revoked) throw new IdentityError('revoked', `certificate ${leaf.subject} (serial ${subject.serial}) was revoked: ${revoked.reason}`);

  const common = { clusterId: subject.o, serial: subject.serial, notAfter: subject.notAfter };
  const usages = extendedUsages(leaf);
  if (isNodeRole(subject.ou)) {
    if (!usages.includes(OID_SERVER_AUTH)) throw new IdentityError('wrong-usage', `node certificate ${leaf.subject} lacks the serverAuth usage`);
    return { kind: 'node', nodeId: subject.cn, role: subject.ou, ...common };
  }
  if (isUserRole(subject.ou)) return { kind: 'user', name: subject.cn, role: subject.ou, ...common };
  throw new IdentityError(
    'bad-identity',
    `certificate ${leaf.subject}: OU "${subject.ou}" is neither a node role (manager, worker) nor a user role (admin, operator, viewer)`,
  );
}

function extendedUsages(cert: x509.X509Certificate): string[] {
  return (cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? []).map(String);
}

/** Every Tessera identity authenticates as a TLS client; a CA certificate is never an identity. */
function assertLeafUsage(leaf: x509.X509Certificate): void {
  if (leaf.getExtension(x509.BasicConstraintsExtension)?.ca)
    throw new IdentityError('wrong-usage', `certificate ${leaf.subject} is a CA certificate, not a node or user identity`);
  if (!extendedUsages(leaf).includes(OID_CLIENT_AUTH)) throw new IdentityError('wrong-usage', `certificate ${leaf.subject} lacks the clientAuth usage`);
}

/** A CA certificate: basicConstraints cA (and its pathLength) and keyUsage keyCertSign, as RFC 5280 requires of an issuer. */
export function assertCanIssue(cert: x509.X509Certificate, intermediatesBelow: number): void {
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca)
    throw new IdentityError('not-a-ca', `certificate ${cert.subject} signed another certificate but is not a CA (basicConstraints cA is not set)`);
  if (constraints.pathLength !== undefined && intermediatesBelow > constraints.pathLength) {
    throw new IdentityError(
      'path-too-long',
      `CA certificate ${cert.subject} allows ${constraints.pathLength} intermediates below it, the path has ${intermediatesBelow}`,
    );
  }
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  if (usage && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new IdentityError('not-a-ca', `certificate ${cert.subject} signed another certificate but its keyUsage lacks keyCertSign`);
  }
}

export function assertValidAt(cert: x509.X509Certificate, now: Date, role: string): void {
  if (now.getTime() >= cert.notAfter.getTime()) {
    throw new IdentityError('expired', `${role} ${cert.subject} expired at ${cert.notAfter.toISOString()} (now ${now.toISOString()})`);
  }
  if (now.getTime() < cert.notBefore.getTime()) {
    throw new IdentityError('not-yet-valid', `${role} ${cert.subject} is not valid before ${cert.notBefore.toISOString()} (now ${now.toISOString()})`);
  }
}

/**
 * Builds the path leaf -> intermediates -> one of `roots` by issuer name and signature, and returns
 * it (leaf first, root last). Validity dates and usages are the caller's to check on the result, so
 * that an expired certificate from the right CA is reported as expired rather than as unknown.
 */
export async function buildPath(
  leaf: x509.X509Certificate,
  intermediates: readonly x509.X509Certificate[],
  roots: readonly x509.X509Certificate[],
): Promise<x509.X509Certificate[]> {
  const path = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= MAX_INTERMEDIATES; depth++) {
    for (const root of roots) {
      if (await isSignedBy(current, root)) return [...path, root];
    }
    if (depth === MAX_INTERMEDIATES) break;
    let next: x509.X509Certificate | undefined;
    for (const candidate of intermediates) {
      if (!path.includes(candidate) && (await isSignedBy(current, candidate))) {
        next = candidate;
        break;
      }
    }
    if (!next) {
      throw new IdentityError(
        'unknown-ca',
        `certificate ${current.subject} was issued by ${current.issuer}, which is not a trusted root of this cluster and not a presented intermediate that signed it`,
      );
    }
    path.push(next);
    current = next;
  }
  throw new IdentityError('path-too-long', `certificate ${leaf.subject}: no trusted root within ${MAX_INTERMEDIATES} intermediates`);
}
