// Writing images out as an archive that archive.ts (and Docker, skopeo, containerd) read back:
// an OCI image layout, or the `docker save` layout with uncompressed layers. The archive's tree
// is staged in a directory first, blobs hard-linked from the store (same filesystem, no copy),
// and then streamed as a tar.
import { createHash } from 'node:crypto';
import { copyFile, link, mkdir, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create } from 'tar';
import type { BlobStore } from './blob-store.js';
import { readDecompressed } from './decompress.js';
import { DigestMismatchError, digestHex } from '../../common/images/digest.js';
import { type ImageManifest, imageConfigSchema, imageManifestSchema, parseWith } from './manifest.js';
import { OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import { parseReference } from '../../common/images/reference.js';
import type { ArchiveFormat, ImageRecord } from '../../common/images/types.js';

const MAX_JSON_BYTES = 8 * 1024 * 1024;

/** Lays out `records` in `dir` (empty, in the store's tmp) in `format`; returns the paths to tar, in order. */
export async function stageArchive(records: ImageRecord[], format: ArchiveFormat, blobs: BlobStore, dir: string): Promise<string[]> {
  const blobsDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  const written = new Set<string>();
  const addBlob = async (digest: string): Promise<void> => {
    if (written.has(digest)) return;
    const target = join(blobsDir, digestHex(digest));
    try {
      await link(blobs.path(digest), target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      await copyFile(blobs.path(digest), target);
    }
    written.add(digest);
  };
  const manifests = new Map<string, ImageManifest>();
  for (const record of records) {
    if (manifests.has(record.digest)) continue;
    const what = `save ${record.reference}: manifest ${record.digest}`;
    manifests.set(record.digest, parseWith(imageManifestSchema, await blobs.readBytes(record.digest, MAX_JSON_BYTES, what), what));
  }

  if (format === 'oci') {
    const entries: object[] = [];
    for (const record of records) {
      const manifest = manifests.get(record.digest) as ImageManifest;
      await addBlob(record.digest);
      await addBlob(manifest.config.digest);
      for (const layer of manifest.layers) await addBlob(layer.digest);
      const what = `save ${record.reference}: config`;
      const config = parseWith(imageConfigSchema, await blobs.readBytes(manifest.config.digest, MAX_JSON_BYTES, what), what);
      const entry: Record<string, unknown> = {
        mediaType: manifest.mediaType ?? OCI_MANIFEST,
        digest: record.digest,
        size: (await stat(blobs.path(record.digest))).size,
      };
      if (config.os !== undefined && config.architecture !== undefined) entry.platform = { os: config.os, architecture: config.architecture };
      const annotations = layoutAnnotations(record.reference);
      if (annotations) entry.annotations = annotations;
      entries.push(entry);
    }
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
    return ['oci-layout', 'index.json', 'blobs'];
  }

  // docker: one manifest.json entry per image (manifest digest), naming every tag it has.
  const entries: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  for (const [digest, manifest] of manifests) {
    const mine = records.filter((r) => r.digest === digest);
    const first = mine[0] as ImageRecord;
    await addBlob(manifest.config.digest);
    const layers: string[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      const diffId = first.layers[i];
      if (diffId === undefined) throw new Error(`save ${first.reference}: the record has fewer diff-ids than the manifest has layers`);
      if (!written.has(diffId)) {
        await writeUncompressed(blobs.path(layer.digest), join(blobsDir, digestHex(diffId)), diffId, `save ${first.reference}: layer ${layer.digest}`);
        written.add(diffId);
      }
      layers.push(`blobs/sha256/${digestHex(diffId)}`);
    }
    const repoTags = mine.map((r) => r.reference).filter((ref) => !ref.startsWith('sha256:') && parseReference(ref).digest === undefined);
    entries.push({ Config: `blobs/sha256/${digestHex(manifest.config.digest)}`, RepoTags: repoTags, Layers: layers });
  }
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(entries));
  return ['manifest.json', 'blobs'];
}

/** Names in an OCI layout index: the full reference (containerd's key) and the tag (the spec's). */
function layoutAnnotations(reference: string): Record<string, string> | undefined {
  if (reference.startsWith('sha256:')) return undefined;
  const ref = parseReference(reference);
  const annotations: Record<string, string> = { 'io.containerd.image.name': reference };
  if (ref.tag !== undefined) annotations['org.opencontainers.image.ref.name'] = ref.tag;
  return annotations;
}

/** Decompresses a layer blob into `target`, checking that it hashes to the diff-id. */
async function writeUncompressed(source: string, target: string, diffId: string, what: string): Promise<void> {
  const hash = createHash('sha256');
  const file = await open(target, 'wx', 0o644);
  try {
    for await (const chunk of readDecompressed(source, what)) {
      hash.update(chunk);
      await file.write(chunk);
    }
  } finally {
    await file.close();
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== diffId) throw new DigestMismatchError(`${what} (uncompressed)`, diffId, actual);
}

/** The staged tree as a tar stream; ownership and times are normalised so saves are reproducible. */
export function tarStream(dir: string, paths: string[]): AsyncIterable<Uint8Array> {
  return create({ cwd: dir, portable: true, mtime: new Date(0) }, paths);
}
