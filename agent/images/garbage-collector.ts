// Mark and sweep over the image store: every blob and unpacked layer that no image record leads
// to is deleted. The caller holds the store's write lock, so no pull or load is half-way through
// writing something that would look unreferenced.
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore } from './blob-store.js';
import type { LayerStore } from './layer-store.js';
import { isNotFound } from '../fs-errors.js';
import { imageManifestSchema, parseWith } from './manifest.js';
import type { GcResult, ImageRecord } from '../../common/images/types.js';
import type { BuildCacheStore, BuildPins } from './build-cache.js';

const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;
const HEX64 = /^[a-f0-9]{64}$/;

export interface Marks {
  blobs: Set<string>;
  layers: Set<string>;
  /** Set when some record's manifest could not be read: its layer blobs are unknown, so no blob may go. */
  blobsUnknown: boolean;
  /** Build-cache entries an image record or a build in progress names. */
  cacheKeys: Set<string>;
}

/** The image builder's part of the store: its step cache and what builds in progress hold. */
export interface BuildCacheRoots {
  cache: BuildCacheStore;
  pins: Iterable<BuildPins>;
}

/** What the records refer to: manifests, indexes, configs, layer blobs (via manifests), diff-ids. */
export async function markReferenced(records: ImageRecord[], blobs: BlobStore, log: (message: string) => void, build?: BuildCacheRoots): Promise<Marks> {
  const marks: Marks = { blobs: new Set(), layers: new Set(), blobsUnknown: false, cacheKeys: new Set() };
  if (build) await markBuildCache(records, build, marks, log);
  const manifestsRead = new Set<string>();
  for (const record of records) {
    marks.blobs.add(record.digest);
    if (record.indexDigest !== undefined) marks.blobs.add(record.indexDigest);
    marks.blobs.add(record.configDigest);
    for (const diffId of record.layers) marks.layers.add(diffId);
    if (manifestsRead.has(record.digest)) continue;
    manifestsRead.add(record.digest);
    try {
      const what = `manifest of ${record.reference}`;
      const manifest = parseWith(imageManifestSchema, await blobs.readBytes(record.digest, MAX_MANIFEST_BYTES, what), what);
      marks.blobs.add(manifest.config.digest);
      for (const layer of manifest.layers) marks.blobs.add(layer.digest);
    } catch (error) {
      marks.blobsUnknown = true;
      log(`image gc: keeping every blob: cannot read the manifest of ${record.reference}: ${(error as Error).message}`);
    }
  }
  return marks;
}

/**
 * Build-cache entries named by records or pinned by running builds, and the layer blobs and
 * unpacked layers they hold (the intermediate stages of a multi-stage build are only held so).
 */
async function markBuildCache(records: ImageRecord[], build: BuildCacheRoots, marks: Marks, log: (message: string) => void): Promise<void> {
  for (const record of records) for (const key of record.buildCacheKeys ?? []) marks.cacheKeys.add(key);
  for (const pins of build.pins) {
    for (const key of pins.cacheKeys) marks.cacheKeys.add(key);
    for (const digest of pins.blobs) marks.blobs.add(digest);
    for (const diffId of pins.layers) marks.layers.add(diffId);
  }
  for (const key of marks.cacheKeys) {
    const entry = await build.cache.get(key, log);
    if (entry?.layer === undefined) continue;
    marks.blobs.add(entry.layer.digest);
    marks.layers.add(entry.layer.diffId);
  }
}

export async function sweep(marks: Marks, blobs: BlobStore, layers: LayerStore, cache?: BuildCacheStore): Promise<GcResult> {
  const result: GcResult = { blobsRemoved: 0, layersRemoved: 0, bytesFreed: 0 };
  if (cache) {
    for (const key of await cache.keys()) if (!marks.cacheKeys.has(key)) await cache.remove(key);
  }
  if (!marks.blobsUnknown) {
    for (const hex of await listHex(blobs.blobsDir)) {
      if (marks.blobs.has(`sha256:${hex}`)) continue;
      const path = join(blobs.blobsDir, hex);
      result.bytesFreed += await sizeOf(path);
      await rm(path, { force: true });
      result.blobsRemoved++;
    }
  }
  for (const hex of await listHex(layers.layersDir)) {
    if (marks.layers.has(`sha256:${hex}`)) continue;
    const path = join(layers.layersDir, hex);
    result.bytesFreed += await sizeOf(path);
    await rm(path, { recursive: true, force: true });
    result.layersRemoved++;
  }
  return result;
}

/** Entries named like a sha256 hex digest; anything else in these directories is not ours to judge. */
async function listHex(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => HEX64.test(name));
  } catch (error) {
    if (isNotFound(error)) return []; // not made yet: nothing stored there
    throw error;
  }
}

/** Bytes in a file or a directory tree (not following symlinks). */
export async function sizeOf(path: string): Promise<number> {
  let info;
  try {
    info = await lstat(path);
  } catch (error) {
    if (isNotFound(error)) return 0; // removed meanwhile: it frees nothing more
    throw error;
  }
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of await readdir(path)) total += await sizeOf(join(path, name));
  return total;
}
