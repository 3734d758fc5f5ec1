// The data keys (DEKs) that seal store values in an external store (etcd), kept in that store
// itself so that every manager sharing it seals and opens with the same keys. Each DEK is wrapped
// by the cluster's store KEK, which never enters the store: every manager holds it in
// <data-root>/etcd-keys/kek (0600, directory 0700; the first manager makes it, a manager that joins
// fetches it over mutual TLS with NodeCA.StoreKey). The layout is the Raft keyring's
// (raft/storage/keyring.ts: wrapped keys with their ids bound in, and a seal by the KEK over the
// whole state), as one value at KEYRING_KEY instead of a file.
//
// KEYRING_KEY lies outside /tessera/ on purpose: nothing ranges over it, and the sealed wrapper
// refuses to touch it (sealed-store.ts).
import { randomBytes } from 'node:crypto';
import { formatKeyringFile, keyringState, NonceSource, parseKeyringFile, type KeyringFile } from '../raft/storage/keyring.js';
import { KEY_BYTES, NONCE_BYTES, sealKeyringState, unwrapKey, verifyKeyringState, wrapKey, type DataKey, type SealingKeys } from '../raft/storage/sealing.js';
import type { Store } from './store.js';

export const KEYRING_KEY = '/.tessera-sealing/deks';
/** Keys under this prefix are the keyring's; the sealed wrapper neither seals nor shows them. */
export const SEALING_PREFIX = '/.tessera-sealing/';
const MAX_KEYRING_CHARS = 1024 * 1024;

export class StoreKeyringError extends Error {
  constructor(detail: string) {
    super(`store keyring ${KEYRING_KEY}: ${detail}`);
    this.name = 'StoreKeyringError';
  }
}

export class StoreKeyring implements SealingKeys {
  private readonly nonces = new NonceSource();

  private constructor(
    private readonly keys: Map<number, DataKey>,
    private state: KeyringFile,
    /** The store held no keyring: this manager made it (its values, if any, are plaintext to migrate). */
    readonly created: boolean,
  ) {}

  /**
   * Reads the keyring from `store` and unwraps its keys with `kek`, or creates it when the store has
   * none (a compare-and-swap: of managers racing, one keyring wins and the others read it).
   * `existingData`: the store already holds values; a keyring created then accepts them in
   * plaintext until finishMigration().
   */
  static async open(store: Store, kek: Uint8Array, existingData: () => Promise<boolean>): Promise<StoreKeyring> {
    if (kek.length !== KEY_BYTES) throw new StoreKeyringError(`the store key is ${kek.length} bytes, expected ${KEY_BYTES}`);
    for (let attempt = 0; attempt < 5; attempt++) {
      const kv = await store.get(KEYRING_KEY);
      if (kv) return StoreKeyring.read(kv.value, kek);
      const first: DataKey = { id: 1, key: randomBytes(KEY_BYTES) };
      const state = {
        current: 1,
        next: undefined,
        acceptPlaintext: await existingData(),
        keys: [{ id: 1, wrapped: wrapKey(kek, randomBytes(NONCE_BYTES), first) }],
      };
      const file: KeyringFile = { ...state, seal: sealKeyringState(kek, randomBytes(NONCE_BYTES), keyringState(state)) };
      const written = await store.txn({
        compare: [{ key: KEYRING_KEY, target: 'createRevision', op: '=', value: 0 }],
        success: [{ type: 'put', key: KEYRING_KEY, value: formatKeyringFile(file) }],
        failure: [],
      });
      if (written.succeeded) return new StoreKeyring(new Map([[1, first]]), file, true);
    }
    throw new StoreKeyringError('could not be created or read (it kept changing)');
  }

  private static read(text: string, kek: Uint8Array): StoreKeyring {
    if (text.length > MAX_KEYRING_CHARS) throw new StoreKeyringError(`is ${text.length} characters, more than a keyring can be`);
    let file: KeyringFile;
    try {
      file = parseKeyringFile(KEYRING_KEY, text);
    } catch (err) {
      throw new StoreKeyringError((err as Error).message);
    }
    const keys = new Map<number, DataKey>();
    try {
      verifyKeyringState(kek, file.seal, keyringState(file));
      for (const k of file.keys) keys.set(k.id, unwrapKey(kek, k.wrapped, k.id));
    } catch (err) {
      throw new StoreKeyringError(
        `${(err as Error).message}: this manager's store key (etcd-keys/kek) is not this cluster's, or the keyring in the store was altered`,
      );
    }
    return new StoreKeyring(keys, file, false);
  }

  current(): DataKey {
    return this.keys.get(this.state.current) as DataKey;
  }

  key(id: number): DataKey | undefined {
    return this.keys.get(id);
  }

  nonce(): Uint8Array {
    return this.nonces.next();
  }

  get acceptPlaintext(): boolean {
    return this.state.acceptPlaintext;
  }

  /** Plaintext values are refused from now on (every older one is sealed); written to the store, CAS on the keyring. */
  async finishMigration(store: Store, kek: Uint8Array): Promise<void> {
    if (!this.state.acceptPlaintext) return;
    const kv = await store.get(KEYRING_KEY);
    if (!kv) throw new StoreKeyringError('vanished from the store');
    const next = { ...parseKeyringFile(KEYRING_KEY, kv.value), acceptPlaintext: false };
    const file: KeyringFile = { ...next, seal: sealKeyringState(kek, randomBytes(NONCE_BYTES), keyringState(next)) };
    await store.txn({
      compare: [{ key: KEYRING_KEY, target: 'modRevision', op: '=', value: kv.modRevision }],
      success: [{ type: 'put', key: KEYRING_KEY, value: formatKeyringFile(file) }],
      failure: [],
    });
    // Whether this write or another manager's won, the state here refuses plaintext from now on.
    this.state = { ...this.state, acceptPlaintext: false };
  }
}
