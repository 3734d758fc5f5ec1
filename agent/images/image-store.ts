// The node's image store: pulls from registries and loads archives into a content-addressed
// store under one root directory, and hands out unpacked layer directories for overlayfs.
//
//   <root>/blobs/sha256/<hex>     manifests, configs, compressed layers (verified)
//   <root>/layers/<diff-id hex>/  unpacked layers (overlayfs lowerdirs)
//   <root>/images/<hash>.json     one record per image reference
//   <root>/tmp/                   work in progress, renamed into place when complete
import { mkdir, rm } from 'node:fs/promises';
import { BlobStore } from './blob-store.js';
import { isSha256Digest } from './digest.js';
import { ImageIndexStore } from './image-index.js';
import { LayerStore } from './layer-store.js';
import { extractArchive, readArchive } from './archive.js';
import {
  type Descriptor,
  type ImageManifest,
  type Platform,
  hostPlatform,
  imageConfigSchema,
  imageManifestSchema,
  parseWith,
  runtimeConfigOf,
  selectManifest,
} from './manifest.js';
import { OCI_LAYER_TAR_ZSTD, SUPPORTED_LAYER_TYPES } from './media-types.js';
import { type ImageReference, formatReference, parseReference, repositoryName } from './reference.js';
import { RegistryClient, type RegistryCredentials } from './registry-client.js';
import type { ImageRecord, ImageStore, PulledImage } from './types.js';

export interface LocalImageStoreOptions {
  root: string;
  /** Registries always spoken to over plain HTTP, in addition to those given per call. */
  insecureRegistries?: string[];
  credentials?: (registry: string) => RegistryCredentials | undefined;
  /** Platform to select from multi-platform images; defaults to this host's. */
  platform?: Platform;
  /** Replaces the global fetch (tests count requests with it). */
  fetch?: typeof globalThis.fetch;
  log?: (message: string) => void;
}

const MAX_JSON_BYTES = 8 * 1024 * 1024;

interface AssembleInput {
  references: string[];
  manifestDigest: string;
  manifest: ImageManifest;
  indexDigest?: string;
  /** Makes sure a blob is in the blob store (downloads it, or checks an import brought it). */
  fetchBlob: (descriptor: Descriptor, what: string) => Promise<void>;
  what: string;
}

export class LocalImageStore implements ImageStore {
  readonly root: string;
  private readonly blobs: BlobStore;
  private readonly layers: LayerStore;
  private readonly index: ImageIndexStore;
  private readonly platform: Platform;
  private readonly log: (message: string) => void;
  private readonly pullsInFlight = new Map<string, Promise<PulledImage>>();
  private staleTempRemoved: Promise<void> | undefined;

  constructor(private readonly options: LocalImageStoreOptions) {
    this.root = options.root;
    this.log = options.log ?? (() => undefined);
    this.blobs = new BlobStore(options.root);
    this.layers = new LayerStore(options.root, this.blobs, this.log);
    this.index = new ImageIndexStore(options.root);
    this.platform = options.platform ?? hostPlatform();
  }

  async ensure(reference: string, options?: { insecureRegistries?: string[] }): Promise<PulledImage> {
    return (await this.get(reference)) ?? this.pull(reference, options);
  }

  /** Pulls `reference`; concurrent pulls of the same reference share one download. */
  pull(reference: string, options?: { insecureRegistries?: string[] }): Promise<PulledImage> {
    const ref = parseReference(reference);
    const key = formatReference(ref);
    const existing = this.pullsInFlight.get(key);
    if (existing) return existing;
    const work = this.removeStaleTempOnce().then(() => this.pullOnce(ref, options?.insecureRegistries ?? [])).finally(() => this.pullsInFlight.delete(key));
    this.pullsInFlight.set(key, work);
    return work;
  }

  async get(reference: string): Promise<PulledImage | undefined> {
    const record = await this.findRecord(reference);
    return record ? this.withLayerDirs(record) : undefined;
  }

  async list(): Promise<ImageRecord[]> {
    return this.index.list();
  }

  async load(tarballPath: string): Promise<ImageRecord[]> {
    const what = `image archive ${tarballPath}`;
    await this.removeStaleTempOnce();
    const dir = await this.blobs.tempPath('load');
    await mkdir(dir, { recursive: true });
    try {
      await extractArchive(tarballPath, dir);
      const images = await readArchive(dir, this.blobs, this.platform, what);
      const records: ImageRecord[] = [];
      for (const image of images) {
        const input: AssembleInput = {
          references: image.references,
          manifestDigest: image.manifestDigest,
          manifest: image.manifest,
          fetchBlob: async (descriptor, blobWhat) => {
            if (!(await this.blobs.has(descriptor.digest, descriptor.size))) throw new Error(`${blobWhat} is missing from the archive`);
          },
          what,
        };
        if (image.indexDigest !== undefined) input.indexDigest = image.indexDigest;
        for (const pulled of await this.assemble(input)) records.push(withoutLayerDirs(pulled));
      }
      return records;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private removeStaleTempOnce(): Promise<void> {
    this.staleTempRemoved ??= this.blobs.removeStaleTemp().catch((error: unknown) => {
      this.log(`image store: could not clean ${this.blobs.tmpDir}: ${(error as Error).message}`);
    });
    return this.staleTempRemoved;
  }

  private async pullOnce(ref: ImageReference, extraInsecure: string[]): Promise<PulledImage> {
    const clientOptions: ConstructorParameters<typeof RegistryClient>[0] = {
      insecureRegistries: [...(this.options.insecureRegistries ?? []), ...extraInsecure],
    };
    if (this.options.credentials) clientOptions.credentials = this.options.credentials;
    if (this.options.fetch) clientOptions.fetch = this.options.fetch;
    const client = new RegistryClient(clientOptions);
    const reference = formatReference(ref);
    const what = `pull ${reference}`;

    const top = await client.getManifest(ref, ref.digest ?? ref.tag ?? 'latest');
    let manifestDigest = top.digest;
    let manifest: ImageManifest;
    let indexDigest: string | undefined;
    if (top.document.kind === 'index') {
      await this.blobs.putBytes(top.bytes);
      const chosen = selectManifest(top.document.index, this.platform, `index ${top.digest} of ${repositoryName(ref)}`);
      const fetched = await client.getManifest(ref, chosen.digest);
      if (fetched.document.kind !== 'manifest') throw new Error(`${what}: index entry ${chosen.digest} is itself an index`);
      if (fetched.bytes.byteLength !== chosen.size) {
        throw new Error(`${what}: manifest ${chosen.digest} is ${fetched.bytes.byteLength} bytes, the index says ${chosen.size}`);
      }
      indexDigest = top.digest;
      manifestDigest = fetched.digest;
      manifest = fetched.document.manifest;
      await this.blobs.putBytes(fetched.bytes);
    } else {
      manifest = top.document.manifest;
      await this.blobs.putBytes(top.bytes);
    }

    const input: AssembleInput = {
      references: [reference],
      manifestDigest,
      manifest,
      fetchBlob: async (descriptor, blobWhat) => {
        if (await this.blobs.has(descriptor.digest, descriptor.size)) return;
        await this.blobs.ingest({ digest: descriptor.digest, size: descriptor.size }, await client.openBlob(ref, descriptor), blobWhat);
      },
      what,
    };
    if (indexDigest !== undefined) input.indexDigest = indexDigest;
    const [pulled] = await this.assemble(input);
    if (!pulled) throw new Error(`${what}: nothing was stored`);
    return pulled;
  }

  /** Brings config and layers of one manifest into the store and records it under its names. */
  private async assemble(input: AssembleInput): Promise<PulledImage[]> {
    const { manifest, what } = input;
    for (const layer of manifest.layers) {
      if (layer.mediaType === OCI_LAYER_TAR_ZSTD) throw new Error(`${what}: layer ${layer.digest} is zstd-compressed, which is not supported yet`);
      if (!SUPPORTED_LAYER_TYPES.includes(layer.mediaType)) {
        throw new Error(`${what}: layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
      }
    }
    const configWhat = `${what}: config ${manifest.config.digest}`;
    await input.fetchBlob(manifest.config, configWhat);
    const config = parseWith(imageConfigSchema, await this.blobs.readBytes(manifest.config.digest, MAX_JSON_BYTES, configWhat), configWhat);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new Error(`${what}: manifest has ${manifest.layers.length} layers but the config lists ${diffIds.length} diff_ids`);
    }
    if (config.os !== undefined && config.architecture !== undefined && (config.os !== this.platform.os || config.architecture !== this.platform.architecture)) {
      this.log(`${what}: image is for ${config.os}/${config.architecture}, this node is ${this.platform.os}/${this.platform.architecture}`);
    }

    const layerDirs: string[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      const diffId = diffIds[i] as string;
      const layerWhat = `${what}: layer ${layer.digest}`;
      layerDirs.push(await this.layers.ensure(diffId, layer.digest, () => input.fetchBlob(layer, layerWhat), layerWhat));
    }

    const base = {
      digest: input.manifestDigest,
      configDigest: manifest.config.digest,
      layers: diffIds,
      size: manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0),
      config: runtimeConfigOf(config),
      createdAt: config.created ?? new Date().toISOString(),
    };
    // An image without a name is still reachable by its manifest digest.
    const references = input.references.length > 0 ? input.references : [input.manifestDigest];
    const images: PulledImage[] = [];
    for (const reference of references) {
      const record: ImageRecord = { reference, ...base };
      if (input.indexDigest !== undefined) record.indexDigest = input.indexDigest;
      await this.index.put(record);
      images.push({ ...record, layerDirs });
    }
    return images;
  }

  private async findRecord(reference: string): Promise<ImageRecord | undefined> {
    if (isSha256Digest(reference)) {
      const exact = await this.index.get(reference);
      if (exact) return exact;
      return (await this.index.list()).find((r) => r.digest === reference || r.indexDigest === reference);
    }
    const ref = parseReference(reference);
    const exact = await this.index.get(formatReference(ref));
    if (exact || ref.digest === undefined) return exact;
    // "name@sha256:…" also finds an image pulled by tag whose manifest (or index) has that digest.
    const name = repositoryName(ref);
    return (await this.index.list()).find(
      (r) => !isSha256Digest(r.reference) && repositoryName(parseReference(r.reference)) === name && (r.digest === ref.digest || r.indexDigest === ref.digest),
    );
  }

  /** Layer directories of a recorded image, unpacking again from stored blobs any that went missing. */
  private async withLayerDirs(record: ImageRecord): Promise<PulledImage | undefined> {
    const layerDirs: string[] = [];
    let manifest: ImageManifest | undefined;
    for (const [i, diffId] of record.layers.entries()) {
      if (await this.layers.has(diffId)) {
        layerDirs.push(this.layers.dir(diffId));
        continue;
      }
      if (!(await this.blobs.has(record.digest))) return undefined;
      manifest ??= parseWith(imageManifestSchema, await this.blobs.readBytes(record.digest, MAX_JSON_BYTES, record.reference), `manifest of ${record.reference}`);
      const layer = manifest.layers[i];
      if (!layer || !(await this.blobs.has(layer.digest, layer.size))) return undefined;
      const what = `${record.reference}: layer ${layer.digest}`;
      layerDirs.push(await this.layers.ensure(diffId, layer.digest, async () => undefined, what));
    }
    return { ...record, layerDirs };
  }
}

function withoutLayerDirs(image: PulledImage): ImageRecord {
  const { layerDirs: _unused, ...record } = image;
  return record;
}
