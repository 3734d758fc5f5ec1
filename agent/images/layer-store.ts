// Unpacked layers under <root>/layers/<diff-id hex>/, each unpacked once and shared by every
// image that has it. A layer directory is renamed into place only after its diff-id checked out,
// so one that exists is complete.
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore } from './blob-store.js';
import { isNotFound } from '../fs-errors.js';
import { DigestMismatchError, digestHex } from '../../common/images/digest.js';
import { unpackLayer } from './layer-unpack.js';

export class LayerStore {
  readonly layersDir: string;
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(
    root: string,
    private readonly blobs: BlobStore,
    private readonly log: (message: string) => void = () => undefined,
  ) {
    this.layersDir = join(root, 'layers');
  }

  dir(diffId: string): string {
    return join(this.layersDir, digestHex(diffId, 'layer diff-id'));
  }

  async has(diffId: string): Promise<boolean> {
    try {
      return (await stat(this.dir(diffId))).isDirectory();
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /**
   * Returns the unpacked directory of the layer with `diffId`; when missing, `blobDigest` is
   * obtained through `fetchBlob` (a no-op if the blob is stored) and unpacked.
   */
  ensure(diffId: string, blobDigest: string, fetchBlob: () => Promise<void>, what: string): Promise<string> {
    const existing = this.inFlight.get(diffId);
    if (existing) return existing;
    const work = this.ensureOnce(diffId, blobDigest, fetchBlob, what).finally(() => this.inFlight.delete(diffId));
    this.inFlight.set(diffId, work);
    return work;
  }

  private async ensureOnce(diffId: string, blobDigest: string, fetchBlob: () => Promise<void>, what: string): Promise<string> {
    const finalDir = this.dir(diffId);
    if (await this.has(diffId)) return finalDir;
    await fetchBlob();
    await mkdir(this.layersDir, { recursive: true });
    const temp = await this.blobs.tempPath('layer');
    await mkdir(temp, { mode: 0o755 });
    try {
      await chmod(temp, 0o755);
      const result = await unpackLayer(this.blobs.path(blobDigest), temp, what);
      if (result.diffId !== diffId) throw new DigestMismatchError(`${what} (uncompressed, against the config's rootfs.diff_ids)`, diffId, result.diffId);
      for (const note of result.notes) this.log(`${what}: ${note}`);
      try {
        await rename(temp, finalDir);
      } catch (error) {
        // Another process unpacked the same layer first; its copy is as good as ours.
        const code = (error as NodeJS.ErrnoException).code;
        if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await this.has(diffId))) await rm(temp, { recursive: true, force: true });
        else throw error;
      }
      return finalDir;
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
  }
}
