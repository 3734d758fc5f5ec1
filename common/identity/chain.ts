// Certification path checks shared by the manager's verifier (control-plane/ca/verify.ts) and the
// joining node's CA pin (join-token.ts). TLS itself is verified by OpenSSL inside Node; these run
// where Tessera needs an answer outside a handshake, with errors that say which link failed.
import { IdentityError, x509 } from './x509.js';

/** Leaf, at most two intermediates (a cross-signed root during a CA rotation is one), and the root. */
export const MAX_INTERMEDIATES = 2;

export async function isSignedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  return cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
}

export async function isSelfSignedRoot(cert: x509.X509Certificate): Promise<boolean> {
  return isSignedBy(cert, cert);
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
