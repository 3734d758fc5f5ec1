// What a build request (issue 18) may ask for, checked the same way by the API server, which must,
// and by tsctl, which wants to say so before it sends a context. Pure. Every limit is named in the
// problem it produces, so a refused request says what to change.
import { parseReference, namesRegistry, InvalidReferenceError } from '../images/reference.js';
import { quoteName } from '../resources/limits.js';
import type { BuildRequest } from './builder.js';

export const BUILD_LIMITS = {
  /** -t given this many times at most. */
  maxTags: 16,
  /** A Dockerfile path (or the name an inline one is shown under), in bytes. */
  maxPathBytes: 4096,
  /** One path component, in bytes (the kernel's NAME_MAX). */
  maxNameBytes: 255,
  /** An inline Dockerfile's text, in bytes. */
  maxInlineDockerfileBytes: 1024 * 1024,
  maxBuildArgs: 256,
  maxBuildArgKeyBytes: 256,
  maxBuildArgValueBytes: 64 * 1024,
  /** All build args together, keys and values, in bytes (the header must fit one gRPC message). */
  maxBuildArgsTotalBytes: 1024 * 1024,
  maxLabels: 256,
  maxLabelKeyBytes: 1024,
  maxLabelValueBytes: 64 * 1024,
  /** All labels together, keys and values, in bytes: they end up in the image config. */
  maxLabelsTotalBytes: 256 * 1024,
  /** A stage name for --target, in bytes. */
  maxTargetBytes: 128,
  /** One context chunk on the wire. */
  maxChunkBytes: 1024 * 1024,
  /** Entries (files, directories, links) in one context. */
  maxContextEntries: 200_000,
} as const;

/** The default cap of a context's tar, in bytes (tsd's --build-context-max-bytes). */
export const DEFAULT_MAX_CONTEXT_BYTES = 512 * 1024 * 1024;

// ARG names as Docker accepts them in practice: shell-variable-like, with the dots and dashes some projects use.
const BUILD_ARG_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
// Stage names as BuildKit's parser accepts them (`FROM x AS name`).
const STAGE_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

function bytes(text: string): number {
  return Buffer.byteLength(text);
}

/**
 * The components of a path inside a build context (a Dockerfile's, a tar entry's), or why it is
 * not one: absolute, with "..", NUL or a newline, or over the length limits. "." parts are dropped.
 */
export function contextPathParts(path: string): { parts: string[] } | { problem: string } {
  if (path === '') return { problem: 'an empty path' };
  if (bytes(path) > BUILD_LIMITS.maxPathBytes) return { problem: `a path longer than ${BUILD_LIMITS.maxPathBytes} bytes` };
  if (path.includes('\0') || path.includes('\n')) return { problem: `the path ${quoteName(path)} has a NUL or newline in it` };
  if (path.startsWith('/')) return { problem: `the absolute path ${quoteName(path)}: paths are relative to the context` };
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { problem: `the path ${quoteName(path)} has ".." in it: it must stay inside the context` };
  const long = parts.find((p) => bytes(p) > BUILD_LIMITS.maxNameBytes);
  if (long !== undefined) return { problem: `the path ${quoteName(path)} has a component longer than ${BUILD_LIMITS.maxNameBytes} bytes` };
  return { parts };
}

function tagProblems(tags: readonly string[], push: boolean): string[] {
  const problems: string[] = [];
  if (tags.length === 0) problems.push('no tag: give the image a name with -t NAME[:TAG]');
  if (tags.length > BUILD_LIMITS.maxTags) problems.push(`${tags.length} tags; at most ${BUILD_LIMITS.maxTags}`);
  for (const tag of tags.slice(0, BUILD_LIMITS.maxTags)) {
    try {
      const ref = parseReference(tag);
      if (ref.digest !== undefined) problems.push(`tag ${quoteName(tag)}: a built image is named by a tag, not a digest`);
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err;
      problems.push(`tag: ${err.message}`);
    }
  }
  // As `tsctl image push` without a target: the name must say where to push.
  if (push && tags.length > 0 && !namesRegistry(tags[0]!))
    problems.push(`--push: the first tag ${quoteName(tags[0]!)} names no registry (e.g. 127.0.0.1:5000/app:1)`);
  return problems;
}

function dockerfileProblems(request: Pick<BuildRequest, 'dockerfilePath' | 'dockerfileInline'>): string[] {
  const inline = request.dockerfileInline;
  if (inline !== undefined && inline !== '') {
    const problems: string[] = [];
    if (bytes(inline) > BUILD_LIMITS.maxInlineDockerfileBytes)
      problems.push(`the inline Dockerfile is ${bytes(inline)} bytes; at most ${BUILD_LIMITS.maxInlineDockerfileBytes}`);
    // Only a name for messages: any text, but short and on one line.
    if (request.dockerfilePath === '' || bytes(request.dockerfilePath) > BUILD_LIMITS.maxPathBytes || CONTROL.test(request.dockerfilePath))
      problems.push(`the inline Dockerfile's name must be 1 to ${BUILD_LIMITS.maxPathBytes} bytes without control characters`);
    return problems;
  }
  const parsed = contextPathParts(request.dockerfilePath);
  if ('problem' in parsed) return [`Dockerfile (-f): ${parsed.problem}`];
  if (parsed.parts.length === 0) return [`Dockerfile (-f) ${quoteName(request.dockerfilePath)} names the context itself, not a file`];
  return [];
}

function mapProblems(
  what: string,
  entries: Array<[string, string]>,
  limits: { count: number; keyBytes: number; valueBytes: number },
  keyProblem: (key: string) => string | undefined,
): string[] {
  const problems: string[] = [];
  if (entries.length > limits.count) problems.push(`${entries.length} ${what}s; at most ${limits.count}`);
  for (const [key, value] of entries.slice(0, limits.count)) {
    if (bytes(key) > limits.keyBytes) problems.push(`${what} ${quoteName(key)}: the name is longer than ${limits.keyBytes} bytes`);
    else {
      const problem = keyProblem(key);
      if (problem !== undefined) problems.push(`${what} ${quoteName(key)}: ${problem}`);
    }
    if (bytes(value) > limits.valueBytes) problems.push(`${what} ${quoteName(key)}: the value is longer than ${limits.valueBytes} bytes`);
    if (value.includes('\0')) problems.push(`${what} ${quoteName(key)}: the value has a NUL byte in it`);
  }
  return problems;
}

/** Everything wrong with a request, each naming the field and the limit; empty when it may be built. */
export function buildRequestProblems(request: BuildRequest): string[] {
  const problems = [...tagProblems(request.tags, request.push), ...dockerfileProblems(request)];
  problems.push(
    ...mapProblems(
      'build arg',
      Object.entries(request.buildArgs),
      { count: BUILD_LIMITS.maxBuildArgs, keyBytes: BUILD_LIMITS.maxBuildArgKeyBytes, valueBytes: BUILD_LIMITS.maxBuildArgValueBytes },
      (key) => (BUILD_ARG_KEY.test(key) ? undefined : 'not a name (letters, digits, _ . -, not starting with a digit)'),
    ),
  );
  const argBytes = Object.entries(request.buildArgs).reduce((sum, [k, v]) => sum + bytes(k) + bytes(v), 0);
  if (argBytes > BUILD_LIMITS.maxBuildArgsTotalBytes)
    problems.push(`the build args are ${argBytes} bytes together; at most ${BUILD_LIMITS.maxBuildArgsTotalBytes}`);
  const labels = Object.entries(request.labels);
  problems.push(
    ...mapProblems(
      'label',
      labels,
      { count: BUILD_LIMITS.maxLabels, keyBytes: BUILD_LIMITS.maxLabelKeyBytes, valueBytes: BUILD_LIMITS.maxLabelValueBytes },
      (key) => (key === '' ? 'an empty name' : CONTROL.test(key) ? 'control characters in the name' : undefined),
    ),
  );
  const labelBytes = labels.reduce((sum, [k, v]) => sum + bytes(k) + bytes(v), 0);
  if (labelBytes > BUILD_LIMITS.maxLabelsTotalBytes) problems.push(`the labels are ${labelBytes} bytes together; at most ${BUILD_LIMITS.maxLabelsTotalBytes}`);
  if (request.target !== undefined && request.target !== '') {
    if (bytes(request.target) > BUILD_LIMITS.maxTargetBytes) problems.push(`--target: longer than ${BUILD_LIMITS.maxTargetBytes} bytes`);
    else if (!STAGE_NAME.test(request.target)) problems.push(`--target ${quoteName(request.target)} is not a stage name (a letter, then letters, digits, _ . -)`);
  }
  // The type says gzip | zstd, but a request off the wire is only cast to it.
  const compression: string = request.compression;
  if (compression !== 'gzip' && compression !== 'zstd') problems.push(`compression ${quoteName(compression)}: gzip or zstd`);
  return problems;
}
