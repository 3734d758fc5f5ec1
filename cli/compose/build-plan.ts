// Compose `build:` → the build jobs `tsctl stack deploy` runs before it deploys (issue 18). Pure:
// it decides what would be built, from which context and Dockerfile, under which names, and refuses
// by name what a Tessera build cannot do; whether the context and the Dockerfile are there is
// checked when the builds run (build-run.ts), so a dry run plans a project whose sources are
// elsewhere. Services asking for the same build share one job.

import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { BuildRequest } from '../../common/build/builder.js';
import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import { namesRegistry, normaliseReference, parseReference } from '../../common/images/reference.js';
import { isDict, scalarText, type Dict } from './normalize.js';
import type { Lookup } from './interpolate.js';
import { confinedPath } from './project-files.js';
import { platformProblem } from './platform.js';
import { toBool, type Reporter } from './reporter.js';
import { canonicalJson } from './shape.js';

/** A Dockerfile given inline, or read from outside the context, is sent whole: at most this many bytes. */
export const MAX_DOCKERFILE_BYTES = 1024 * 1024;

export interface BuildPlanOptions {
  /** The stack (Compose project) name: images of services without image: are named after it. */
  stack: string;
  /** Absolute: the first Compose file's directory; contexts are relative to it. */
  projectDir: string;
  /** --allow-outside-files: contexts and Dockerfiles may be outside the project directory. */
  allowOutside: boolean;
  env: Lookup;
}

/** What one service's build: asks for, before the services that ask for the same build are merged. */
export interface ServiceBuild {
  service: string;
  path: IssuePath;
  /** The reference the service runs: its image:, or `<stack>-<service>`. */
  image: string;
  /** The context as written, and as an absolute directory on this machine. */
  context: string;
  contextDir: string;
  /** The Dockerfile's path inside the context (or as written, when it is outside the context). */
  dockerfilePath: string;
  /** Absolute path of a Dockerfile outside the context: read when the build runs and sent inline. */
  dockerfileFile?: string;
  dockerfileInline?: string;
  buildArgs: Record<string, string>;
  target?: string;
  labels: Record<string, string>;
  /** image first, then build.tags. */
  tags: string[];
  noCache: boolean;
  cacheFrom: string[];
}

/** One build `stack deploy` runs: the request, where its context is, and the services it serves. */
export interface ComposeBuildJob {
  /** The services that run the image, in file order. */
  services: string[];
  /** As written in the first of those services (for messages), and absolute. */
  context: string;
  contextDir: string;
  /** Absolute path of a Dockerfile outside the context, read when the build runs. */
  dockerfileFile?: string;
  request: BuildRequest;
  /** Local image references given as cache_from (the step cache already covers them). */
  cacheFrom: string[];
  /** Service → the reference it runs (pinned to the built digest when deployed). */
  imageOf: Record<string, string>;
}

// Docker's rule for a context that is not a local directory: a URL, or a Git remote.
const REMOTE_CONTEXT = /^(?:[a-z][a-z0-9+.-]*:\/\/|git@|github\.com\/)/i;

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
}

/** A list-or-dict normalised to a mapping (normalize.ts): null means "KEY" without a value. */
function entries(value: unknown): Array<[string, string | null]> {
  if (!isDict(value)) return [];
  return Object.entries(value).map(([k, v]) => [k, v === null || v === undefined ? null : scalarText(v)]);
}

/** A reference the build may store its image under: valid, and a name (a digest names an existing image). */
function tagProblem(reference: string): string | undefined {
  try {
    if (parseReference(reference).digest !== undefined)
      return `${JSON.stringify(reference)} names a digest, which a build cannot produce: give a name with an optional :tag`;
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function contextDirOf(context: string, at: IssuePath, o: BuildPlanOptions, r: Reporter): string | undefined {
  if (context === '') return r.add(at, 'context is empty: give the directory to build from (. for the project directory)');
  if (REMOTE_CONTEXT.test(context)) {
    return r.add(
      at,
      `context ${JSON.stringify(context)} is a URL or a Git repository, which is not supported: clone or download it and give the local directory`,
    );
  }
  const confined = confinedPath(context, { projectDir: o.projectDir, allowOutside: o.allowOutside });
  if (confined.problem !== undefined) return r.add(at, `context ${confined.problem}`);
  return confined.path;
}

interface DockerfileChoice {
  dockerfilePath: string;
  dockerfileFile?: string;
  dockerfileInline?: string;
}

function dockerfileOf(build: Dict, at: IssuePath, contextDir: string, o: BuildPlanOptions, r: Reporter): DockerfileChoice | undefined {
  const inline = build['dockerfile_inline'];
  const given = build['dockerfile'];
  if (typeof inline === 'string') {
    if (given !== undefined) return r.add([...at, 'dockerfile_inline'], 'dockerfile and dockerfile_inline cannot both be set: keep one');
    if (inline.trim() === '') return r.add([...at, 'dockerfile_inline'], 'dockerfile_inline is empty');
    const bytes = Buffer.byteLength(inline);
    if (bytes > MAX_DOCKERFILE_BYTES)
      return r.add([...at, 'dockerfile_inline'], `dockerfile_inline is ${bytes} bytes, more than the ${MAX_DOCKERFILE_BYTES} a Dockerfile may have`);
    return { dockerfilePath: 'Dockerfile', dockerfileInline: inline };
  }
  const written = typeof given === 'string' ? given : 'Dockerfile';
  if (written === '') return r.add([...at, 'dockerfile'], 'dockerfile is empty: give its path in the context, or leave the key out for "Dockerfile"');
  const absolute = resolve(contextDir, written);
  if (inside(contextDir, absolute)) return { dockerfilePath: relative(contextDir, absolute).split(sep).join('/') };
  // Outside the context (docker build -f ../Dockerfile .): sent inline, from where files may be read.
  // Named relative to the project directory, as the user reads paths, in the message.
  const confined = confinedPath(relative(o.projectDir, absolute), { projectDir: o.projectDir, allowOutside: o.allowOutside });
  if (confined.problem !== undefined) return r.add([...at, 'dockerfile'], `dockerfile ${confined.problem}`);
  return { dockerfilePath: written, dockerfileFile: absolute };
}

/** cache_from: image references are looked for locally; other cache sources are not there to use. */
function cacheFromOf(value: unknown, at: IssuePath, r: Reporter): string[] {
  const out: string[] = [];
  (Array.isArray(value) ? value : []).forEach((raw, index) => {
    const entry = scalarText(raw);
    const here = [...at, index];
    const type = /(?:^|,)type=([^,]*)/.exec(entry)?.[1];
    if (type !== undefined || namesRegistry(entry)) {
      r.warn(
        here,
        `${JSON.stringify(entry)} ignored: ${type !== undefined ? `a cache of type ${type}` : 'a registry cache source'}; Tessera builds use the step cache of the building node only`,
      );
      return;
    }
    const problem = tagProblem(entry);
    if (problem !== undefined) r.add(here, problem);
    else out.push(entry);
  });
  return out;
}

/** provenance and sbom: Tessera makes no attestations, so only "none, please" can be honoured. */
function noAttestation(build: Dict, key: 'provenance' | 'sbom', at: IssuePath, r: Reporter): void {
  const value = build[key];
  if (value === undefined || value === false || value === 'false') return;
  r.add([...at, key], `${key}: ${describeValue(value)} is not supported: Tessera builds make no attestations (false, or leaving the key out, is accepted)`);
}

/** The service's `platform:`, accepted only when it is the nodes' own. */
export function checkServicePlatform(service: Dict, path: IssuePath, r: Reporter): void {
  const platform = service['platform'];
  if (platform === undefined || platform === null) return;
  const problem = platformProblem(scalarText(platform));
  if (problem !== undefined) r.add([...path, 'platform'], `platform: ${problem}`);
}

/** The image name a service without image: gets, as `docker compose build` names it. */
export function defaultImageName(stack: string, service: string): string {
  return `${stack}-${service}`;
}

/** What the service's build: asks for; undefined (with issues reported) when it cannot be built. */
export function serviceBuild(name: string, path: IssuePath, service: Dict, o: BuildPlanOptions, r: Reporter): ServiceBuild | undefined {
  const build = service['build'];
  if (!isDict(build)) return undefined;
  const at = [...path, 'build'];
  const before = r.issues.length;
  const context = typeof build['context'] === 'string' ? build['context'] : '.';
  const contextDir = contextDirOf(context, [...at, 'context'], o, r);
  const dockerfile = contextDir === undefined ? undefined : dockerfileOf(build, at, contextDir, o, r);

  const buildArgs = Object.fromEntries(
    entries(build['args']).flatMap(([k, v]): Array<[string, string]> => {
      // "KEY" without a value takes this machine's value; unset, the Dockerfile's default applies.
      const value = v ?? o.env(k);
      return value === undefined ? [] : [[k, value]];
    }),
  );
  const labels = Object.fromEntries(entries(build['labels']).map(([k, v]) => [k, v ?? '']));
  const target = typeof build['target'] === 'string' && build['target'] !== '' ? build['target'] : undefined;
  const noCache = toBool(build['no_cache'], [...at, 'no_cache'], r) ?? false;
  if (toBool(build['pull'], [...at, 'pull'], r) === true) {
    r.warn([...at, 'pull'], 'pull: true: the building node uses a FROM image it already has and pulls only one it lacks (refresh it with `tsctl image pull`)');
  }
  // Every RUN step runs in a network namespace of its own with only loopback, up (agent/build/
  // run-step.ts), whatever is asked: that is exactly Docker's "none", so "none" is honoured as it
  // is, and "default" means that same build network. The host's network is never given to a build.
  const network = build['network'];
  if (network === 'host') {
    r.add([...at, 'network'], 'network: "host" is not supported: a build step never shares the host\'s network (RUN gets loopback only)');
  } else if (network !== undefined && network !== 'default' && network !== 'none') {
    r.add([...at, 'network'], `network: ${describeValue(network)} is not supported: RUN steps get loopback only (default and none both mean that)`);
  }
  noAttestation(build, 'provenance', at, r);
  noAttestation(build, 'sbom', at, r);
  (Array.isArray(build['platforms']) ? build['platforms'] : []).forEach((p, index) => {
    const problem = platformProblem(scalarText(p));
    if (problem !== undefined) r.add([...at, 'platforms', index], `platforms: ${problem}`);
  });
  const cacheFrom = cacheFromOf(build['cache_from'], [...at, 'cache_from'], r);

  const image = typeof service['image'] === 'string' ? service['image'] : defaultImageName(o.stack, name);
  const imageProblem = tagProblem(image);
  if (imageProblem !== undefined) r.add(typeof service['image'] === 'string' ? [...path, 'image'] : at, `image: ${imageProblem}`);
  const tags = [image];
  (Array.isArray(build['tags']) ? build['tags'] : []).forEach((raw, index) => {
    const tag = scalarText(raw);
    const problem = tagProblem(tag);
    if (problem !== undefined) r.add([...at, 'tags', index], `tags: ${problem}`);
    else if (!tags.includes(tag)) tags.push(tag);
  });

  if (r.issues.length > before || contextDir === undefined || dockerfile === undefined) return undefined;
  return {
    service: name,
    path,
    image,
    context,
    contextDir,
    ...dockerfile,
    buildArgs,
    ...(target !== undefined ? { target } : {}),
    labels,
    tags,
    noCache,
    cacheFrom,
  };
}

/** What makes two services' builds the same image (tags, cache use and cache_from do not). */
function sameBuildKey(b: ServiceBuild): string {
  return canonicalJson({
    contextDir: b.contextDir,
    dockerfilePath: b.dockerfilePath,
    dockerfileFile: b.dockerfileFile ?? null,
    dockerfileInline: b.dockerfileInline ?? null,
    buildArgs: b.buildArgs,
    target: b.target ?? null,
    labels: b.labels,
  });
}

interface JobDraft {
  first: ServiceBuild;
  services: string[];
  tags: string[];
  noCache: boolean;
  cacheFrom: string[];
  imageOf: Record<string, string>;
}

/**
 * The builds to run: services whose builds are the same (context, Dockerfile, args, target,
 * labels) share one, stored under all their names. Two different builds may not produce
 * one name: the second is an error at its build key.
 */
export function groupBuildJobs(builds: readonly ServiceBuild[], r: Reporter): ComposeBuildJob[] {
  const drafts = new Map<string, JobDraft>();
  const tagOwners = new Map<string, { key: string; service: string }>();
  for (const b of builds) {
    const key = sameBuildKey(b);
    const clash = b.tags.find((tag) => {
      const owner = tagOwners.get(normaliseReference(tag));
      return owner !== undefined && owner.key !== key;
    });
    if (clash !== undefined) {
      const owner = tagOwners.get(normaliseReference(clash));
      r.add(
        [...b.path, 'build'],
        `image ${clash} is also built by service ${owner?.service ?? '?'} from a different build (context, Dockerfile, args, target or labels differ): give one of them another image: or tag`,
      );
      continue;
    }
    for (const tag of b.tags) tagOwners.set(normaliseReference(tag), { key, service: b.service });
    const draft = drafts.get(key) ?? { first: b, services: [], tags: [], noCache: false, cacheFrom: [], imageOf: {} };
    drafts.set(key, draft);
    draft.services.push(b.service);
    for (const tag of b.tags) if (!draft.tags.includes(tag)) draft.tags.push(tag);
    for (const ref of b.cacheFrom) if (!draft.cacheFrom.includes(ref)) draft.cacheFrom.push(ref);
    draft.noCache ||= b.noCache;
    Object.defineProperty(draft.imageOf, b.service, { value: b.image, enumerable: true, writable: true, configurable: true });
  }
  return [...drafts.values()].map(({ first, services, tags, noCache, cacheFrom, imageOf }) => ({
    services,
    context: first.context,
    contextDir: first.contextDir,
    ...(first.dockerfileFile !== undefined ? { dockerfileFile: first.dockerfileFile } : {}),
    request: {
      tags,
      dockerfilePath: first.dockerfilePath,
      ...(first.dockerfileInline !== undefined ? { dockerfileInline: first.dockerfileInline } : {}),
      buildArgs: first.buildArgs,
      ...(first.target !== undefined ? { target: first.target } : {}),
      noCache,
      labels: first.labels,
      compression: 'gzip',
      push: false,
    },
    cacheFrom,
    imageOf,
  }));
}

/** `name[:tag]@digest`: what a service runs once its image is built, so every node runs exactly that. */
export function pinnedReference(image: string, manifestDigest: string): string {
  // Docker pins "name:tag@digest"; a name without a tag is "latest", as the build stored it.
  const hasTag = image.lastIndexOf(':') > image.lastIndexOf('/');
  return `${image}${hasTag ? '' : ':latest'}@${manifestDigest}`;
}
