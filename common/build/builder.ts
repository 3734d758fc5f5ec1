// The contract between the parts of an image build (issue 18): the API server that receives a
// build context, the agent-side builder that runs a Dockerfile's steps through our own runtime,
// and the CLI and Compose code that ask for builds. Kept here, below control-plane/ and agent/,
// because both sides speak it and neither may import the other; the daemon wires them together.

/** What a caller asks for, as `docker build`'s flags say it (after the CLI has parsed them). */
export interface BuildRequest {
  /** References the built image is stored (and pushed) under, e.g. ["app:1", "reg:5000/app:1"]. */
  readonly tags: readonly string[];
  /** The Dockerfile's path inside the context ("Dockerfile" unless -f says otherwise). */
  readonly dockerfilePath: string;
  /** A Dockerfile given in full instead of a path (Compose's `dockerfile_inline`). */
  readonly dockerfileInline?: string;
  /** --build-arg K=V; a key without a value takes the caller's environment value, resolved by the CLI. */
  readonly buildArgs: Readonly<Record<string, string>>;
  /** --target STAGE: the stage whose result is the image (the last stage otherwise). */
  readonly target?: string;
  /** --no-cache: every step runs, none is taken from the cache. */
  readonly noCache: boolean;
  /** --label K=V (and Compose `build.labels`): added to the image config's labels. */
  readonly labels: Readonly<Record<string, string>>;
  /** Layer compression; gzip unless asked otherwise. */
  readonly compression: 'gzip' | 'zstd';
  /** --push: push the first tag to its registry once built. */
  readonly push: boolean;
}

/** One line of progress, streamed to the caller while the build runs. */
export type BuildProgress =
  | {
      readonly kind: 'step';
      /** The stage's name (`AS name`) or its index as a string. */
      readonly stage: string;
      /** 1-based number of the step among all steps the build runs, and their count. */
      readonly step: number;
      readonly totalSteps: number;
      /** The instruction as written (after the line continuations are joined), e.g. "RUN make". */
      readonly instruction: string;
    }
  | { readonly kind: 'cached'; readonly step: number }
  | { readonly kind: 'output'; readonly step: number; readonly line: string }
  | { readonly kind: 'done'; readonly step: number; readonly durationMs: number }
  | { readonly kind: 'pull'; readonly reference: string; readonly bytes: number; readonly totalBytes?: number }
  | { readonly kind: 'push'; readonly reference: string; readonly bytes: number; readonly totalBytes?: number };

export interface BuildResult {
  /** The image manifest's digest (what `tsctl image ls` shows and `image@digest` names). */
  readonly manifestDigest: string;
  /** The image config's digest (Docker's "image ID"). */
  readonly configDigest: string;
  readonly tags: readonly string[];
  readonly layers: number;
  readonly cachedSteps: number;
  readonly ranSteps: number;
}

/**
 * Builds an image from a context directory already on this node's disk (the API server has
 * received, size-checked and unpacked it, with .dockerignore applied by the sender). Throws a
 * BuildError for anything the Dockerfile or the context gets wrong; nothing is stored under the
 * tags unless the whole build succeeds.
 */
export interface ImageBuilder {
  build(request: BuildRequest, contextDir: string, onProgress: (event: BuildProgress) => void, signal: AbortSignal): Promise<BuildResult>;
}

/** Where in which file a build went wrong, for errors that name file, line and column. */
export interface BuildSourceLocation {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
}

export class BuildError extends Error {
  constructor(
    message: string,
    readonly location?: BuildSourceLocation,
    /** For a failing RUN: its exit code and the last lines of its output. */
    readonly run?: { readonly exitCode: number; readonly lastLines: readonly string[] },
  ) {
    super(location === undefined ? message : `${location.file}:${location.line}:${location.column}: ${message}`);
    this.name = 'BuildError';
  }
}
