// The node's image store: pulls from registries and loads archives into a content-addressed
// store under one root directory, and hands out unpacked layer directories for overlayfs.
//
//   <root>/blobs/sha256/<hex>     manifests, configs, compressed layers (verified)
//   <root>/layers/<diff-id hex>/  unpacked layers (overlayfs lowerdirs)
//   <root>/images/<hash>.json     one record per image reference
//   <root>/tmp/                   work in progress, renamed into place when complete
//
// Pulls, loads and saves share the store through a readers-writer lock; removal and garbage
// collection take it alone, so a collection never sees a half-written image as garbage. The
// lock is per process: one store object per root (tsd's), other processes go through its API.
import { mkdir, rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { stageArchive, tarStream } from './archive-writer.js';
import { BlobStore } from './blob-store.js';
import { ReadWriteLock, mapLimit } from './concurrency.js';
import { meteredChunks } from './metered.js';
import type { ImagePullObserver, PullSource } from '../metrics/agent-metrics.js';
import { isSha256Digest } from '../../common/images/digest.js';
import { markReferenced, sweep } from './garbage-collector.js';
import { ImageIndexStore } from './image-index.js';
import { LayerStore } from './layer-store.js';
import { extractArchive, readArchive } from './archive.js';
import { defaultCredentialsFile, loadCredentialsFile } from './registry-credentials.js';
import {
  type Descriptor,
  type ImageManifest,
  type Platform,
  hostPlatform,
  imageConfigSchema,
  imageManifestSchema,
  parseManifestDocument,
  parseWith,
  runtimeConfigOf,
  selectManifest,
} from './manifest.js';
import { SUPPORTED_LAYER_TYPES } from './media-types.js';
import { PeerBlobFetcher, type PeerBlobSource } from './peer/peer-fetch.js';
import { type ImageReference, InvalidReferenceError, formatReference, parseReference, repositoryName } from '../../common/images/reference.js';
import { RegistryClient, type RegistryClientOptions, type RegistryCredentials } from './registry-client.js';
import type {
  GcResult,
  ImageRecord,
  ImageStore,
  PullOptions,
  PullProgress,
  PulledImage,
  PushOptions,
  PushResult,
  RemoveOptions,
  RemoveResult,
} from '../../common/images/types.js';
import { pushManifest } from './registry-push.js';
import { BuildCacheStore, BuildPins, type BuildCacheEntry } from './build-cache.js';
import { sha256Digest } from '../../common/images/digest.js';
import { mountSource, pushTarget } from './push-target.js';

export interface LocalImageStoreOptions {
  root: string;
  /** Registries always spoken to over plain HTTP, in addition to those given per call. */
  insecureRegistries?: string[];
  /** Credentials per registry; when absent they come from `credentialsFile`. */
  credentials?: (registry: string) => RegistryCredentials | undefined;
  /** JSON credentials file read at every pull (see registry-credentials.ts); default ~/.tessera/registries.json. */
  credentialsFile?: string;
  /** Layers downloaded at once per pull (default 3). */
  maxConcurrentDownloads?: number;
  /** Retry policy, back-off and clock of the registry client (tests make waiting instant). */
  registry?: Pick<RegistryClientOptions, 'retry' | 'sleep' | 'random' | 'now' | 'blobIdleTimeoutMs' | 'requestTimeoutMs'>;
  /** Platform to select from multi-platform images; defaults to this host's. */
  platform?: Platform;
  /** Replaces the global fetch (tests count requests with it). */
  fetch?: typeof globalThis.fetch;
  log?: (message: string) => void;
  /** Called after the set of image records changed (a pull, load, peer fetch or removal): the agent reports its inventory. */
  onChange?: () => void;
  /** Pulls and downloaded bytes (agent/metrics); absent: not recorded. */
  metrics?: ImagePullObserver;
}

const MAX_JSON_BYTES = 8 * 1024 * 1024;

/** What asking the peers gave: the image, or why they could not give it, or neither when none holds it. */
interface PeerFetchOutcome {
  image?: PulledImage;
  failure?: string;
}

interface AssembleInput {
  references: string[];
  manifestDigest: string;
  manifest: ImageManifest;
  indexDigest?: string;
  /** Makes sure a blob is in the blob store (downloads it, or checks an import brought it). */
  fetchBlob: (descriptor: Descriptor, what: string, progress: (event: PullProgress) => void) => Promise<void>;
  what: string;
  onProgress?: (event: PullProgress) => void;
}

export class ImageNotFoundError extends Error {
  constructor(reference: string) {
    super(`image ${JSON.stringify(reference)} is not in the store`);
    this.name = 'ImageNotFoundError';
  }
}

export class ImageInUseError extends Error {
  constructor(
    readonly reference: string,
    readonly users: string[],
  ) {
    super(
      `image ${reference} is in use by ${users.length === 1 ? '' : `${users.length} tasks: `}${users.slice(0, 5).join(', ')}${users.length > 5 ? ', …' : ''}; remove or stop them first`,
    );
    this.name = 'ImageInUseError';
  }
}

export class LocalImageStore implements ImageStore {
  readonly root: string;
  private readonly blobs: BlobStore;
  private readonly layers: LayerStore;
  private readonly index: ImageIndexStore;
  private readonly platform: Platform;
  private readonly log: (message: string) => void;
  private readonly pullsInFlight = new Map<string, { work: Promise<PulledImage>; listeners: Set<(event: PullProgress) => void> }>();
  private readonly peerFetchesInFlight = new Map<string, Promise<PeerFetchOutcome>>();
  private peers: PeerBlobSource | undefined;
  private readonly lock = new ReadWriteLock();
  private staleTempRemoved: Promise<void> | undefined;
  private readonly buildCache: BuildCacheStore;
  /** What builds in progress hold (agent/build); the collector keeps it. */
  private readonly buildPins = new Set<BuildPins>();

  constructor(private readonly options: LocalImageStoreOptions) {
    this.root = options.root;
    this.log = options.log ?? (() => undefined);
    this.blobs = new BlobStore(options.root);
    this.layers = new LayerStore(options.root, this.blobs, this.log);
    this.index = new ImageIndexStore(options.root);
    this.buildCache = new BuildCacheStore(options.root);
    this.platform = options.platform ?? hostPlatform();
  }

  // ---- The image builder's side (agent/build/): everything it stores goes through these. ----

  /** Pins for one build: what is added to them survives garbage collection until `releaseBuild`. */
  holdForBuild(): BuildPins {
    const pins = new BuildPins();
    this.buildPins.add(pins);
    return pins;
  }

  releaseBuild(pins: BuildPins): void {
    this.buildPins.delete(pins);
  }

  /** A fresh path in the store's temp dir (same file system as the blobs, so files can be renamed in). */
  async buildTempPath(prefix: string): Promise<string> {
    await this.removeStaleTempOnce();
    return this.blobs.tempPath(prefix);
  }

  /** A step-cache entry; pinned first, so a collection cannot take it between this read and the build's use. */
  async buildCacheEntry(key: string, pins: BuildPins): Promise<BuildCacheEntry | undefined> {
    pins.cacheKeys.add(key);
    return this.lock.read(() => this.buildCache.get(key, this.log));
  }

  async putBuildCacheEntry(entry: BuildCacheEntry, pins: BuildPins): Promise<void> {
    pins.cacheKeys.add(entry.key);
    if (entry.layer) {
      pins.blobs.add(entry.layer.digest);
      pins.layers.add(entry.layer.diffId);
    }
    await this.lock.read(() => this.buildCache.put(entry));
  }

  /**
   * Takes a layer blob a build wrote into the temp dir (see buildTempPath) into the store and
   * unpacks it; returns its unpacked directory.
   */
  async addBuiltLayer(tempFile: string, layer: { diffId: string; digest: string }, pins: BuildPins): Promise<string> {
    pins.blobs.add(layer.digest);
    pins.layers.add(layer.diffId);
    return this.lock.read(async () => {
      await this.blobs.adopt(tempFile, layer.digest);
      return this.layers.ensure(layer.diffId, layer.digest, async () => undefined, `built layer ${layer.digest}`);
    });
  }

  /** The unpacked directory of a stored layer (unpacked again from its blob if needed); undefined when the blob is gone. */
  async storedLayerDir(layer: { diffId: string; digest: string; size: number }, pins: BuildPins): Promise<string | undefined> {
    pins.blobs.add(layer.digest);
    pins.layers.add(layer.diffId);
    return this.lock.read(async () => {
      if (await this.layers.has(layer.diffId)) return this.layers.dir(layer.diffId);
      if (!(await this.blobs.has(layer.digest, layer.size))) return undefined;
      return this.layers.ensure(layer.diffId, layer.digest, async () => undefined, `cached layer ${layer.digest}`);
    });
  }

  /** The raw config and manifest of a stored image (a build's base), and pins its blobs and layers. */
  async imageDocuments(record: ImageRecord, pins: BuildPins): Promise<{ config: Buffer; manifest: ImageManifest }> {
    pins.blobs.add(record.digest);
    pins.blobs.add(record.configDigest);
    for (const diffId of record.layers) pins.layers.add(diffId);
    return this.lock.read(async () => {
      const what = `image ${record.reference}`;
      const manifest = parseWith(imageManifestSchema, await this.blobs.readBytes(record.digest, MAX_JSON_BYTES, `${what}: manifest`), `${what}: manifest`);
      for (const layer of manifest.layers) pins.blobs.add(layer.digest);
      return { config: await this.blobs.readBytes(manifest.config.digest, MAX_JSON_BYTES, `${what}: config`), manifest };
    });
  }

  /**
   * Stores a built image: its config and manifest blobs (its layers are in already, see
   * addBuiltLayer) and one record per reference, naming the build's cache entries.
   */
  async commitBuiltImage(input: {
    references: string[];
    configBytes: Buffer;
    manifestBytes: Buffer;
    buildCacheKeys: string[];
    pins: BuildPins;
  }): Promise<ImageRecord[]> {
    const what = 'built image';
    const manifest = parseWith(imageManifestSchema, input.manifestBytes, `${what}: manifest`);
    const config = parseWith(imageConfigSchema, input.configBytes, `${what}: config`);
    const manifestDigest = sha256Digest(input.manifestBytes);
    input.pins.blobs.add(manifestDigest);
    input.pins.blobs.add(manifest.config.digest);
    return this.lock.read(async () => {
      await this.blobs.putBytes(input.configBytes, { digest: manifest.config.digest, size: manifest.config.size }, `${what}: config`);
      await this.blobs.putBytes(input.manifestBytes, undefined, `${what}: manifest`);
      for (const layer of manifest.layers) {
        if (!(await this.blobs.has(layer.digest, layer.size))) throw new Error(`${what}: layer ${layer.digest} is not in the store`);
      }
      const references = input.references.map((r) => formatReference(parseReference(r)));
      const records: ImageRecord[] = (references.length > 0 ? references : [manifestDigest]).map((reference) => ({
        reference,
        digest: manifestDigest,
        configDigest: manifest.config.digest,
        layers: config.rootfs.diff_ids,
        size: manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0),
        config: runtimeConfigOf(config),
        createdAt: config.created ?? new Date().toISOString(),
        buildCacheKeys: [...input.buildCacheKeys],
      }));
      for (const record of records) await this.index.put(record);
      this.options.onChange?.();
      return records;
    });
  }

  /** The image from this store, else from the cluster's other nodes (setPeerSource), else from its registry. */
  async ensure(reference: string, options?: PullOptions): Promise<PulledImage> {
    const stored = await this.get(reference);
    if (stored) return stored;
    const fromPeers = await this.fromPeers(reference);
    if (fromPeers.image) return fromPeers.image;
    try {
      return await this.pull(reference, options);
    } catch (err) {
      // Where the cluster holds the image but could not give it, that is the failure to fix (an
      // offline cluster has no registry to fall back on), so it is named first.
      if (fromPeers.failure === undefined) throw err;
      throw new Error(`not fetched from its peers (${fromPeers.failure}), nor from its registry: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The file of a stored blob, for serving it to other nodes (read-only; the digest is checked for its form). */
  blobPath(digest: string): string {
    return this.blobs.path(digest);
  }

  /** Where `ensure` finds images other nodes hold; set once the agent has a session to ask through. */
  setPeerSource(source: PeerBlobSource | undefined): void {
    this.peers = source;
  }

  /**
   * The image fetched from the peers holding it, verified blob by blob; no image when no peer holds
   * it, or with the failure when none could give it (also logged: the caller goes to the registry).
   * Concurrent asks for one reference share one fetch.
   */
  private fromPeers(reference: string): Promise<PeerFetchOutcome> {
    const source = this.peers;
    if (!source) return Promise.resolve({});
    const name = isSha256Digest(reference) ? reference : validNameOf(reference);
    if (name === undefined) return Promise.resolve({});
    const existing = this.peerFetchesInFlight.get(name);
    if (existing) return existing;
    const work = this.removeStaleTempOnce()
      .then(async (): Promise<PeerFetchOutcome> => {
        const image = await this.fetchFromPeers(name, source);
        return image ? { image } : {};
      })
      .catch((error: unknown): PeerFetchOutcome => {
        const failure = (error as Error).message;
        this.log(`image ${name}: not fetched from peers (${failure}); trying its registry`);
        return { failure };
      })
      .finally(() => this.peerFetchesInFlight.delete(name));
    this.peerFetchesInFlight.set(name, work);
    return work;
  }

  private async fetchFromPeers(name: string, source: PeerBlobSource): Promise<PulledImage | undefined> {
    const location = await source.locate(name);
    if (!location) return undefined;
    const what = `image ${name} from peers`;
    const fetcher = new PeerBlobFetcher(location.peers, source, this.log);
    const started = performance.now();
    const pulled = await this.observedPull(
      'peer',
      started,
      this.lock.read(async () => {
        const manifestWhat = `${what}: manifest ${location.manifestDigest}`;
        const manifestBytes = await fetcher.bytes(location.manifestDigest, MAX_JSON_BYTES, manifestWhat);
        const document = parseManifestDocument(manifestBytes, manifestWhat);
        if (document.kind !== 'manifest') throw new Error(`${manifestWhat} is an index, not an image manifest`);
        await this.blobs.putBytes(manifestBytes, { digest: location.manifestDigest, size: manifestBytes.byteLength }, manifestWhat);
        const input: AssembleInput = {
          references: [name],
          manifestDigest: location.manifestDigest,
          manifest: document.manifest,
          fetchBlob: async (descriptor, blobWhat) => {
            if (await this.blobs.has(descriptor.digest, descriptor.size)) return;
            await fetcher.into(this.blobs, descriptor, blobWhat);
            this.options.metrics?.downloaded('peer', descriptor.size);
          },
          what,
        };
        // Asked by an index digest: the index must be there and choose this very manifest for this node.
        const asked = isSha256Digest(name) ? name : parseReference(name).digest;
        if (asked !== undefined && asked !== location.manifestDigest)
          input.indexDigest = await this.indexFromPeers(fetcher, asked, location.manifestDigest, what);
        const [image] = await this.assemble(input);
        return image;
      }),
    );
    if (pulled) this.log(`${what}: stored (${location.peers.map((p) => p.nodeName).join(', ')} held it)`);
    return pulled;
  }

  private async indexFromPeers(fetcher: PeerBlobFetcher, indexDigest: string, manifestDigest: string, what: string): Promise<string> {
    const indexWhat = `${what}: index ${indexDigest}`;
    const bytes = await fetcher.bytes(indexDigest, MAX_JSON_BYTES, indexWhat);
    const document = parseManifestDocument(bytes, indexWhat);
    if (document.kind !== 'index') throw new Error(`${indexWhat} is not an image index, and not the manifest ${manifestDigest} either`);
    const chosen = selectManifest(document.index, this.platform, indexWhat);
    if (chosen.digest !== manifestDigest) throw new Error(`${indexWhat} chooses ${chosen.digest} for this node, not ${manifestDigest}`);
    await this.blobs.putBytes(bytes, { digest: indexDigest, size: bytes.byteLength }, indexWhat);
    return indexDigest;
  }

  /** Pulls `reference`; concurrent pulls of the same reference share one download (and its progress). */
  pull(reference: string, options?: PullOptions): Promise<PulledImage> {
    const ref = parseReference(reference);
    const key = formatReference(ref);
    const existing = this.pullsInFlight.get(key);
    if (existing) {
      if (options?.onProgress) existing.listeners.add(options.onProgress);
      return existing.work;
    }
    const listeners = new Set<(event: PullProgress) => void>();
    if (options?.onProgress) listeners.add(options.onProgress);
    const emit = (event: PullProgress): void => {
      for (const listener of listeners) listener(event);
    };
    const started = performance.now();
    const work = this.observedPull(
      'registry',
      started,
      this.removeStaleTempOnce().then(() => this.lock.read(() => this.pullOnce(ref, options?.insecureRegistries ?? [], emit))),
    ).finally(() => this.pullsInFlight.delete(key));
    this.pullsInFlight.set(key, { work, listeners });
    return work;
  }

  async get(reference: string): Promise<PulledImage | undefined> {
    return this.lock.read(async () => {
      const record = await this.findRecord(reference);
      return record ? this.withLayerDirs(record) : undefined;
    });
  }

  async list(): Promise<ImageRecord[]> {
    return this.index.list();
  }

  async remove(reference: string, options: RemoveOptions = {}): Promise<RemoveResult> {
    return this.lock.write(async () => {
      const targets = await this.recordsToRemove(reference);
      for (const record of targets) {
        const users = (await options.inUse?.(record)) ?? [];
        if (users.length > 0) throw new ImageInUseError(record.reference, users);
      }
      for (const record of targets) await this.index.remove(record.reference);
      if (targets.length > 0) this.options.onChange?.();
      const gc = await this.collectGarbage();
      return { removed: targets.map((r) => r.reference), gc };
    });
  }

  async prune(): Promise<GcResult> {
    await this.removeStaleTempOnce();
    return this.lock.write(async () => {
      await this.blobs.removeStaleTemp();
      return this.collectGarbage();
    });
  }

  /** `format` is checked here: it comes from an API query or a command line. */
  async save(references: string[], format: string): Promise<AsyncIterable<Uint8Array>> {
    if (references.length === 0) throw new Error('image save: no image named');
    if (format !== 'oci' && format !== 'docker') throw new Error(`image save: unknown format ${JSON.stringify(format)} (expected oci or docker)`);
    await this.removeStaleTempOnce();
    const dir = await this.blobs.tempPath('save');
    let paths: string[];
    try {
      // Only staging needs the lock: the staged blobs are hard links, which a later collection cannot take away.
      paths = await this.lock.read(async () => {
        const records: ImageRecord[] = [];
        for (const reference of references) {
          const record = await this.findRecord(reference);
          if (!record) throw new ImageNotFoundError(reference);
          if (!records.some((r) => r.reference === record.reference)) records.push(record);
        }
        return stageArchive(records, format, this.blobs, dir);
      });
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    return (async function* () {
      try {
        yield* tarStream(dir, paths);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    })();
  }

  async push(reference: string, options: PushOptions = {}): Promise<PushResult> {
    const target = pushTarget(reference, options.target);
    const targetName = formatReference(target);
    await this.removeStaleTempOnce();
    // The read lock keeps a collection from deleting blobs while they are being sent.
    return this.lock.read(async () => {
      const record = await this.findRecord(reference);
      if (!record) throw new ImageNotFoundError(reference);
      const what = `push ${targetName}: manifest ${record.digest} of ${record.reference}`;
      const manifestBytes = await this.blobs.readBytes(record.digest, MAX_JSON_BYTES, what);
      const manifest = parseWith(imageManifestSchema, manifestBytes, what);
      for (const blob of [manifest.config, ...manifest.layers]) {
        if (!(await this.blobs.has(blob.digest, blob.size))) {
          throw new Error(`push ${targetName}: blob ${blob.digest} of ${record.reference} is missing from the image store; pull or load the image again`);
        }
      }
      const client = await this.registryClient(options.insecureRegistries ?? [], `push ${targetName}`);
      const source = mountSource(record.reference, target);
      const pushed = await pushManifest(client, {
        target,
        manifestBytes,
        manifest,
        ...(source === undefined ? {} : { mountFrom: source }),
        blobPath: (digest) => this.blobs.path(digest),
        concurrency: this.options.maxConcurrentDownloads ?? 3,
        blobIdleTimeoutMs: this.options.registry?.blobIdleTimeoutMs ?? 60_000,
        onProgress: options.onProgress ?? (() => undefined),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return {
        reference: targetName,
        digest: pushed.digest,
        size: manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0),
        pushed: pushed.pushed,
        existed: pushed.existed,
        mounted: pushed.mounted,
      };
    });
  }

  async load(tarballPath: string): Promise<ImageRecord[]> {
    await this.removeStaleTempOnce();
    return this.lock.read(() => this.loadLocked(tarballPath));
  }

  private async loadLocked(tarballPath: string): Promise<ImageRecord[]> {
    const what = `image archive ${tarballPath}`;
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

  /** Records named by `reference`: one name, or every name of a manifest digest or its prefix. */
  private async recordsToRemove(reference: string): Promise<ImageRecord[]> {
    const name = isSha256Digest(reference) ? undefined : validNameOf(reference);
    const byName = name === undefined ? undefined : await this.index.get(name);
    if (byName) return [byName];
    const hex = /^(?:sha256:)?([a-f0-9]{12,64})$/.exec(reference)?.[1];
    if (hex !== undefined) {
      const all = await this.index.list();
      const prefix = `sha256:${hex}`;
      const matching = all.filter((r) => r.digest.startsWith(prefix) || (r.indexDigest?.startsWith(prefix) ?? false));
      const digests = new Set(matching.map((r) => r.digest));
      if (digests.size > 1) throw new Error(`image ${reference} is ambiguous: it is the start of ${digests.size} image digests; give more digits`);
      if (matching.length > 0) return matching;
    }
    // Neither a name nor a digest: not found. A failure to read the index is not caught here.
    const record = name === undefined && !isSha256Digest(reference) ? undefined : await this.findRecord(reference);
    if (record) return [record];
    throw new ImageNotFoundError(reference);
  }

  private async collectGarbage(): Promise<GcResult> {
    const marks = await markReferenced(await this.index.list(), this.blobs, this.log, { cache: this.buildCache, pins: this.buildPins });
    const result = await sweep(marks, this.blobs, this.layers, this.buildCache);
    if (result.blobsRemoved + result.layersRemoved > 0) {
      this.log(`image gc: removed ${result.blobsRemoved} blobs and ${result.layersRemoved} layers, ${result.bytesFreed} bytes`);
    }
    return result;
  }

  private async credentialsFor(): Promise<((registry: string) => RegistryCredentials | undefined) | undefined> {
    if (this.options.credentials) return this.options.credentials;
    const map = await loadCredentialsFile(this.options.credentialsFile ?? defaultCredentialsFile());
    return map.size > 0 ? (registry) => map.get(registry) : undefined;
  }

  /** A registry client with the node's insecure registries, credentials and retry policy; `what` prefixes its retry log lines. */
  private async registryClient(extraInsecure: string[], what: string): Promise<RegistryClient> {
    const clientOptions: RegistryClientOptions = {
      ...this.options.registry,
      insecureRegistries: [...(this.options.insecureRegistries ?? []), ...extraInsecure],
      onRetry: (message) => this.log(`${what}: ${message}`),
    };
    const credentials = await this.credentialsFor();
    if (credentials) clientOptions.credentials = credentials;
    if (this.options.fetch) clientOptions.fetch = this.options.fetch;
    return new RegistryClient(clientOptions);
  }

  /** Records a pull's result and time when it settles; the pull's own outcome passes through. */
  private observedPull<T>(source: PullSource, started: number, work: Promise<T>): Promise<T> {
    const metrics = this.options.metrics;
    if (!metrics) return work;
    return work.then(
      (value) => {
        metrics.pulled(source, true, (performance.now() - started) / 1000);
        return value;
      },
      (error: unknown) => {
        metrics.pulled(source, false, (performance.now() - started) / 1000);
        throw error;
      },
    );
  }

  private async pullOnce(ref: ImageReference, extraInsecure: string[], emit: (event: PullProgress) => void): Promise<PulledImage> {
    const client = await this.registryClient(extraInsecure, `pull ${formatReference(ref)}`);
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
      fetchBlob: async (descriptor, blobWhat, progress) => {
        if (await this.blobs.has(descriptor.digest, descriptor.size)) return;
        await client.fetchBlob(ref, descriptor, async (chunks, attempt) => {
          if (attempt > 1) progress({ digest: descriptor.digest, kind: 'layer', status: 'retrying', current: 0, total: descriptor.size });
          const metered = meteredChunks(chunks, descriptor.size, (current) =>
            progress({ digest: descriptor.digest, kind: 'layer', status: 'downloading', current, total: descriptor.size }),
          );
          return this.blobs.ingest({ digest: descriptor.digest, size: descriptor.size }, metered, blobWhat);
        });
        this.options.metrics?.downloaded('registry', descriptor.size);
      },
      what,
      onProgress: emit,
    };
    if (indexDigest !== undefined) input.indexDigest = indexDigest;
    const [pulled] = await this.assemble(input);
    if (!pulled) throw new Error(`${what}: nothing was stored`);
    return pulled;
  }

  /** Brings config and layers of one manifest into the store and records it under its names. */
  private async assemble(input: AssembleInput): Promise<PulledImage[]> {
    const { manifest, what } = input;
    const progress = input.onProgress ?? (() => undefined);
    for (const layer of manifest.layers) {
      if (!SUPPORTED_LAYER_TYPES.includes(layer.mediaType)) {
        throw new Error(`${what}: layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
      }
    }
    const configWhat = `${what}: config ${manifest.config.digest}`;
    const configProgress = (event: PullProgress): void => progress({ ...event, kind: 'config' });
    await input.fetchBlob(manifest.config, configWhat, configProgress);
    const config = parseWith(imageConfigSchema, await this.blobs.readBytes(manifest.config.digest, MAX_JSON_BYTES, configWhat), configWhat);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new Error(`${what}: manifest has ${manifest.layers.length} layers but the config lists ${diffIds.length} diff_ids`);
    }
    if (
      config.os !== undefined &&
      config.architecture !== undefined &&
      (config.os !== this.platform.os || config.architecture !== this.platform.architecture)
    ) {
      this.log(`${what}: image is for ${config.os}/${config.architecture}, this node is ${this.platform.os}/${this.platform.architecture}`);
    }

    const layerDirs = await mapLimit(manifest.layers, this.options.maxConcurrentDownloads ?? 3, async (layer, i) => {
      const diffId = diffIds[i] as string;
      const layerWhat = `${what}: layer ${layer.digest}`;
      const event = { digest: layer.digest, kind: 'layer' as const, total: layer.size };
      if (await this.layers.has(diffId)) {
        progress({ ...event, status: 'exists', current: layer.size });
        return this.layers.dir(diffId);
      }
      const dir = await this.layers.ensure(
        diffId,
        layer.digest,
        async () => {
          await input.fetchBlob(layer, layerWhat, progress);
          progress({ ...event, status: 'unpacking', current: layer.size });
        },
        layerWhat,
      );
      progress({ ...event, status: 'done', current: layer.size });
      return dir;
    });

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
    this.options.onChange?.();
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
      manifest ??= parseWith(
        imageManifestSchema,
        await this.blobs.readBytes(record.digest, MAX_JSON_BYTES, record.reference),
        `manifest of ${record.reference}`,
      );
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

/** The normalised name `reference` stands for, or undefined when it is not a valid image reference (it may be a digest prefix). */
function validNameOf(reference: string): string | undefined {
  try {
    return formatReference(parseReference(reference));
  } catch (error) {
    if (error instanceof InvalidReferenceError) return undefined;
    throw error;
  }
}
