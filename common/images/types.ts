// The image store's face to the worker and to the API server (which serves `tsctl image` from its
// node's store). The store itself is agent/images/image-store.ts.

/** Defaults an image's config gives a container (OCI image-spec config.config). */
export interface ImageRuntimeConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  /** "PORT/PROTO" keys of the config's ExposedPorts, e.g. "80/tcp". */
  exposedPorts?: string[];
  healthcheck?: ImageHealthcheck;
}

/** The image's HEALTHCHECK; zero or absent durations mean "runtime default" and are left out. */
export interface ImageHealthcheck {
  /** ["NONE"] (disabled), ["CMD", program, args…] or ["CMD-SHELL", command]. */
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  startPeriodMs?: number;
  startIntervalMs?: number;
  retries?: number;
}

export interface ImageRecord {
  /** Normalised reference, e.g. "127.0.0.1:5000/busybox:latest". */
  reference: string;
  /** Digest of the manifest, "sha256:…". */
  digest: string;
  /** Digest of the multi-platform index the manifest was selected from, when there was one. */
  indexDigest?: string;
  /** Digest of the image config blob. */
  configDigest: string;
  /** Layer diff-ids, bottom first. */
  layers: string[];
  size: number;
  config: ImageRuntimeConfig;
  createdAt: string;
  /**
   * Keys of the build-cache entries of the build that made this image (every step of every stage
   * it ran); the image store's garbage collector keeps those entries while the record exists.
   */
  buildCacheKeys?: string[];
}

export interface PulledImage extends ImageRecord {
  /** Unpacked layer directories, bottom first, ready to be overlayfs lowerdirs. */
  layerDirs: string[];
}

/** How far a pull has come with one blob; events for one blob arrive in order. */
export interface PullProgress {
  /** Digest of the blob (compressed layer or config). */
  digest: string;
  kind: 'config' | 'layer';
  /**
   * exists: already in the store, nothing to do · downloading: `current` of `total` bytes ·
   * retrying: the download broke off and starts again · unpacking · done.
   */
  status: 'exists' | 'downloading' | 'retrying' | 'unpacking' | 'done';
  current: number;
  total: number;
}

export interface PullOptions {
  insecureRegistries?: string[];
  onProgress?: (event: PullProgress) => void;
}

/** How far a push has come with one blob; events for one blob arrive in order. */
export interface PushProgress {
  digest: string;
  kind: 'config' | 'layer';
  /**
   * exists: the registry has it already, nothing sent · mounted: the registry linked it from the
   * repository the image came from, nothing sent · pushing: `current` of `total` bytes sent · pushed.
   */
  status: 'exists' | 'mounted' | 'pushing' | 'pushed';
  current: number;
  total: number;
}

export interface PushOptions {
  /** The name to push as; absent: the image's own reference, which must then name a registry. */
  target?: string;
  insecureRegistries?: string[];
  onProgress?: (event: PushProgress) => void;
  /** Aborted (the caller went away): no further blob is started and the manifest is not put, so the tag never names a push that was called off. */
  signal?: AbortSignal;
}

export interface PushResult {
  /** The normalised reference pushed, e.g. "127.0.0.1:5000/team/busybox:v1". */
  reference: string;
  /** The manifest digest, as the registry confirmed it. */
  digest: string;
  /** Config and layers, compressed, in bytes. */
  size: number;
  /** Blobs sent, blobs the registry had already, and blobs it mounted from the repository the image came from. */
  pushed: number;
  existed: number;
  mounted: number;
}

export interface RemoveOptions {
  /**
   * Who still uses the image (e.g. names of tasks that are not finished); a non-empty answer
   * refuses the removal. The store cannot know this itself: the caller asks its worker or store.
   */
  inUse?: (image: ImageRecord) => Promise<string[]>;
}

export interface GcResult {
  blobsRemoved: number;
  layersRemoved: number;
  bytesFreed: number;
}

export interface RemoveResult {
  /** References whose records were removed. */
  removed: string[];
  /** What the garbage collection after the removal freed. */
  gc: GcResult;
}

/** `oci`: an OCI image layout; `docker`: the `docker save` layout (manifest.json, uncompressed layers). */
export type ArchiveFormat = 'oci' | 'docker';

export interface ImageStore {
  /** Returns the image, pulling it from its registry if it is not in the store. */
  ensure(reference: string, options?: PullOptions): Promise<PulledImage>;
  pull(reference: string, options?: PullOptions): Promise<PulledImage>;
  /** Loads an OCI image layout or `docker save` tarball; returns the images it held. */
  load(tarballPath: string): Promise<ImageRecord[]>;
  list(): Promise<ImageRecord[]>;
  get(reference: string): Promise<PulledImage | undefined>;
  /**
   * Removes the image named by reference, or every name of a manifest digest (full or at least
   * 12 hex digits), then collects garbage. Refused, with nothing removed, while in use.
   */
  remove(reference: string, options?: RemoveOptions): Promise<RemoveResult>;
  /** Deletes blobs and unpacked layers no image refers to; never what a pull in progress writes. */
  prune(): Promise<GcResult>;
  /**
   * Writes the named images as one archive that `load` reads back. Resolves once every name is
   * found (errors come before any byte); the iterable yields the tarball.
   */
  save(references: string[], format: ArchiveFormat): Promise<AsyncIterable<Uint8Array>>;
  /**
   * Pushes the named image (its one manifest, config and layers) to a registry, under
   * `options.target` if given. Blobs the registry has are not sent again.
   */
  push(reference: string, options?: PushOptions): Promise<PushResult>;
}
