// Certification path checks for the joining node's CA pin (join-token.ts), which runs before any
// root is trusted and so outside what OpenSSL verifies in a handshake.
import type { x509 } from './x509.js';

/** Leaf, at most two intermediates (a cross-signed root during a CA rotation is one), and the root. */
export const MAX_INTERMEDIATES = 2;

export async function isSignedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  return cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
}

export async function isSelfSignedRoot(cert: x509.X509Certificate): Promise<boolean> {
  return isSignedBy(cert, cert);
}
