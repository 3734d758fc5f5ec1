// The image store's face to the worker and the CLI.

/** Defaults an image's config gives a container (OCI image-spec config.config). */
export interface ImageRuntimeConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  exposedPorts?: string[];
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
}

export interface PulledImage extends ImageRecord {
  /** Unpacked layer directories, bottom first, ready to be overlayfs lowerdirs. */
  layerDirs: string[];
}

export interface ImageStore {
  /** Returns the image, pulling it from its registry if it is not in the store. */
  ensure(reference: string, options?: { insecureRegistries?: string[] }): Promise<PulledImage>;
  pull(reference: string, options?: { insecureRegistries?: string[] }): Promise<PulledImage>;
  /** Loads an OCI image layout or `docker save` tarball; returns the images it held. */
  load(tarballPath: string): Promise<ImageRecord[]>;
  list(): Promise<ImageRecord[]>;
  get(reference: string): Promise<PulledImage | undefined>;
}
