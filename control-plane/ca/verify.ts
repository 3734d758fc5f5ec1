// Verifies a presented certificate chain against the cluster's trusted roots and returns who the
// holder is. OpenSSL already checks chains inside TLS handshakes; this is for the checks TLS does
// not know about (cluster, role, revocation) and for certificates handled outside a handshake.
import { type NodeRole, type UserRole, identityOf, isNodeRole, isUserRole } from '../../common/identity/certificate.js';
import { assertCanIssue, assertValidAt, buildPath } from '../../common/identity/chain.js';
import { IdentityError, OID_CLIENT_AUTH, OID_SERVER_AUTH, parseCertificate, x509 } from '../../common/identity/x509.js';
import type { RevocationSet } from './revocation.js';

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
