// Reading image archives: an OCI image layout (oci-layout, index.json, blobs/) or a `docker save`
// archive (manifest.json with Config, RepoTags, Layers), already extracted to a directory. Every
// blob is copied into the blob store and checked against its digest on the way.
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { extract } from 'tar';
import { z } from 'zod';
import type { BlobStore } from './blob-store.js';
import { isNotFound } from '../fs-errors.js';
import { INDEX_TYPES, MANIFEST_TYPES, OCI_CONFIG, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, OCI_MANIFEST } from './media-types.js';
import {
  type Descriptor,
  type ImageManifest,
  type Platform,
  InvalidDocumentError,
  imageIndexSchema,
  imageManifestSchema,
  parseWith,
  selectManifest,
} from './manifest.js';
import { normaliseReference } from '../../common/images/reference.js';

export interface ArchiveImage {
  /** Normalised references the archive names this image by (may be empty: untagged). */
  references: string[];
  manifestDigest: string;
  manifest: ImageManifest;
  /** Digest of the multi-platform index the manifest was chosen from, if any. */
  indexDigest?: string;
}

const MAX_JSON_BYTES = 8 * 1024 * 1024;
const ARCHIVE_ENTRY_TYPES: readonly string[] = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink'];

/** Extracts an archive (optionally gzip-compressed) with tar's own `..` and absolute-path guards on. */
export async function extractArchive(tarballPath: string, dir: string): Promise<void> {
  try {
    await extract({
      file: tarballPath,
      cwd: dir,
      strict: true,
      preserveOwner: false,
      filter: (_path, entry) => !('type' in entry) || ARCHIVE_ENTRY_TYPES.includes(entry.type),
    });
  } catch (error) {
    throw new Error(`${tarballPath}: cannot extract image archive: ${(error as Error).message}`);
  }
}

/** Reads whichever archive format `dir` holds. */
export async function readArchive(dir: string, blobs: BlobStore, platform: Platform, what: string): Promise<ArchiveImage[]> {
  if ((await exists(join(dir, 'oci-layout'))) && (await exists(join(dir, 'index.json')))) {
    return readOciLayout(dir, blobs, platform, what);
  }
  if (await exists(join(dir, 'manifest.json'))) return readDockerArchive(dir, blobs, what);
  throw new Error(`${what}: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)`);
}

const ociLayoutFileSchema = z.object({ imageLayoutVersion: z.string() });

export async function readOciLayout(dir: string, blobs: BlobStore, platform: Platform, what: string): Promise<ArchiveImage[]> {
  const layout = parseWith(ociLayoutFileSchema, await readSmall(dir, 'oci-layout', what), `${what}: oci-layout`);
  if (!layout.imageLayoutVersion.startsWith('1.')) {
    throw new InvalidDocumentError(`${what}: oci-layout`, `unsupported imageLayoutVersion ${JSON.stringify(layout.imageLayoutVersion)}`);
  }
  const index = parseWith(imageIndexSchema, await readSmall(dir, 'index.json', what), `${what}: index.json`);
  const importBlob = async (d: Descriptor): Promise<void> => {
    const path = await safePath(dir, `blobs/sha256/${d.digest.slice('sha256:'.length)}`, what);
    await blobs.importFile(path, { digest: d.digest, size: d.size }, `${what}: blob ${d.digest}`);
  };

  const images: ArchiveImage[] = [];
  for (const top of index.manifests) {
    const references = layoutReferences(top.annotations);
    let manifestDescriptor = top;
    let indexDigest: string | undefined;
    if (INDEX_TYPES.includes(top.mediaType)) {
      await importBlob(top);
      const nested = parseWith(imageIndexSchema, await blobs.readBytes(top.digest, MAX_JSON_BYTES, what), `${what}: index ${top.digest}`);
      manifestDescriptor = selectManifest(nested, platform, `${what}: index ${top.digest}`);
      indexDigest = top.digest;
    } else if (!MANIFEST_TYPES.includes(top.mediaType)) {
      continue; // signatures, attestations and other artifacts are not images
    }
    await importBlob(manifestDescriptor);
    const manifest = parseWith(
      imageManifestSchema,
      await blobs.readBytes(manifestDescriptor.digest, MAX_JSON_BYTES, what),
      `${what}: manifest ${manifestDescriptor.digest}`,
    );
    await importBlob(manifest.config);
    for (const layer of manifest.layers) await importBlob(layer);
    const image: ArchiveImage = { references, manifestDigest: manifestDescriptor.digest, manifest };
    if (indexDigest !== undefined) image.indexDigest = indexDigest;
    images.push(image);
  }
  if (images.length === 0) throw new Error(`${what}: index.json lists no images`);
  return images;
}

/**
 * Names from an OCI layout's index annotations. `ref.name` is often only a tag ("latest"), which
 * names no repository; containerd and Docker put the full name in io.containerd.image.name.
 */
export function layoutReferences(annotations: Record<string, string> | undefined): string[] {
  const fullName = annotations?.['io.containerd.image.name'];
  if (fullName) return [normaliseReference(fullName)];
  const refName = annotations?.['org.opencontainers.image.ref.name'];
  if (refName && /[/:@]/.test(refName)) return [normaliseReference(refName)];
  return [];
}

const dockerManifestSchema = z
  .array(
    z.object({
      Config: z.string(),
      RepoTags: z.array(z.string()).nullable().optional(),
      Layers: z.array(z.string()),
    }),
  )
  .min(1, 'lists no images');

export async function readDockerArchive(dir: string, blobs: BlobStore, what: string): Promise<ArchiveImage[]> {
  const entries = parseWith(dockerManifestSchema, await readSmall(dir, 'manifest.json', what), `${what}: manifest.json`);
  const images: ArchiveImage[] = [];
  for (const entry of entries) {
    const importUnknown = async (rel: string, mediaTypeOf: (path: string) => Promise<string>): Promise<Descriptor> => {
      const path = await safePath(dir, rel, what);
      const { digest, size } = await blobs.ingestComputingDigest(createReadStream(path), `${what}: ${rel}`);
      return { mediaType: await mediaTypeOf(path), digest, size };
    };
    const config = await importUnknown(entry.Config, async () => OCI_CONFIG);
    const layers: Descriptor[] = [];
    for (const rel of entry.Layers) {
      layers.push(await importUnknown(rel, async (path) => ((await isGzip(path)) ? OCI_LAYER_TAR_GZIP : OCI_LAYER_TAR)));
    }
    // docker save has no manifest; write the one it implies, so the image has a digest like any other.
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers };
    const manifestDigest = await blobs.putBytes(Buffer.from(JSON.stringify(manifest)));
    images.push({ references: (entry.RepoTags ?? []).map((tag) => normaliseReference(tag)), manifestDigest, manifest });
  }
  return images;
}

async function readSmall(dir: string, rel: string, what: string): Promise<Buffer> {
  const path = await safePath(dir, rel, what);
  const info = await stat(path);
  if (info.size > MAX_JSON_BYTES) throw new Error(`${what}: ${rel} is larger than ${MAX_JSON_BYTES} bytes`);
  return readFile(path);
}

/** Resolves `rel` inside `dir`, following symlinks (old docker save archives use them) but never out of it. */
async function safePath(dir: string, rel: string, what: string): Promise<string> {
  const root = await realpath(dir);
  let resolved: string;
  try {
    resolved = await realpath(join(dir, rel));
  } catch (error) {
    if (isNotFound(error)) throw new Error(`${what}: ${rel} is missing from the archive`);
    throw error;
  }
  if (!resolved.startsWith(root + sep)) throw new Error(`${what}: ${rel} points outside the archive`);
  return resolved;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

async function isGzip(path: string): Promise<boolean> {
  for await (const chunk of createReadStream(path, { start: 0, end: 1 }) as AsyncIterable<Buffer>) {
    return chunk[0] === 0x1f && chunk[1] === 0x8b;
  }
  return false;
}
