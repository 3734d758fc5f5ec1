// Content-addressed blobs under <root>/blobs/sha256/<hex>. Every blob is written to a temporary
// file, hashed on the way in and renamed into place only when digest and size match, so a blob
// file that exists is always complete and correct.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DigestMismatchError, SizeMismatchError, digestHex, sha256Digest } from '../../common/images/digest.js';
import { isNotFound } from '../fs-errors.js';

export interface ExpectedBlob {
  digest: string;
  /** Exact size in bytes when known (from a descriptor). */
  size?: number;
}

export class BlobStore {
  readonly blobsDir: string;
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.tmpDir = join(root, 'tmp');
  }

  path(digest: string): string {
    return join(this.blobsDir, digestHex(digest, 'blob digest'));
  }

  async has(digest: string, size?: number): Promise<boolean> {
    try {
      const info = await stat(this.path(digest));
      return info.isFile() && (size === undefined || info.size === size);
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** A unique path in the store's temp dir, on the same filesystem as the blobs (for rename). */
  async tempPath(prefix: string): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    return join(this.tmpDir, `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * Removes work left in the temp dir by processes that are gone (a crash mid-pull); entries of
   * live processes, this one's included, are left alone.
   */
  async removeStaleTemp(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch (error) {
      if (isNotFound(error)) return; // no temp dir: nothing was ever left there
      throw error;
    }
    for (const name of names) {
      const pid = Number(/^[a-z]+-(\d+)-[0-9a-f]+$/.exec(name)?.[1]);
      if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
      await rm(join(this.tmpDir, name), { recursive: true, force: true });
    }
  }

  /**
   * Streams `source` into the store, checking digest and size. `what` names the blob in errors
   * (e.g. "layer sha256:… of 127.0.0.1:5000/busybox").
   */
  async ingest(expected: ExpectedBlob, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, what: string): Promise<string> {
    const finalPath = this.path(expected.digest);
    await mkdir(this.blobsDir, { recursive: true });
    const temp = await this.tempPath('blob');
    const hash = createHash('sha256');
    let size = 0;
    const file = await open(temp, 'wx', 0o644);
    try {
      for await (const chunk of source) {
        size += chunk.byteLength;
        // Stop as soon as a registry sends more than it declared instead of filling the disk.
        if (expected.size !== undefined && size > expected.size) throw new SizeMismatchError(what, expected.size, size);
        hash.update(chunk);
        await file.write(chunk);
      }
      if (expected.size !== undefined && size !== expected.size) throw new SizeMismatchError(what, expected.size, size);
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== expected.digest) throw new DigestMismatchError(what, expected.digest, actual);
      await file.sync();
    } catch (error) {
      // The write failed already (that error is what the caller gets); a close failing after it
      // adds nothing, and the temp file is removed either way.
      await file.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    await file.close();
    await rename(temp, finalPath);
    return finalPath;
  }

  /**
   * Stores a blob whose digest is not known in advance (files of a `docker save` archive);
   * returns the digest and size it turned out to have.
   */
  async ingestComputingDigest(source: AsyncIterable<Uint8Array>, what: string): Promise<{ digest: string; size: number }> {
    await mkdir(this.blobsDir, { recursive: true });
    const temp = await this.tempPath('blob');
    const hash = createHash('sha256');
    let size = 0;
    const file = await open(temp, 'wx', 0o644);
    try {
      for await (const chunk of source) {
        size += chunk.byteLength;
        hash.update(chunk);
        await file.write(chunk);
      }
      await file.sync();
      await file.close();
    } catch (error) {
      // As in ingest: the write's error is the one that matters; the temp file goes either way.
      await file.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw new Error(`${what}: ${(error as Error).message}`);
    }
    const digest = `sha256:${hash.digest('hex')}`;
    await rename(temp, this.path(digest));
    return { digest, size };
  }

  /** Stores a small blob held in memory; returns its digest. */
  async putBytes(bytes: Uint8Array, expected?: ExpectedBlob, what = 'blob'): Promise<string> {
    const digest = sha256Digest(bytes);
    const want: ExpectedBlob = expected ?? { digest, size: bytes.byteLength };
    if (await this.has(want.digest, want.size)) {
      if (digest !== want.digest) throw new DigestMismatchError(what, want.digest, digest);
      return digest;
    }
    await this.ingest(want, [bytes], what);
    return digest;
  }

  /**
   * Moves a file this process wrote into its temp dir (a built layer, hashed while it was written)
   * into the store under `digest`, by rename; when the store has that blob already the file goes.
   */
  async adopt(tempFile: string, digest: string): Promise<string> {
    const finalPath = this.path(digest);
    if (await this.has(digest)) {
      await rm(tempFile, { force: true });
      return finalPath;
    }
    await mkdir(this.blobsDir, { recursive: true });
    await rename(tempFile, finalPath);
    return finalPath;
  }

  /** Copies a file into the store after checking it against `expected`. */
  async importFile(filePath: string, expected: ExpectedBlob, what: string): Promise<string> {
    if (await this.has(expected.digest, expected.size)) return this.path(expected.digest);
    return this.ingest(expected, createReadStream(filePath), what);
  }

  async readBytes(digest: string, maxSize: number, what: string): Promise<Buffer> {
    const path = this.path(digest);
    const info = await stat(path);
    if (info.size > maxSize) throw new Error(`${what}: ${info.size} bytes is larger than the limit of ${maxSize}`);
    return readFile(path);
  }

  /** Copies a stored blob out (used when exporting layouts). */
  async copyTo(digest: string, destination: string): Promise<void> {
    await copyFile(this.path(digest), destination);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
