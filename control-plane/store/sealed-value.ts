// A store value sealed with AES-256-GCM (control-plane/raft/storage/sealing.ts) before it leaves
// the manager for an external store (etcd). Pure.
//
// Text form, since the Store contract carries strings: "tsv1:<key id>:<base64 of nonce|ciphertext|tag>".
// Associated data: a domain, the key id and the store key's name, so a value moved to another key
// (or relabelled with another key id) fails to open. The revision is deliberately not in it: a
// value is sealed before the store assigns one, and a compaction or a copy keeps it valid.
import { open, seal, SealOpenError, type DataKey } from '../raft/storage/sealing.js';

const PREFIX = 'tsv1:';
const DOMAIN = Buffer.from('tessera store value v1\0', 'latin1');
/** A sealed value is at most the size of a Raft command (64 MiB) in base64; anything beyond is not ours. */
const MAX_SEALED_CHARS = 96 * 1024 * 1024;

/** A value that did not open: names the store key, never the value. */
export class SealedValueError extends Error {
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`sealed store: the value of ${JSON.stringify(key.slice(0, 200))} ${detail}`);
    this.name = 'SealedValueError';
  }
}

function valueAd(keyId: number, key: string): Buffer {
  const name = Buffer.from(key, 'utf8');
  const ad = Buffer.allocUnsafe(DOMAIN.length + 4 + name.length);
  DOMAIN.copy(ad, 0);
  ad.writeUInt32LE(keyId >>> 0, DOMAIN.length);
  name.copy(ad, DOMAIN.length + 4);
  return ad;
}

export function sealValue(dek: DataKey, nonce: Uint8Array, key: string, value: string): string {
  const sealed = seal(dek.key, nonce, Buffer.from(value, 'utf8'), valueAd(dek.id, key));
  return `${PREFIX}${dek.id}:${sealed.toString('base64')}`;
}

export function isSealedValue(text: string): boolean {
  return text.startsWith(PREFIX);
}

/** The plaintext of a sealed value, once its tag verified for this key name; SealedValueError otherwise. */
export function openValue(keyOf: (id: number) => DataKey | undefined, key: string, text: string): string {
  if (!isSealedValue(text)) throw new SealedValueError(key, 'is not sealed (written to the store by something other than a Tessera manager?)');
  if (text.length > MAX_SEALED_CHARS) throw new SealedValueError(key, `is ${text.length} characters, more than a sealed value can be`);
  const colon = text.indexOf(':', PREFIX.length);
  const idText = colon < 0 ? '' : text.slice(PREFIX.length, colon);
  if (!/^[1-9][0-9]{0,9}$/.test(idText)) throw new SealedValueError(key, 'has no valid key id');
  const id = Number(idText);
  const dek = keyOf(id);
  if (!dek) throw new SealedValueError(key, `was sealed with data key ${id}, which this manager's keyring does not hold`);
  try {
    return open(dek.key, Buffer.from(text.slice(colon + 1), 'base64'), valueAd(id, key)).toString('utf8');
  } catch (err) {
    if (err instanceof SealOpenError) throw new SealedValueError(key, `does not open: ${err.message}`);
    throw err;
  }
}
