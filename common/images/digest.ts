// sha256 digests in the "sha256:<hex>" form OCI uses everywhere.
import { createHash } from 'node:crypto';

const SHA256_DIGEST = /^sha256:([a-f0-9]{64})$/;

export function isSha256Digest(value: string): boolean {
  return SHA256_DIGEST.test(value);
}

/** The hex part of a digest, after checking its form; `what` names the digest in the error. */
export function digestHex(digest: string, what = 'digest'): string {
  const match = SHA256_DIGEST.exec(digest);
  if (!match || match[1] === undefined) {
    throw new Error(`${what} ${JSON.stringify(digest)} is not "sha256:" followed by 64 lowercase hex digits`);
  }
  return match[1];
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class DigestMismatchError extends Error {
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
    this.name = 'DigestMismatchError';
  }
}

export class SizeMismatchError extends Error {
  constructor(
    readonly what: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`${what}: size mismatch: expected ${expected} bytes, got ${actual}${actual > expected ? ' or more' : ''}`);
    this.name = 'SizeMismatchError';
  }
}
