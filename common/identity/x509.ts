// The module that loads @peculiar/x509 at import, for everything that builds certificates, keys and
// CSRs. The library resolves its algorithm handlers through tsyringe, which throws at load time
// unless a Reflect metadata polyfill is present, so the polyfill import must run first: ES modules
// evaluate their imports in order, and every Tessera file that needs X.509 imports this module (or
// x509-core.ts, which only reads certificates and loads the library on first use) instead of the
// library itself.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { assertBounded, IdentityError, withFinalNewline, x509Library } from './x509-core.js';

// The same module instance as x509-core's; this sets Node's WebCrypto as its provider.
x509Library();

export { x509, webcrypto };
export {
  IdentityError,
  type IdentityErrorCode,
  joinPem,
  MAX_PEM_BYTES,
  normalizeSerial,
  parseCertificate,
  splitPemCertificates,
  toArrayBuffer,
} from './x509-core.js';

export type CryptoKey = webcrypto.CryptoKey;

/** Every key in a Tessera cluster: ECDSA on P-256, signatures with SHA-256. */
export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export function parseCsr(what: string, pem: string): x509.Pkcs10CertificateRequest {
  assertBounded(what, pem.length);
  if (!pem.includes('-----BEGIN CERTIFICATE REQUEST-----'))
    throw new IdentityError('malformed', `${what}: not a PEM certificate request (no BEGIN CERTIFICATE REQUEST line)`);
  try {
    return new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new IdentityError('malformed', `${what}: not a valid PKCS#10 request (${(err as Error).message})`);
  }
}

/**
 * PEM text ending in a newline. The library's PEM has none after the END line, and OpenSSL refuses
 * a bundle where the next BEGIN line follows it directly ("bad end line").
 */
export function pemOf(item: { toString(format: 'pem'): string }): string {
  return withFinalNewline(item.toString('pem'));
}

export async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return withFinalNewline(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

/** Imports an ECDSA P-256 private key from PKCS#8 PEM, for signing only and not extractable again. */
export async function importPkcs8Pem(what: string, pem: string): Promise<CryptoKey> {
  assertBounded(what, pem.length);
  if (!pem.includes('-----BEGIN PRIVATE KEY-----')) throw new IdentityError('malformed', `${what}: not a PKCS#8 PEM private key (no BEGIN PRIVATE KEY line)`);
  try {
    return await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), EC_KEY_ALGORITHM, false, ['sign']);
  } catch (err) {
    throw new IdentityError('unsupported-key', `${what}: not an ECDSA P-256 PKCS#8 key (${(err as Error).message})`);
  }
}

/** True when `key` is the ECDSA P-256 public key every Tessera certificate must carry. */
export function isP256(key: x509.PublicKey): boolean {
  const algorithm = key.algorithm as { name?: unknown; namedCurve?: unknown };
  return algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256';
}

/** A random positive serial: 16 bytes, the top bit clear so DER keeps it positive, the next bit set so it has no leading zero byte. */
export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}
