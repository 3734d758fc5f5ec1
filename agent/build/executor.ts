// The node's image builder (common/build/builder.ts ImageBuilder): plans the Dockerfile (through
// the planner it is given), runs the plan's stages step by step on this node's runtime and image
// store, and stores the image under its tags only when every step succeeded. One BuildRun per call
// holds that build's state; this class holds what builds share.
import { randomBytes } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildProgress, BuildRequest, BuildResult, ImageBuilder } from '../../common/build/builder.js';
import { BuildError } from '../../common/build/builder.js';
import type { BuildImageConfig, BuildPlan, BuildPlatform, PlanInput } from '../../common/build/plan-types.js';
import type { LocalImageStore } from '../images/image-store.js';
import type { ContainerRuntime } from '../runtime/types.js';
import { hostPlatform } from '../images/manifest.js';
import { planStages, planSteps } from '../../common/build/plan.js';
import { parseReference } from '../../common/images/reference.js';
import { pushTarget } from '../images/push-target.js';
import { assertCompressionAvailable } from './layer-blob.js';
import { resolveComponents } from './in-root.js';
import { BuildRun } from './build-run.js';
import type { RunLimits } from './run-step.js';

/**
 * Plans a build: phase 1 (stages, base images), the base images' configs through `baseConfigOf`
 * (which pulls them when needed), phase 2 (steps). The daemon wires common/build/'s planner in.
 */
export type PlanBuild = (input: PlanInput, baseConfigOf: (reference: string) => Promise<BuildImageConfig>) => Promise<BuildPlan>;

/** common/build/'s planner: phase 1, the base images' configs (resolved one after another), phase 2. */
export const planDockerfile: PlanBuild = async (input, baseConfigOf) => {
  const graph = planStages(input);
  const baseConfigs: Record<string, BuildImageConfig> = {};
  for (const reference of graph.baseImages) baseConfigs[reference] = await baseConfigOf(reference);
  return planSteps(input, baseConfigs);
};

export interface BuildExecutorOptions {
  images: LocalImageStore;
  runtime: ContainerRuntime;
  /** Where steps' root file systems and bundles live while a build runs (on the node's data disk). */
  workDir: string;
  /** Parent cgroup of RUN containers. */
  cgroupParent: string;
  insecureRegistries: string[];
  /** Default planDockerfile; tests give plans of their own. */
  plan?: PlanBuild;
  /** Each RUN's limits; default 2 GiB of memory and 4096 processes. */
  limits?: RunLimits;
  log: (message: string) => void;
  now?: () => Date;
}

/** A Dockerfile larger than this is refused (Docker's parser has no limit; ours reads it into memory). */
export const MAX_DOCKERFILE_BYTES = 1024 * 1024;
const DEFAULT_LIMITS: RunLimits = { memoryBytes: 2 * 1024 * 1024 * 1024, pids: 4096 };

export class BuildExecutor implements ImageBuilder {
  constructor(private readonly options: BuildExecutorOptions) {}

  async build(request: BuildRequest, contextDir: string, onProgress: (event: BuildProgress) => void, signal: AbortSignal): Promise<BuildResult> {
    await assertCompressionAvailable(request.compression);
    checkTags(request);
    const dockerfile = request.dockerfileInline ?? (await readDockerfile(contextDir, request.dockerfilePath));
    const platform = buildPlatform();
    const run = new BuildRun({
      ...this.options,
      limits: this.options.limits ?? DEFAULT_LIMITS,
      now: this.options.now ?? (() => new Date()),
      request,
      contextDir,
      onProgress,
      signal,
      buildId: `${process.pid}-${randomBytes(4).toString('hex')}`,
    });
    try {
      const plan = await (this.options.plan ?? planDockerfile)(
        { dockerfile, fileName: request.dockerfileInline === undefined ? request.dockerfilePath : 'dockerfile_inline', request, platform },
        (reference) => run.baseConfigOf(reference),
      );
      for (const warning of plan.warnings) this.options.log(`build: ${warning}`);
      return await run.execute(plan);
    } finally {
      await run.release();
    }
  }
}

/** Tags are checked before any step runs: a bad one found at the commit would waste the whole build. */
export function checkTags(request: BuildRequest): void {
  for (const tag of request.tags) {
    try {
      parseReference(tag);
    } catch (error) {
      throw new BuildError(`-t ${tag}: ${(error as Error).message}`);
    }
  }
  if (!request.push) return;
  const first = request.tags[0];
  if (first === undefined) throw new BuildError('--push needs a tag (-t) to push to');
  try {
    pushTarget(first, undefined);
  } catch (error) {
    throw new BuildError(`--push: ${(error as Error).message}`);
  }
}

function buildPlatform(): BuildPlatform {
  const platform = hostPlatform();
  return platform.variant === undefined ? { os: platform.os, architecture: platform.architecture } : { os: platform.os, architecture: platform.architecture, variant: platform.variant };
}

/** The Dockerfile's text from the context, resolved inside it (a symlink cannot point it elsewhere). */
async function readDockerfile(contextDir: string, path: string): Promise<string> {
  const host = join(contextDir, ...(await resolveComponents(contextDir, path, true)));
  let info;
  try {
    info = await lstat(host);
  } catch (error) {
    throw new BuildError(`Dockerfile ${JSON.stringify(path)} is not in the build context: ${(error as Error).message}`);
  }
  if (!info.isFile()) throw new BuildError(`Dockerfile ${JSON.stringify(path)} is not a regular file`);
  if (info.size > MAX_DOCKERFILE_BYTES) throw new BuildError(`Dockerfile ${JSON.stringify(path)} is ${info.size} bytes, over the limit of ${MAX_DOCKERFILE_BYTES}`);
  return readFile(host, 'utf8');
}
