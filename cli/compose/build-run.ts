// Running the build jobs of a Compose project (build-plan.ts) before `tsctl stack deploy` applies
// anything: every context and Dockerfile is checked first (all problems at once), then the jobs
// build one at a time through the builder the command was given, and each service built is pinned
// to its image's manifest digest, so every node runs exactly what was built. A failed build stops
// the deploy before anything is applied.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BuildError, type BuildProgress, type BuildRequest, type BuildResult } from '../../common/build/builder.js';
import type { StackObject } from '../../common/resources/types.js';
import { cappedReadProblem, readCapped } from '../manifest/input-limits.js';
import { MAX_DOCKERFILE_BYTES, pinnedReference, type ComposeBuildJob } from './build-plan.js';
import type { CappedReader } from './project-files.js';

/**
 * What a build reports: the builder's progress, and (from the Build RPC's client) the context's
 * journey to the manager before it; the same shape as cli/build/run-build.ts's BuildEvent.
 */
export type RunBuildEvent =
  | BuildProgress
  | {
      readonly kind: 'context';
      readonly phase: 'walked' | 'sending' | 'received';
      readonly entries: number;
      readonly bytes: number;
      readonly totalBytes: number;
    }
  | { readonly kind: 'accepted'; readonly node: string };

/**
 * Builds one image from a context directory on this machine, reporting progress; resolves with
 * what was stored. The real one is `(request, dir, onProgress) => buildImage(client, request, dir,
 * onProgress)` (cli/build/run-build.ts): it streams the context to a manager over the Build RPC.
 */
export type RunBuild = (request: BuildRequest, contextDir: string, onProgress: (event: RunBuildEvent) => void) => Promise<BuildResult>;

/** A job whose inputs are there, with a Dockerfile from outside its context read in. */
export interface ReadyBuild {
  job: ComposeBuildJob;
  request: BuildRequest;
}

const who = (job: ComposeBuildJob) => `service${job.services.length > 1 ? 's' : ''} ${job.services.join(', ')}`;

function directoryProblem(path: string): string | undefined {
  try {
    return statSync(path).isDirectory() ? undefined : `${path} is not a directory`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? `${path} does not exist` : `${path}: ${(error as Error).message}`;
  }
}

function fileProblem(path: string): string | undefined {
  try {
    return statSync(path).isFile() ? undefined : `${path} is not a file`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? `${path} does not exist` : `${path}: ${(error as Error).message}`;
  }
}

/** Checks every job's context and Dockerfile on this machine; the problems name the services. */
export function prepareBuilds(jobs: readonly ComposeBuildJob[], read: CappedReader = readCapped): { ready: ReadyBuild[]; problems: string[] } {
  const ready: ReadyBuild[] = [];
  const problems: string[] = [];
  for (const job of jobs) {
    const contextProblem = directoryProblem(job.contextDir);
    if (contextProblem !== undefined) {
      problems.push(`${who(job)}: build context ${JSON.stringify(job.context)}: ${contextProblem}`);
      continue;
    }
    if (job.dockerfileFile !== undefined) {
      const file = read(job.dockerfileFile, MAX_DOCKERFILE_BYTES);
      if (!file.ok) {
        problems.push(
          `${who(job)}: dockerfile ${job.dockerfileFile} ${file.reason === 'missing' ? 'does not exist' : cappedReadProblem(file, MAX_DOCKERFILE_BYTES)}`,
        );
        continue;
      }
      ready.push({ job, request: { ...job.request, dockerfileInline: file.data.toString('utf8') } });
      continue;
    }
    if (job.request.dockerfileInline === undefined) {
      const dockerfileProblem = fileProblem(join(job.contextDir, job.request.dockerfilePath));
      if (dockerfileProblem !== undefined) {
        problems.push(`${who(job)}: dockerfile ${JSON.stringify(job.request.dockerfilePath)} in context ${JSON.stringify(job.context)}: ${dockerfileProblem}`);
        continue;
      }
    }
    ready.push({ job, request: job.request });
  }
  return { ready, problems };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** One line for a progress event worth a line; undefined for the rest (byte counts, step ends). */
function progressLine(event: RunBuildEvent, pulling: Set<string>): string | undefined {
  switch (event.kind) {
    case 'context':
      return event.phase === 'walked' ? `context: ${event.entries} entries, ${mib(event.totalBytes)}` : undefined;
    case 'accepted':
      return `building on ${event.node}`;
    case 'step':
      return `step ${event.step}/${event.totalSteps}: ${event.instruction}`;
    case 'cached':
      return `step ${event.step}: cached`;
    case 'output':
      return `  ${event.line}`;
    case 'pull':
    case 'push':
      if (pulling.has(`${event.kind} ${event.reference}`)) return undefined;
      pulling.add(`${event.kind} ${event.reference}`);
      return `${event.kind}ing ${event.reference}`;
    case 'done':
      return undefined;
  }
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** The build's error as the user needs it: the message, and for a failing RUN its exit code and last lines. */
function buildFailure(job: ComposeBuildJob, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  const run =
    error instanceof BuildError && error.run
      ? `\n  exit code ${error.run.exitCode}; last lines:\n${error.run.lastLines.map((l) => `    ${l}`).join('\n')}`
      : '';
  return new Error(`nothing deployed: the image of ${who(job)} (context ${JSON.stringify(job.context)}) did not build: ${message}${run}`, { cause: error });
}

/**
 * Runs the builds one at a time (their output stays readable, and a manager builds one thing at a
 * time best); resolves with the pinned reference of every service built. Throws at the first
 * failure, naming the services and the build's error.
 */
export async function runBuilds(builds: readonly ReadyBuild[], runBuild: RunBuild, log: (line: string) => void): Promise<Map<string, string>> {
  const pins = new Map<string, string>();
  for (const [index, { job, request }] of builds.entries()) {
    const name = job.services[0] ?? '?';
    const dockerfile = request.dockerfileInline !== undefined && job.dockerfileFile === undefined ? 'an inline Dockerfile' : request.dockerfilePath;
    log(
      `build ${index + 1}/${builds.length}: ${who(job)} from ${job.context} (${dockerfile}${request.target ? `, target ${request.target}` : ''}) as ${request.tags.join(', ')}`,
    );
    const pulling = new Set<string>();
    let result: BuildResult;
    try {
      result = await runBuild(request, job.contextDir, (event) => {
        const line = progressLine(event, pulling);
        if (line !== undefined) log(`[${name}] ${line}`);
      });
    } catch (error) {
      throw buildFailure(job, error);
    }
    // The digest comes from the server and ends up in every node's spec: it must be one.
    if (!DIGEST.test(result.manifestDigest))
      throw buildFailure(job, new Error(`the builder answered ${JSON.stringify(result.manifestDigest)}, not a manifest digest`));
    log(`[${name}] built ${result.manifestDigest} (${result.ranSteps} steps run, ${result.cachedSteps} cached)`);
    for (const [service, image] of Object.entries(job.imageOf)) pins.set(service, pinnedReference(image, result.manifestDigest));
  }
  return pins;
}

/** The objects with each built service's image replaced by its pinned reference. */
export function pinImages(objects: readonly StackObject[], pins: ReadonlyMap<string, string>): StackObject[] {
  return objects.map((o) => {
    const pinned = o.kind === 'Service' ? pins.get(o.metadata.name) : undefined;
    return pinned === undefined || o.kind !== 'Service' ? o : { ...o, spec: { ...o.spec, image: pinned } };
  });
}

/**
 * Everything `stack deploy` does about builds before it applies: checks the inputs (throwing with
 * every problem), builds, and returns the objects to apply with the built images pinned.
 */
export async function buildStackImages(
  objects: readonly StackObject[],
  jobs: readonly ComposeBuildJob[],
  runBuild: RunBuild,
  log: (line: string) => void,
  read: CappedReader = readCapped,
): Promise<StackObject[]> {
  if (jobs.length === 0) return [...objects];
  const { ready, problems } = prepareBuilds(jobs, read);
  if (problems.length > 0) throw new Error(`nothing deployed: the builds cannot start:\n  ${problems.join('\n  ')}`);
  return pinImages(objects, await runBuilds(ready, runBuild, log));
}
