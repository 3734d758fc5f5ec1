// The one place that loads @peculiar/x509. The library resolves its algorithm handlers through
// tsyringe, which throws at load time unless a Reflect metadata polyfill is present, so the
// polyfill import must run first: ES modules evaluate their imports in order, and every Tessera
// file that needs X.509 imports this module instead of the library itself.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

// Node's WebCrypto (the same object as globalThis.crypto on Node 20); set explicitly rather than
// relying on the library's default lookup, as its documentation asks for Node.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509, webcrypto };

export type CryptoKey = webcrypto.CryptoKey;

/** Every key in a Tessera cluster: ECDSA on P-256, signatures with SHA-256. */
export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Certificates, CSRs and keys are small; anything bigger is refused before it reaches the ASN.1 parser. */
export const MAX_PEM_BYTES = 16 * 1024;

export const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** What a certificate, a CSR or a key failed on, with a machine-readable reason. */
export type IdentityErrorCode =
  | 'malformed'
  | 'bad-signature'
  | 'unsupported-key'
  | 'expired'
  | 'not-yet-valid'
  | 'unknown-ca'
  | 'not-a-ca'
  | 'wrong-usage'
  | 'wrong-cluster'
  | 'bad-identity'
  | 'revoked'
  | 'path-too-long';

export class IdentityError extends Error {
  constructor(
    readonly code: IdentityErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'IdentityError';
  }
}

function assertBounded(what: string, size: number): void {
  if (size > MAX_PEM_BYTES) throw new IdentityError('malformed', `${what}: ${size} bytes is more than the ${MAX_PEM_BYTES} allowed`);
}

/** Parses one PEM (or DER) certificate, with a size bound and an error naming `what`. */
export function parseCertificate(what: string, pemOrDer: string | Uint8Array): x509.X509Certificate {
  if (typeof pemOrDer === 'string') {
    assertBounded(what, pemOrDer.length);
    if (!pemOrDer.includes('-----BEGIN CERTIFICATE-----')) throw new IdentityError('malformed', `${what}: not a PEM certificate (no BEGIN CERTIFICATE line)`);
  } else {
    assertBounded(what, pemOrDer.byteLength);
  }
  try {
    return new x509.X509Certificate(typeof pemOrDer === 'string' ? pemOrDer : toArrayBuffer(pemOrDer));
  } catch (err) {
    throw new IdentityError('malformed', `${what}: not a valid X.509 certificate (${(err as Error).message})`);
  }
}

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

/** Splits a PEM bundle (a chain file, a list of roots) into its certificates, in order. */
export function splitPemCertificates(what: string, bundle: string): string[] {
  if (bundle.length > 8 * MAX_PEM_BYTES) throw new IdentityError('malformed', `${what}: ${bundle.length} bytes is more than a certificate bundle may hold`);
  const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => `${block}\n`);
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

/**
 * PEM text ending in a newline. The library's PEM has none after the END line, and OpenSSL refuses
 * a bundle where the next BEGIN line follows it directly ("bad end line").
 */
export function pemOf(item: { toString(format: 'pem'): string }): string {
  return withFinalNewline(item.toString('pem'));
}

/** Joins certificates (a chain, a set of roots) into one PEM bundle OpenSSL reads. */
export function joinPem(pems: readonly string[]): string {
  return pems.map(withFinalNewline).join('');
}

function withFinalNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
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

/** Serials compare as lowercase hex without leading zero bytes, whatever produced them. */
export function normalizeSerial(serial: string): string {
  const hex = serial
    .trim()
    .toLowerCase()
    .replace(/^(00)+(?=..)/, '');
  if (!/^[0-9a-f]{1,40}$/.test(hex)) throw new IdentityError('malformed', `certificate serial "${serial.slice(0, 48)}" is not 1-40 hex digits`);
  return hex;
}
