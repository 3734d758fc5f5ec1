// The data-encryption keys (DEKs) that seal Raft storage, wrapped by a key-encryption key (KEK).
//
// Files in <raft data dir>/keys/ (directory 0700, files 0600, written atomically):
//   kek   "TKEK" | u32 version 1 | 32 key bytes. Not used when the KEK is given to open() (the way
//         for a KEK that must not lie beside the data, e.g. one derived from an unlock key).
//   deks  JSON: { format, version, current, next, acceptPlaintext, keys: [{ id, wrapped }], seal },
//         each DEK wrapped by the KEK with its id bound in (sealing.ts wrapKey), so a key cannot be
//         relabelled or moved between keyrings; `seal` authenticates the rest with the KEK, so an
//         edited field (say acceptPlaintext, to slip a plaintext file in) is refused.
//   unlock  with autolock instead of kek: the salt its KEK is derived with from the unlock key
//         (keyring-lock.ts, unlock-key.ts); the KEK itself is then on no disk.
// A DEK's life: made as the first key of a new keyring, or by rotate() as `next`; made current by
// promote() at the next snapshot (disk-storage.ts), from when on new segments and snapshot files
// use it; dropped by retain() once no segment or snapshot file on disk names it.
//
// `acceptPlaintext` is true only while an older version's plaintext log and snapshots are being
// encrypted (a keyring created over existing data): a plaintext file found later is refused.
import { randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeDurableFs, type DurableFs } from './durable-fs.js';
import {
  KEY_BYTES,
  MAX_KEY_ID,
  NONCE_BYTES,
  SEAL_OVERHEAD,
  WRAPPED_KEY_BYTES,
  sealKeyringState,
  unwrapKey,
  verifyKeyringState,
  wrapKey,
  type DataKey,
  type KeyringState,
  type SealingKeys,
} from './sealing.js';

const KEK_MAGIC = 'TKEK';
const KEK_VERSION = 1;
const KEK_FILE_BYTES = 8 + KEY_BYTES;
const KEYRING_FORMAT = 'tessera-raft-keyring';
const KEYRING_VERSION = 1;
/** A keyring file is a few hundred bytes; anything near this is not ours. */
const MAX_KEYRING_BYTES = 1024 * 1024;
/** More DEKs than this at once means retain() is not being called; refuse rather than grow. */
const MAX_KEYS = 1000;

export const KEK_FILE = 'kek';
export const KEYRING_FILE = 'deks';

export class KeyringError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`raft keyring ${path}: ${detail}`);
    this.name = 'KeyringError';
  }
}

/** The keyring file's content, with the keys still wrapped. */
export interface KeyringFile {
  current: number;
  next: number | undefined;
  acceptPlaintext: boolean;
  keys: Array<{ id: number; wrapped: Buffer }>;
  /** sealing.ts sealKeyringState over the rest. */
  seal: Buffer;
}

/** The part of the file its seal covers. */
export function keyringState(f: Omit<KeyringFile, 'seal'>): KeyringState {
  return { current: f.current, next: f.next ?? 0, acceptPlaintext: f.acceptPlaintext, keys: f.keys };
}

const isBase64 = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(v);

const isKeyId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_KEY_ID;

/** Parses and checks a keyring file; pure. */
export function parseKeyringFile(path: string, text: string): KeyringFile {
  const fail = (why: string): never => {
    throw new KeyringError(path, why);
  };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return fail(`not JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null) return fail('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.format !== KEYRING_FORMAT) fail(`format is ${JSON.stringify(o.format)}, expected "${KEYRING_FORMAT}"`);
  if (o.version !== KEYRING_VERSION) fail(`version ${JSON.stringify(o.version)} is not supported`);
  if (!isKeyId(o.current)) fail('current is not a key id');
  if (o.next !== null && !isKeyId(o.next)) fail('next is neither null nor a key id');
  if (typeof o.acceptPlaintext !== 'boolean') fail('acceptPlaintext is not a boolean');
  if (!Array.isArray(o.keys) || o.keys.length === 0 || o.keys.length > MAX_KEYS) fail(`keys is not a list of 1..${MAX_KEYS} keys`);
  const keys: KeyringFile['keys'] = [];
  for (const [i, k] of (o.keys as unknown[]).entries()) {
    const entry = (typeof k === 'object' && k !== null ? k : {}) as Record<string, unknown>;
    if (!isKeyId(entry.id)) fail(`keys[${i}].id is not a key id`);
    if (!isBase64(entry.wrapped)) fail(`keys[${i}].wrapped is not base64`);
    const wrapped = Buffer.from(entry.wrapped as string, 'base64');
    if (wrapped.length !== WRAPPED_KEY_BYTES) fail(`keys[${i}].wrapped is ${wrapped.length} bytes, expected ${WRAPPED_KEY_BYTES}`);
    if (keys.some((x) => x.id === entry.id)) fail(`key ${String(entry.id)} appears twice`);
    keys.push({ id: entry.id as number, wrapped });
  }
  const current = o.current as number;
  const next = o.next === null ? undefined : (o.next as number);
  if (!keys.some((k) => k.id === current)) fail(`the current key ${current} is not in keys`);
  if (next !== undefined && !keys.some((k) => k.id === next)) fail(`the next key ${next} is not in keys`);
  if (!isBase64(o.seal)) fail('seal is not base64');
  const seal = Buffer.from(o.seal as string, 'base64');
  if (seal.length !== SEAL_OVERHEAD) fail(`seal is ${seal.length} bytes, expected ${SEAL_OVERHEAD}`);
  return { current, next, acceptPlaintext: o.acceptPlaintext as boolean, keys, seal };
}

export function formatKeyringFile(f: KeyringFile): string {
  const keys = f.keys.map((k) => ({ id: k.id, wrapped: k.wrapped.toString('base64') }));
  const fields = { format: KEYRING_FORMAT, version: KEYRING_VERSION, current: f.current, next: f.next ?? null, acceptPlaintext: f.acceptPlaintext, keys };
  return `${JSON.stringify({ ...fields, seal: f.seal.toString('base64') }, null, 1)}\n`;
}

export function encodeKekFile(kek: Uint8Array): Buffer {
  const out = Buffer.alloc(KEK_FILE_BYTES);
  out.write(KEK_MAGIC, 0, 'latin1');
  out.writeUInt32LE(KEK_VERSION, 4);
  out.set(kek, 8);
  return out;
}

export function decodeKekFile(path: string, buf: Buffer): Buffer {
  if (buf.length !== KEK_FILE_BYTES) throw new KeyringError(path, `is ${buf.length} bytes, a key-encryption key file is ${KEK_FILE_BYTES}`);
  if (buf.toString('latin1', 0, 4) !== KEK_MAGIC) throw new KeyringError(path, 'is not a key-encryption key file (wrong magic)');
  if (buf.readUInt32LE(4) !== KEK_VERSION) throw new KeyringError(path, `key-encryption key file version ${buf.readUInt32LE(4)} is not supported`);
  return Buffer.from(buf.subarray(8));
}

export interface KeyringOptions {
  fs?: DurableFs;
  /** The KEK, when it does not come from <dir>/kek. */
  kek?: Uint8Array;
  /**
   * Data already lies beside the keyring. A keyring created then accepts plaintext files until
   * finishMigration(); a missing keyring is only created when `encryptedDataExists` is false.
   */
  existingData?: boolean;
  /** Whether some WAL segment or snapshot file on disk is encrypted (then its keyring cannot be made anew); asked only when there is no keyring. */
  encryptedDataExists?: () => Promise<boolean>;
}

/** Refuses a key directory or file that others than its owner may read or enter. */
async function checkPrivate(path: string, what: string): Promise<void> {
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KeyringError(
      path,
      `${what} has mode 0${mode.toString(8)}; it must be reachable by its owner only (chmod ${what === 'directory' ? '700' : '600'} it)`,
    );
  }
}

/** Whether a file is there (any error but ENOENT is thrown, not taken for "no"). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Fresh 96-bit nonces from the CSPRNG, drawn a few hundred at a time: one call per nonce costs about
 * 2 µs, as much as the seal itself. Each nonce is copied out and never handed out twice.
 */
export class NonceSource {
  private readonly pool = Buffer.alloc(NONCE_BYTES * 340);
  private at = Infinity;

  next(): Uint8Array {
    if (this.at + NONCE_BYTES > this.pool.length) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const nonce = Buffer.from(this.pool.subarray(this.at, this.at + NONCE_BYTES));
    this.at += NONCE_BYTES;
    return nonce;
  }
}

export class Keyring implements SealingKeys {
  private constructor(
    private readonly path: string,
    private readonly fs: DurableFs,
    /** Changes only through rewrap() (autolock turned on or off, or its unlock key rotated). */
    private kek: Uint8Array,
    private state: KeyringFile,
    private readonly keys: Map<number, DataKey>,
    /** Made by this open() (no keyring was there). */
    readonly created: boolean,
  ) {}

  /** Nonces handed out by this process: one per seal (the rotation policy counts them, disk-storage.ts). */
  private drawn = 0;
  private readonly nonces = new NonceSource();

  /** Changes run one at a time: each rewrites the file (through one temp file name) from the state before it. */
  private changes: Promise<unknown> = Promise.resolve();

  /** Opens the keyring in `dir`, creating it (and a KEK file, unless a KEK is given) when there is none. */
  static async open(dir: string, options: KeyringOptions = {}): Promise<Keyring> {
    const fs = options.fs ?? nodeDurableFs;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await checkPrivate(dir, 'directory');
    const path = join(dir, KEYRING_FILE);
    const kekPath = join(dir, KEK_FILE);
    if (await exists(path)) {
      await checkPrivate(path, 'file');
      const bytes = await fs.readFile(path);
      if (bytes.length > MAX_KEYRING_BYTES) throw new KeyringError(path, `is ${bytes.length} bytes, more than a keyring can be (${MAX_KEYRING_BYTES})`);
      const file = parseKeyringFile(path, bytes.toString('utf8'));
      if (!options.kek && !(await exists(kekPath))) {
        throw new KeyringError(kekPath, 'the key-encryption key is missing, so the data keys (and the Raft log and snapshots) cannot be decrypted');
      }
      const kek = options.kek ?? (await Keyring.readKek(kekPath, fs));
      const keys = new Map<number, DataKey>();
      try {
        verifyKeyringState(kek, file.seal, keyringState(file));
        for (const k of file.keys) keys.set(k.id, unwrapKey(kek, k.wrapped, k.id));
      } catch (err) {
        throw new KeyringError(path, (err as Error).message);
      }
      return new Keyring(path, fs, kek, file, keys, false);
    }
    if (options.existingData && (await options.encryptedDataExists?.())) {
      throw new KeyringError(path, 'is missing, but the Raft log or snapshots are encrypted: restore the keys directory (a new keyring cannot decrypt them)');
    }
    let kek: Uint8Array;
    if (options.kek) kek = options.kek;
    else if (await exists(kekPath)) kek = await Keyring.readKek(kekPath, fs);
    else {
      kek = randomBytes(KEY_BYTES);
      await fs.writeFileAtomic(kekPath, encodeKekFile(kek));
    }
    if (kek.length !== KEY_BYTES) throw new KeyringError(kekPath, `a key-encryption key is ${KEY_BYTES} bytes, got ${kek.length}`);
    const first: DataKey = { id: 1, key: randomBytes(KEY_BYTES) };
    const state = {
      current: 1,
      next: undefined,
      acceptPlaintext: options.existingData === true,
      keys: [{ id: 1, wrapped: wrapKey(kek, randomBytes(NONCE_BYTES), first) }],
    };
    const keyring = new Keyring(path, fs, kek, { ...state, seal: Buffer.alloc(0) }, new Map([[1, first]]), true);
    await keyring.write(state);
    return keyring;
  }

  /**
   * Whether `kek` opens the keyring in `dir` (its seal verifies): how a locked manager tells the
   * right unlock key from a wrong one before it opens anything. False when there is no keyring.
   */
  static async kekOpens(dir: string, kek: Uint8Array, options: { fs?: DurableFs } = {}): Promise<boolean> {
    const fs = options.fs ?? nodeDurableFs;
    const path = join(dir, KEYRING_FILE);
    if (!(await exists(path))) return false;
    const bytes = await fs.readFile(path);
    if (bytes.length > MAX_KEYRING_BYTES) throw new KeyringError(path, `is ${bytes.length} bytes, more than a keyring can be (${MAX_KEYRING_BYTES})`);
    const file = parseKeyringFile(path, bytes.toString('utf8'));
    try {
      verifyKeyringState(kek, file.seal, keyringState(file));
      return true;
    } catch {
      // A seal that does not verify is the answer, not an error: this is not the keyring's KEK.
      return false;
    }
  }

  private static async readKek(path: string, fs: DurableFs): Promise<Buffer> {
    await checkPrivate(path, 'file');
    return decodeKekFile(path, await fs.readFile(path));
  }

  current(): DataKey {
    return this.keys.get(this.state.current) as DataKey;
  }

  key(id: number): DataKey | undefined {
    return this.keys.get(id);
  }

  nonce(): Uint8Array {
    this.drawn++;
    return this.nonces.next();
  }

  /** How many nonces (seals) this process has drawn. */
  noncesDrawn(): number {
    return this.drawn;
  }

  get acceptPlaintext(): boolean {
    return this.state.acceptPlaintext;
  }

  /** Ids of every key held (current, next and older ones still needed), ascending. */
  ids(): number[] {
    return [...this.keys.keys()].sort((a, b) => a - b);
  }

  /** The key waiting to become current at the next snapshot, if any. */
  nextId(): number | undefined {
    return this.state.next;
  }

  /**
   * Makes a new DEK that becomes current at the next snapshot (promote()). Durable before it
   * returns; a second call before that snapshot returns the same key's id.
   */
  rotate(): Promise<number> {
    return this.change(async () => {
      if (this.state.next !== undefined) return this.state.next;
      const id = Math.max(...this.keys.keys()) + 1;
      if (id > MAX_KEY_ID) throw new KeyringError(this.path, 'key ids are exhausted');
      if (this.keys.size >= MAX_KEYS) throw new KeyringError(this.path, `holds ${this.keys.size} keys already; older ones are still in use`);
      const key: DataKey = { id, key: randomBytes(KEY_BYTES) };
      const wrapped = wrapKey(this.kek, randomBytes(NONCE_BYTES), key);
      // The key is usable (for opening) before the file names it as next; nothing seals with it yet.
      this.keys.set(id, key);
      await this.write({ ...this.state, next: id, keys: [...this.state.keys, { id, wrapped }] });
      return id;
    });
  }

  /** Makes the rotated key current (durably); false when no rotation is waiting. */
  promote(): Promise<boolean> {
    return this.change(async () => {
      if (this.state.next === undefined) return false;
      await this.write({ ...this.state, current: this.state.next, next: undefined });
      return true;
    });
  }

  /** Plaintext files are refused from now on (the older version's files are all encrypted). */
  finishMigration(): Promise<void> {
    return this.change(async () => {
      if (this.state.acceptPlaintext) await this.write({ ...this.state, acceptPlaintext: false });
    });
  }

  /**
   * Drops the keys that are neither current, nor next, nor in `inUse` (the key ids of the files
   * on disk); returns the ids dropped. To be called only once those files are durably gone.
   */
  retain(inUse: ReadonlySet<number>): Promise<number[]> {
    return this.change(async () => {
      const keep = (id: number): boolean => id === this.state.current || id === this.state.next || inUse.has(id);
      const dropped = this.state.keys.filter((k) => !keep(k.id)).map((k) => k.id);
      if (dropped.length === 0) return [];
      await this.write({ ...this.state, keys: this.state.keys.filter((k) => keep(k.id)) });
      for (const id of dropped) {
        this.keys.get(id)?.key.fill(0);
        this.keys.delete(id);
      }
      return dropped;
    });
  }

  /** Whether the keys are wrapped under this KEK now (compared in constant time). */
  wrappedUnder(kek: Uint8Array): boolean {
    return kek.length === this.kek.length && timingSafeEqual(kek, this.kek);
  }

  /**
   * Wraps every DEK, and seals the keyring, under a new KEK: one atomic rewrite of the file, so it
   * is under the old KEK or the new one, never half of each. The DEKs themselves do not change
   * (nothing sealed needs re-sealing). The caller takes care of where the KEK lives (keys/kek, or
   * an unlock key) in an order that survives a crash between the steps (keyring-lock.ts).
   */
  rewrap(kek: Uint8Array): Promise<void> {
    if (kek.length !== KEY_BYTES) return Promise.reject(new KeyringError(this.path, `a key-encryption key is ${KEY_BYTES} bytes, got ${kek.length}`));
    return this.change(async () => {
      const keys = this.state.keys.map((k) => ({ id: k.id, wrapped: wrapKey(kek, randomBytes(NONCE_BYTES), this.keys.get(k.id) as DataKey) }));
      const copy = Buffer.from(kek);
      await this.write({ ...this.state, keys }, copy);
      this.kek = copy;
    });
  }

  private change<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.changes.then(fn);
    // A failed change fails its caller; the next one starts from the state the file still holds.
    this.changes = result.catch(() => undefined);
    return result;
  }

  private async write(next: Omit<KeyringFile, 'seal'>, kek: Uint8Array = this.kek): Promise<void> {
    const file: KeyringFile = { ...next, seal: sealKeyringState(kek, randomBytes(NONCE_BYTES), keyringState(next)) };
    await this.fs.writeFileAtomic(this.path, Buffer.from(formatKeyringFile(file), 'utf8'));
    this.state = file;
  }
}
