// What reading a certificate needs, without loading the X.509 library until a certificate is
// actually parsed: @peculiar/x509 builds its ASN.1 schemas with decorators when it loads, which
// was about a third of every tsctl command's start-up (node --cpu-prof), commands on the root
// socket that never see a certificate included. It is a CommonJS package, so it is required synchronously on
// first use (a TLS handshake's server check is synchronous, so an import() would not do); Node
// hands back the same module instance that x509.ts's static import gets. x509.ts re-exports all of
// this and remains the module for everything that builds certificates, keys and CSRs.
import { webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';

let library: typeof X509 | undefined;

/** @peculiar/x509, loaded (with the Reflect metadata polyfill its tsyringe needs first) on the first call. */
export function x509Library(): typeof X509 {
  if (library === undefined) {
    const require = createRequire(import.meta.url);
    require('reflect-metadata');
    const loaded = require('@peculiar/x509') as typeof X509;
    // Node's WebCrypto (the same object as globalThis.crypto on Node 20); set explicitly rather than
    // relying on the library's default lookup, as its documentation asks for Node.
    loaded.cryptoProvider.set(webcrypto as unknown as Crypto);
    library = loaded;
  }
  return library;
}

/** Certificates, CSRs and keys are small; anything bigger is refused before it reaches the ASN.1 parser. */
export const MAX_PEM_BYTES = 16 * 1024;

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

export function assertBounded(what: string, size: number): void {
  if (size > MAX_PEM_BYTES) throw new IdentityError('malformed', `${what}: ${size} bytes is more than the ${MAX_PEM_BYTES} allowed`);
}

/** Parses one PEM (or DER) certificate, with a size bound and an error naming `what`. */
export function parseCertificate(what: string, pemOrDer: string | Uint8Array): X509.X509Certificate {
  if (typeof pemOrDer === 'string') {
    assertBounded(what, pemOrDer.length);
    if (!pemOrDer.includes('-----BEGIN CERTIFICATE-----')) throw new IdentityError('malformed', `${what}: not a PEM certificate (no BEGIN CERTIFICATE line)`);
  } else {
    assertBounded(what, pemOrDer.byteLength);
  }
  const x509 = x509Library();
  try {
    return new x509.X509Certificate(typeof pemOrDer === 'string' ? pemOrDer : toArrayBuffer(pemOrDer));
  } catch (err) {
    throw new IdentityError('malformed', `${what}: not a valid X.509 certificate (${(err as Error).message})`);
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

/** Joins certificates (a chain, a set of roots) into one PEM bundle OpenSSL reads. */
export function joinPem(pems: readonly string[]): string {
  return pems.map(withFinalNewline).join('');
}

export function withFinalNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
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
