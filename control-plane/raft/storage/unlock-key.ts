// Autolock's unlock key and the key-encryption key (KEK) derived from it. Pure.
//
// An unlock key is `TSUK-1-<52 base32 characters>`: 32 bytes from the CSPRNG, in RFC 4648 base32
// (lowercase, unpadded; the 4 bits the last character has to spare must be zero, so every key has
// one spelling). It is shown once to whoever turns autolock on or rotates the key, and kept in the
// replicated store (sealed at rest) so that every manager can re-wrap its keyring under it.
//
// KEK = HKDF-SHA256(ikm = the 32 key bytes, salt = 32 random bytes kept beside the keyring,
// info = KEK_INFO). No password hashing (scrypt, Argon2) is needed: a work factor only helps a
// secret that could be guessed, and 256 bits from the CSPRNG cannot be; HKDF (RFC 5869) is the
// standard way to turn a uniformly random secret into a key for one purpose. The salt is per
// manager, so each manager's KEK differs although they share the unlock key; it is not secret.
import { hkdfSync, randomBytes } from 'node:crypto';

export const UNLOCK_KEY_PREFIX = 'TSUK';
export const UNLOCK_KEY_VERSION = '1';
export const UNLOCK_KEY_BYTES = 32;
export const KEK_SALT_BYTES = 32;
const KEK_BYTES = 32;
const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** ceil(32 * 8 / 5) */
const ENCODED_LENGTH = Math.ceil((UNLOCK_KEY_BYTES * 8) / 5);
/** A key is 59 characters; a longer input is refused before it is looked at further. */
const MAX_INPUT_LENGTH = 256;
/** Binds the derived key to this one use (and version of the scheme). */
const KEK_INFO = 'tessera raft keyring key-encryption key v1';

export class UnlockKeyError extends Error {
  constructor(message: string) {
    // Never the key itself: it must not reach a log.
    super(`unlock key: ${message}`);
    this.name = 'UnlockKeyError';
  }
}

export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes lowercase unpadded base32; undefined for a character outside the alphabet or nonzero spare bits. */
export function base32Decode(text: string): Buffer | undefined {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const digit = BASE32_ALPHABET.indexOf(ch);
    if (digit < 0) return undefined;
    value = (value << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
    value &= (1 << bits) - 1;
  }
  if (value !== 0) return undefined;
  return Buffer.from(out);
}

export function formatUnlockKey(bytes: Uint8Array): string {
  if (bytes.length !== UNLOCK_KEY_BYTES) throw new UnlockKeyError(`is ${UNLOCK_KEY_BYTES} bytes, got ${bytes.length}`);
  return `${UNLOCK_KEY_PREFIX}-${UNLOCK_KEY_VERSION}-${base32Encode(bytes)}`;
}

/** A fresh key, as its text. */
export function newUnlockKey(): string {
  return formatUnlockKey(randomBytes(UNLOCK_KEY_BYTES));
}

/** The key's 32 bytes from its text (surrounding whitespace, e.g. a file's newline, is dropped). Errors never quote the input. */
export function parseUnlockKey(text: string): Buffer {
  if (text.length > MAX_INPUT_LENGTH) throw new UnlockKeyError(`${text.length} characters is longer than any unlock key`);
  const fields = text.trim().split('-');
  if (fields.length !== 3) throw new UnlockKeyError(`expected ${UNLOCK_KEY_PREFIX}-${UNLOCK_KEY_VERSION}-<key>, found ${fields.length} '-'-separated fields`);
  const [prefix, version, encoded] = fields as [string, string, string];
  if (prefix !== UNLOCK_KEY_PREFIX) throw new UnlockKeyError(`a Tessera unlock key starts with ${UNLOCK_KEY_PREFIX}-`);
  if (version !== UNLOCK_KEY_VERSION) throw new UnlockKeyError(`version ${version.length <= 8 ? JSON.stringify(version) : '(long)'} is not supported`);
  if (encoded.length !== ENCODED_LENGTH) throw new UnlockKeyError(`the key part is ${encoded.length} characters, expected ${ENCODED_LENGTH}`);
  const bytes = base32Decode(encoded);
  if (!bytes) throw new UnlockKeyError('the key part is not lowercase base32 (a-z, 2-7)');
  return bytes;
}

/** The KEK a manager's keyring is wrapped under, from the unlock key's bytes and that manager's salt. */
export function deriveKek(unlockKey: Uint8Array, salt: Uint8Array): Buffer {
  if (unlockKey.length !== UNLOCK_KEY_BYTES) throw new UnlockKeyError(`is ${UNLOCK_KEY_BYTES} bytes, got ${unlockKey.length}`);
  if (salt.length !== KEK_SALT_BYTES) throw new RangeError(`unlock key: a salt is ${KEK_SALT_BYTES} bytes, got ${salt.length}`);
  return Buffer.from(hkdfSync('sha256', unlockKey, salt, KEK_INFO, KEK_BYTES));
}
