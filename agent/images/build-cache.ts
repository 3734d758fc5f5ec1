// The image builder's step cache, kept with the image store so one garbage collection covers both:
//
//   <root>/build-cache/<key hex>.json   what one build step produced: its layer (or none, for a
//                                       step that only changes the config), the image config after
//                                       it, and its history entry
//
// An entry is written to a temporary file and renamed, so one that exists is complete. Entries
// live while an image record names them (ImageRecord.buildCacheKeys) or a build in progress holds
// them (BuildPins); the collector removes the others with the blobs and layers only they kept.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { digestHex } from '../../common/images/digest.js';
import { isNotFound } from '../fs-errors.js';

const digestSchema = z.string().regex(/^sha256:[a-f0-9]{64}$/);
const MAX_ENTRY_BYTES = 1024 * 1024;

const entrySchema = z.object({
  key: digestSchema,
  layer: z.object({ diffId: digestSchema, digest: digestSchema, size: z.number().int().nonnegative(), mediaType: z.string() }).optional(),
  /** The OCI image config after the step (without rootfs and history, which the build assembles). */
  config: z.record(z.string(), z.unknown()),
  history: z.object({ created_by: z.string(), empty_layer: z.boolean().optional(), comment: z.string().optional() }),
  createdAt: z.string(),
});
export type BuildCacheEntry = z.infer<typeof entrySchema>;

/** What a build in progress uses; the collector keeps it although no image record names it yet. */
export class BuildPins {
  readonly blobs = new Set<string>();
  readonly layers = new Set<string>();
  readonly cacheKeys = new Set<string>();
}

export class BuildCacheStore {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'build-cache');
  }

  private file(key: string): string {
    return join(this.dir, `${digestHex(key, 'build cache key')}.json`);
  }

  /** The entry, or undefined when there is none; a damaged entry is a miss too (it is rewritten), and said so through `log`. */
  async get(key: string, log: (message: string) => void): Promise<BuildCacheEntry | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file(key));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    if (bytes.length > MAX_ENTRY_BYTES) {
      log(`build cache entry ${key} is ${bytes.length} bytes, over the limit of ${MAX_ENTRY_BYTES}: ignored`);
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      log(`build cache entry ${key} is not JSON (${(error as Error).message}): ignored`);
      return undefined;
    }
    const parsed = entrySchema.safeParse(json);
    if (!parsed.success || parsed.data.key !== key) {
      log(`build cache entry ${key} is damaged: ignored`);
      return undefined;
    }
    return parsed.data;
  }

  async put(entry: BuildCacheEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    await writeFile(temp, JSON.stringify(entry), { mode: 0o644 });
    await rename(temp, this.file(entry.key));
  }

  /** Keys of every stored entry. */
  async keys(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (isNotFound(error)) return []; // no build ever ran here
      throw error;
    }
    return names.flatMap((name) => {
      const hex = /^([a-f0-9]{64})\.json$/.exec(name)?.[1];
      return hex === undefined ? [] : [`sha256:${hex}`];
    });
  }

  async remove(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }
}
