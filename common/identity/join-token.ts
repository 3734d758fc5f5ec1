// Join tokens: TSJT-1-<CA digest>-<secret>. The digest pins the cluster root CA, so a joining node
// can refuse an impostor manager before sending anything; the secret proves to the manager that
// the joiner was given the token. Neither part is ever echoed in an error: tokens are not logged.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { caDigest } from './certificate.js';
import { isSelfSignedRoot, isSignedBy, MAX_INTERMEDIATES } from './chain.js';
import { parseCertificate } from './x509.js';

export const JOIN_TOKEN_PREFIX = 'TSJT';
export const JOIN_TOKEN_VERSION = '1';

/** RFC 4648 base32 in lowercase: no '-' (the field separator), no look-alike case pairs. */
export const JOIN_SECRET_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** 26 characters of 5 bits each: 130 bits from the CSPRNG. */
export const JOIN_SECRET_LENGTH = 26;
const CA_DIGEST_LENGTH = 64;
/** A token is about 100 characters; anything much longer is refused before it is split. */
const MAX_TOKEN_LENGTH = 256;

export interface JoinToken {
  /** sha256 of the root CA certificate's DER, lowercase hex. */
  caDigest: string;
  secret: string;
}

export class JoinTokenError extends Error {
  constructor(message: string) {
    super(`join token: ${message}`);
    this.name = 'JoinTokenError';
  }
}

export function generateJoinSecret(): string {
  // 256 is a multiple of 32, so taking the low 5 bits of each byte is uniform over the alphabet.
  const bytes = randomBytes(JOIN_SECRET_LENGTH);
  let secret = '';
  for (const byte of bytes) secret += JOIN_SECRET_ALPHABET[byte & 31];
  return secret;
}

export function formatJoinToken(token: JoinToken): string {
  checkDigest(token.caDigest);
  checkSecret(token.secret);
  return `${JOIN_TOKEN_PREFIX}-${JOIN_TOKEN_VERSION}-${token.caDigest}-${token.secret}`;
}

/** A fresh token for the CA whose root certificate is `rootCertPem`. */
export function newJoinToken(rootCertPem: string): { token: string; parsed: JoinToken } {
  const parsed = { caDigest: caDigest(rootCertPem), secret: generateJoinSecret() };
  return { token: formatJoinToken(parsed), parsed };
}

/** Parses a token read from a file, stdin or the environment (surrounding whitespace is dropped). */
export function parseJoinToken(text: string): JoinToken {
  if (text.length > MAX_TOKEN_LENGTH) throw new JoinTokenError(`${text.length} characters is longer than any token (at most ${MAX_TOKEN_LENGTH})`);
  const fields = text.trim().split('-');
  if (fields.length !== 4) throw new JoinTokenError(`expected 4 fields TSJT-1-<CA digest>-<secret> separated by '-', found ${fields.length}`);
  const [prefix, version, digest, secret] = fields as [string, string, string, string];
  if (prefix !== JOIN_TOKEN_PREFIX) throw new JoinTokenError(`bad prefix: a Tessera join token starts with ${JOIN_TOKEN_PREFIX}-`);
  if (version !== JOIN_TOKEN_VERSION) {
    // The version is a short public field, safe to show; it is cut to keep the message bounded.
    throw new JoinTokenError(`unsupported version "${version.slice(0, 8)}": this tsd understands version ${JOIN_TOKEN_VERSION}`);
  }
  checkDigest(digest);
  checkSecret(secret);
  return { caDigest: digest, secret };
}

function checkDigest(digest: string): void {
  if (digest.length !== CA_DIGEST_LENGTH) throw new JoinTokenError(`CA digest has ${digest.length} characters, expected ${CA_DIGEST_LENGTH} (sha256 in hex)`);
  if (!/^[0-9a-f]+$/.test(digest)) throw new JoinTokenError('CA digest has characters other than lowercase hex 0-9a-f');
}

function checkSecret(secret: string): void {
  if (secret.length !== JOIN_SECRET_LENGTH) throw new JoinTokenError(`secret has ${secret.length} characters, expected ${JOIN_SECRET_LENGTH}`);
  for (const char of secret) {
    if (!JOIN_SECRET_ALPHABET.includes(char)) throw new JoinTokenError(`secret has a character outside the token alphabet (${JOIN_SECRET_ALPHABET})`);
  }
}

/**
 * What the store keeps instead of the secret. SHA-256, not scrypt: a slow hash protects secrets a
 * human chose, which can be guessed; this one carries 130 bits from the CSPRNG, so a stolen hash
 * cannot be reversed by guessing at any hash speed, and a fast hash keeps every join attempt cheap
 * for the manager (scrypt would hand anyone who can reach the port a CPU and memory lever). The
 * prefix separates this use of SHA-256 from any other.
 */
export function hashJoinSecret(secret: string): string {
  checkSecret(secret);
  return `sha256:${createHash('sha256').update(`tessera-join-secret-v1:${secret}`).digest('hex')}`;
}

/** Compares a presented secret with a stored hash in time independent of where they differ. */
export function joinSecretMatches(presentedSecret: string, storedHash: string): boolean {
  let presented: string;
  try {
    presented = hashJoinSecret(presentedSecret);
  } catch (err) {
    // A malformed secret cannot match any stored hash; the caller only needs the answer.
    if (err instanceof JoinTokenError) return false;
    throw err;
  }
  const a = Buffer.from(presented);
  const b = Buffer.from(storedHash);
  // Both are "sha256:" + 64 hex when the stored hash is well formed; a length difference says
  // nothing about the secret.
  return a.length === b.length && timingSafeEqual(a, b);
}

export type PinResult = { ok: true } | { ok: false; reason: string };

/**
 * Checks, before a joining node sends its token, that the chain a manager presented in the TLS
 * handshake ends in the root the token pins. The chain is leaf first, root last; every link must be
 * signed by the next, otherwise an impostor could present its own leaf followed by the (public)
 * real root. The handshake has already proved that the manager holds the leaf's key.
 */
export async function pinnedCaMatches(token: string | JoinToken, presentedChainPems: readonly string[]): Promise<PinResult> {
  const pinned = typeof token === 'string' ? parseJoinToken(token) : token;
  if (presentedChainPems.length === 0) return { ok: false, reason: 'the manager presented no certificate' };
  // The leaf, at most MAX_INTERMEDIATES intermediates, and the root.
  if (presentedChainPems.length > MAX_INTERMEDIATES + 2)
    return { ok: false, reason: `the manager presented ${presentedChainPems.length} certificates, more than a Tessera chain holds` };
  const chain = presentedChainPems.map((pem, index) => parseCertificate(`presented certificate #${index}`, pem));
  const root = chain[chain.length - 1];
  if (root === undefined || !(await isSelfSignedRoot(root))) {
    return { ok: false, reason: 'the presented chain does not end in a self-signed root certificate' };
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i];
    const issuer = chain[i + 1];
    if (cert && issuer && !(await isSignedBy(cert, issuer))) {
      return { ok: false, reason: `presented certificate #${i} (${cert.subject}) is not signed by the next one (${issuer.subject})` };
    }
  }
  const presentedDigest = caDigest(presentedChainPems[presentedChainPems.length - 1] ?? '');
  if (presentedDigest !== pinned.caDigest) {
    return {
      ok: false,
      reason: `the manager's root CA has digest ${presentedDigest}, the join token pins ${pinned.caDigest}: this is not the cluster the token belongs to`,
    };
  }
  return { ok: true };
}
