// The build plan: what a Dockerfile asks for, resolved into steps the executor (agent/build/) runs
// without reading the Dockerfile again. Produced by the pure planner (common/build/plan.ts) in two
// phases, because some of it depends on the base images' configs (`ENV PATH=/x:$PATH` needs the
// base's PATH, and ONBUILD triggers come from the base):
//
//   1. planStages(input)               -> StageGraph: the stages the target needs and the images the
//                                         executor must resolve (pull or find in the store);
//   2. planSteps(input, baseConfigs)   -> BuildPlan: every step with its expanded arguments and the
//                                         full image config after it (base config merged in).
//
// Both phases are pure and deterministic; phase 2 parses the same input again (cheap) rather than
// carrying a parse tree through the executor.
//
// Everything here is plain readonly data (no classes, no Maps), so a plan can be logged, compared
// in tests and sent across a process boundary as JSON.

import type { BuildRequest, BuildSourceLocation } from './builder.js';

/** "linux/amd64", "linux/arm64/v8": the platform the node builds for; no other is accepted. */
export interface BuildPlatform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** What both planning phases read. */
export interface PlanInput {
  /** The Dockerfile's text (the file's bytes decoded as UTF-8, or `dockerfile_inline`). */
  readonly dockerfile: string;
  /** The name errors give, e.g. "Dockerfile" or "docker/app.Dockerfile". */
  readonly fileName: string;
  /** buildArgs, target and labels are read; the rest is the executor's. */
  readonly request: Pick<BuildRequest, 'buildArgs' | 'target' | 'labels'>;
  /** The node's platform: FROM --platform must equal it; TARGETPLATFORM etc. are set from it. */
  readonly platform: BuildPlatform;
}

/** A HEALTHCHECK as the OCI/Docker image config stores it: durations in nanoseconds, 0 = runtime default. */
export interface BuildHealthcheck {
  /** ["NONE"], ["CMD", program, args...] or ["CMD-SHELL", command]. */
  readonly test: readonly string[];
  readonly intervalNs: number;
  readonly timeoutNs: number;
  readonly startPeriodNs: number;
  readonly startIntervalNs: number;
  readonly retries: number;
}

/**
 * The image config (OCI config.config plus Docker's Healthcheck, Shell, OnBuild), as it stands
 * after a step. Always complete: for an image base it starts from that image's config (given to
 * planSteps), for `scratch` from an empty one, for a stage base from that stage's final config.
 */
export interface BuildImageConfig {
  /** "K=V", in the order the keys were first set (as Docker keeps them). */
  readonly env: readonly string[];
  /** Absent: not set (distinct from an empty list, which `CMD []` sets). */
  readonly cmd?: readonly string[];
  readonly entrypoint?: readonly string[];
  /** "" when not set. */
  readonly workingDir: string;
  /** "" when not set (root). */
  readonly user: string;
  /** "PORT/PROTO" keys, e.g. "80/tcp", sorted. */
  readonly exposedPorts: readonly string[];
  /** Absolute container paths, sorted. */
  readonly volumes: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly healthcheck?: BuildHealthcheck;
  readonly stopSignal?: string;
  /** SHELL; absent: the default ["/bin/sh", "-c"]. */
  readonly shell?: readonly string[];
  /** ONBUILD triggers recorded for images built FROM this one (the instruction text after ONBUILD). */
  readonly onBuild: readonly string[];
  /** MAINTAINER (deprecated): the image's author field. */
  readonly author?: string;
}

/**
 * What planSteps needs of a resolved base image: its config, as read from the store, keyed in
 * planSteps' `baseConfigs` by the reference exactly as StageGraph.baseImages lists it.
 */
export type BaseImageConfig = BuildImageConfig;

/** Where a stage starts from. */
export type StageBase =
  | { readonly kind: 'scratch' }
  /** An image reference as written after ARG expansion ("busybox:1.36", "reg:5000/app@sha256:..."); the executor normalises it. */
  | { readonly kind: 'image'; readonly reference: string }
  /** An earlier stage of the same Dockerfile (by `AS` name or by index). */
  | { readonly kind: 'stage'; readonly index: number };

/** Where COPY/ADD reads its sources. */
export type CopySource =
  | { readonly kind: 'context' }
  | { readonly kind: 'stage'; readonly index: number }
  /** `COPY --from=image`: the image's root filesystem (needs no config). */
  | { readonly kind: 'image'; readonly reference: string };

/** Fields every step has. */
interface StepCommon {
  readonly location: BuildSourceLocation;
  /** The instruction as written, continuations joined (for progress lines and errors), e.g. "RUN make all". */
  readonly instruction: string;
  /**
   * The instruction after ARG/ENV expansion, plus for RUN the build args in scope (as Docker's
   * classic builder puts them in the cache key: a changed --build-arg used by a RUN reruns it).
   * The cache key hashes this with the parent's key and the content digests the executor reads.
   */
  readonly cacheText: string;
  /** The full image config after this step. */
  readonly configAfter: BuildImageConfig;
}

/** A file a RUN heredoc provides to the command; mounted read-only for the step, never in the layer. */
export interface RunInlineFile {
  /** Absolute path in the container (under /dev/pipes/, as BuildKit puts them). */
  readonly path: string;
  readonly content: string;
  /** Octal mode; 0o755 for a script run by its shebang. */
  readonly mode: number;
}

export interface RunStep extends StepCommon {
  readonly kind: 'run';
  /** Exec form as given, or the stage's SHELL followed by the command for shell form (heredoc bodies included). */
  readonly argv: readonly string[];
  /** The config's Env plus the build args in scope that no ENV of the same name overrides (as Docker passes them to RUN). */
  readonly env: readonly string[];
  /** The config's User ("" = root). */
  readonly user: string;
  /** The config's WorkingDir ("/" when unset). */
  readonly workdir: string;
  /** Files the command reads (a `RUN <<EOF` script that starts with `#!`); usually empty. */
  readonly inlineFiles: readonly RunInlineFile[];
}

/** The content of a `COPY <<EOF /dest` heredoc: a file created with that name (the delimiter) in the destination. */
export interface CopyHeredocFile {
  readonly name: string;
  /** Already expanded (unless the delimiter was quoted) and, for `<<-`, with leading tabs removed. */
  readonly content: string;
}

/** `--link` is accepted and ignored: the files land the same; only BuildKit's layer rebasing differs. */
export interface CopyStep extends StepCommon {
  readonly kind: 'copy';
  /** ADD rather than COPY. */
  readonly add: boolean;
  readonly from: CopySource;
  /** Source paths or glob patterns, after expansion, as written (relative to the context or the source root). Empty for heredoc-only COPY and for ADD of a URL. */
  readonly sources: readonly string[];
  /** Absolute destination, resolved against WORKDIR; a trailing "/" is kept (it means "into this directory"). */
  readonly dest: string;
  /** --chown as written after expansion ("user", "user:group", "1000:1000"); the executor resolves names in the stage's /etc/passwd and /etc/group. */
  readonly chown?: string;
  /** --chmod as an octal number. */
  readonly chmod?: number;
  /** ADD of a local tar archive unpacks it (ADD from the context or a stage; never for COPY or URLs). */
  readonly extractArchives: boolean;
  /** ADD of an http(s) URL: fetched by the executor, with the digest check when --checksum was given. */
  readonly url?: { readonly url: string; readonly checksum?: string };
  /** `COPY <<EOF /dest`: files created from the heredocs. */
  readonly heredocFiles: readonly CopyHeredocFile[];
}

export interface WorkdirStep extends StepCommon {
  readonly kind: 'workdir';
  /** Absolute; the executor creates it (owned by the config's user, as BuildKit does) if missing. */
  readonly path: string;
}

/** ENV, LABEL, EXPOSE, USER, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ARG, MAINTAINER, ONBUILD: config only, no filesystem change. */
export interface ConfigStep extends StepCommon {
  readonly kind: 'config';
  /** The instruction keyword, upper case ("ENV", "LABEL"...). */
  readonly keyword: string;
}

export type BuildStep = RunStep | CopyStep | WorkdirStep | ConfigStep;

/** One stage as planStages found it: enough for the executor to resolve its base. */
export interface StageHeader {
  /** Index among all stages of the Dockerfile (0-based, as `COPY --from=0` counts). */
  readonly index: number;
  /** The `AS` name, lower-cased as Docker compares them. */
  readonly name?: string;
  readonly base: StageBase;
  /** The FROM --platform after expansion, when given (always equal to the node's platform). */
  readonly platform?: string;
  readonly location: BuildSourceLocation;
}

/** Phase 1's result: the stages the target needs and what the executor must resolve before phase 2. */
export interface StageGraph {
  /** Stages the output needs, in Dockerfile order (unused stages are skipped, as BuildKit does). */
  readonly stages: readonly StageHeader[];
  /** Index of the stage whose result is the image (the --target, else the last stage). */
  readonly outputStage: number;
  /** Distinct references of image bases (FROM image): the executor resolves each and passes its config to planSteps. */
  readonly baseImages: readonly string[];
  /** Distinct references of `COPY --from=image` sources: resolved for their filesystem only. */
  readonly copyFromImages: readonly string[];
}

export interface StagePlan {
  readonly index: number;
  readonly name?: string;
  readonly base: StageBase;
  readonly platform?: string;
  /** The config the stage starts from (the base image's, the base stage's final one, or empty for scratch). */
  readonly baseConfig: BuildImageConfig;
  /** Base-image ONBUILD triggers run first, then the stage's own instructions. FROM itself is not a step. */
  readonly steps: readonly BuildStep[];
  /** Config after the last step (= baseConfig when there are none). */
  readonly finalConfig: BuildImageConfig;
}

/** Phase 2's result: what the executor runs. */
export interface BuildPlan {
  /** Only the stages the output needs, in Dockerfile order; a stage's `base`/`from` index refers to `index`, not to the array position. */
  readonly stages: readonly StagePlan[];
  readonly outputStage: number;
  /** The output stage's final config with the request's --label values added: the image's config. */
  readonly outputConfig: BuildImageConfig;
  /** --build-arg keys some ARG of a built stage (or a global ARG) consumed. */
  readonly buildArgsUsed: readonly string[];
  /** --build-arg keys nothing consumed (Docker warns "[Warning] One or more build-args [X] were not consumed"). */
  readonly buildArgsUnused: readonly string[];
  /** Other warnings for the caller (MAINTAINER deprecated, ...), each naming file:line:column. */
  readonly warnings: readonly string[];
}
