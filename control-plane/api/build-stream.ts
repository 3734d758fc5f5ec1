// The BuildImage call (tsctl build, Compose build:, issue 18). The client's header is checked
// first (common/build/request-limits.ts), then the manager answers `accepted` with its context
// cap, receives the context tar into a fresh directory of its own (control-plane/build/
// context-unpack.ts: size capped while it streams, paths and links kept inside), and hands it to
// the node's ImageBuilder, streaming the builder's progress back. The build runs where the call
// lands, follower or leader: the image is then in that node's store, and other nodes fetch it from
// there through the image distribution. The directory is removed however the call ends, and a
// client that goes away cancels the build.
import * as grpc from '@grpc/grpc-js';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import type { BuildInput__Output } from '../../proto/gen/tessera/api/v1/BuildInput.js';
import type { BuildHeader__Output } from '../../proto/gen/tessera/api/v1/BuildHeader.js';
import type { BuildOutput } from '../../proto/gen/tessera/api/v1/BuildOutput.js';
import { BuildError, type BuildProgress, type BuildRequest, type BuildResult, type ImageBuilder } from '../../common/build/builder.js';
import { BUILD_LIMITS, buildRequestProblems, contextPathParts } from '../../common/build/request-limits.js';
import { quoteName } from '../../common/resources/limits.js';
import { ContextRefusedError, unpackContext } from '../build/context-unpack.js';
import { ApiError, invalidArgument } from './errors.js';

export type BuildCall = grpc.ServerDuplexStream<BuildInput__Output, BuildOutput>;

/** The client has this long to send its header, and then each context chunk after the one before. */
export const BUILD_HEADER_TIMEOUT_MS = 10_000;
export const BUILD_CHUNK_IDLE_MS = 60_000;
/** Builds at once on one manager: each holds a context on disk (up to the cap) and a container. */
export const MAX_CONCURRENT_BUILDS = 4;
/** Progress messages the client has not taken yet beyond which RUN output lines are dropped (and counted). */
const MAX_PENDING_OUTPUT = 1000;
/** One output line on the wire, in characters. */
const MAX_OUTPUT_LINE_CHARS = 4096;

export interface BuildDeps {
  /** The node's builder; absent: BuildImage is UNIMPLEMENTED here. */
  builder?: ImageBuilder;
  /** Where contexts are unpacked, each in a directory of its own. */
  contextRoot: string;
  /** Tar bytes of one context at most. */
  maxContextBytes: number;
  /** The node that builds, for the client ("node n1"). */
  node: string;
  /** Called once at the end with the header (undefined when none came) and the error, if any: the audit log's entry. */
  record(header: BuildHeader__Output | undefined, error?: unknown): void;
}

/** The BuildRequest a header asks for, or an INVALID_ARGUMENT naming everything wrong with it. Pure. */
export function parseBuildHeader(header: BuildHeader__Output): BuildRequest {
  const request: BuildRequest = {
    tags: header.tags,
    dockerfilePath: header.dockerfilePath === '' && header.dockerfileInline === '' ? 'Dockerfile' : header.dockerfilePath,
    ...(header.dockerfileInline === '' ? {} : { dockerfileInline: header.dockerfileInline }),
    buildArgs: header.buildArgs,
    ...(header.target === '' ? {} : { target: header.target }),
    noCache: header.noCache,
    labels: header.labels,
    compression: (header.compression === '' ? 'gzip' : header.compression) as BuildRequest['compression'],
    push: header.push,
  };
  const problems = buildRequestProblems(request);
  if (problems.length > 0) throw invalidArgument(`build: ${problems.join('; ')}`);
  return request;
}

/** The gRPC code a builder's failure is sent with: the Dockerfile's fault, or the build's. */
function buildErrorCode(err: BuildError): grpc.status {
  return err.location !== undefined && err.run === undefined ? grpc.status.INVALID_ARGUMENT : grpc.status.FAILED_PRECONDITION;
}

/**
 * The client's messages, one at a time: the call is paused while a message waits to be taken, so
 * the client is held by gRPC's flow control rather than buffered here. Listens from the start, so
 * that the end of the client's side is seen whenever it comes.
 */
export class CallReader {
  private readonly queue: BuildInput__Output[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly call: BuildCall) {
    call.on('data', (message: BuildInput__Output) => {
      this.queue.push(message);
      call.pause();
      this.wake?.();
    });
    call.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    call.on('error', (err: Error) => {
      this.failure ??= err;
      this.wake?.();
    });
    call.on('cancelled', () => {
      this.failure ??= new ApiError(grpc.status.CANCELLED, 'build: the client went away');
      this.wake?.();
    });
  }

  /** The next message; undefined once the client has half-closed. Refuses after `timeoutMs` without one. */
  async next(timeoutMs: number, what: string): Promise<BuildInput__Output | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.queue.shift();
      if (message !== undefined) return message;
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) throw invalidArgument(`build: no ${what} within ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
        this.call.resume();
      });
    }
  }
}

/** The context tar's chunks, up to context_end; anything else on the stream meanwhile is refused. */
async function* contextChunks(reader: CallReader): AsyncGenerator<Buffer> {
  for (;;) {
    const message = await reader.next(BUILD_CHUNK_IDLE_MS, 'context data');
    if (message === undefined) throw invalidArgument('build: the stream ended before the context was complete (no context_end)');
    if (message.kind === 'contextEnd') return;
    if (message.kind !== 'context' || message.context === undefined)
      throw invalidArgument(message.kind === 'header' ? 'build: a second header' : 'build: a message without context data in the context stream');
    const chunk = message.context;
    if (chunk.length > BUILD_LIMITS.maxChunkBytes)
      throw invalidArgument(`build: a context message of ${chunk.length} bytes; at most ${BUILD_LIMITS.maxChunkBytes}`);
    yield chunk;
  }
}

/** What one progress event is on the wire. Pure. */
export function progressMessage(event: BuildProgress): BuildOutput {
  switch (event.kind) {
    case 'step':
      return { step: { stage: event.stage, step: event.step, totalSteps: event.totalSteps, instruction: event.instruction } };
    case 'cached':
      return { cached: event.step };
    case 'output':
      return { output: { step: event.step, line: event.line.length > MAX_OUTPUT_LINE_CHARS ? `${event.line.slice(0, MAX_OUTPUT_LINE_CHARS)}…` : event.line } };
    case 'done':
      return { done: { step: event.step, durationMs: Math.max(0, Math.round(event.durationMs)) } };
    case 'pull':
    case 'push': {
      const transfer = { reference: event.reference, bytes: event.bytes, totalBytes: event.totalBytes ?? 0 };
      return event.kind === 'pull' ? { pull: transfer } : { push: transfer };
    }
  }
}

/**
 * Writes progress to the client without holding more than MAX_PENDING_OUTPUT messages for it:
 * past that, RUN output lines are dropped (the builder cannot wait for a slow client) and a
 * line says how many before the next message that gets through. Step events are never dropped.
 */
export class ProgressWriter {
  private pending = 0;
  private dropped = 0;
  private lastStep = 0;

  /** Only the call's write: its callback says gRPC has taken the message. */
  constructor(private readonly call: { write(message: BuildOutput, callback: () => void): unknown }) {}

  send(message: BuildOutput): void {
    this.pending++;
    this.call.write(message, () => this.pending--);
  }

  progress(event: BuildProgress): void {
    if (event.kind === 'output' && this.pending >= MAX_PENDING_OUTPUT) {
      this.dropped++;
      this.lastStep = event.step;
      return;
    }
    if (this.dropped > 0) {
      this.send({ output: { step: this.lastStep, line: `(${this.dropped} lines of output not shown: the client took them too slowly)` } });
      this.dropped = 0;
    }
    this.send(progressMessage(event));
  }
}

/** Builds running on this manager, against MAX_CONCURRENT_BUILDS. */
export class BuildSlots {
  private running = 0;

  constructor(private readonly max = MAX_CONCURRENT_BUILDS) {}

  take(node: string): () => void {
    if (this.running >= this.max)
      throw new ApiError(grpc.status.RESOURCE_EXHAUSTED, `build: ${this.running} builds already run on ${node}, at most ${this.max} at once; try again later`);
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
    };
  }
}

/** Refuses a context without the Dockerfile the request names (when it is not inline). */
async function checkDockerfilePresent(request: BuildRequest, dir: string): Promise<void> {
  if (request.dockerfileInline !== undefined) return;
  const parsed = contextPathParts(request.dockerfilePath);
  if ('problem' in parsed) throw invalidArgument(`build: Dockerfile: ${parsed.problem}`);
  // Every symlink in the context was checked to stay inside it, so following them here is safe.
  const info = await stat(join(dir, ...parsed.parts)).catch(() => undefined);
  if (info === undefined || !info.isFile()) throw invalidArgument(`build: the context has no Dockerfile ${quoteName(request.dockerfilePath)}`);
}

export async function serveBuild(deps: BuildDeps, slots: BuildSlots, call: BuildCall): Promise<void> {
  const cancelled = new AbortController();
  call.on('cancelled', () => cancelled.abort(new Error('build: the client went away')));
  let header: BuildHeader__Output | undefined;
  let dir: string | undefined;
  let release: (() => void) | undefined;
  const reader = new CallReader(call);
  const writer = new ProgressWriter(call);
  let result: BuildResult;
  try {
    const first = await reader.next(BUILD_HEADER_TIMEOUT_MS, 'header');
    if (first?.header == null) throw invalidArgument('build: the first message must be the header');
    header = first.header;
    const request = parseBuildHeader(header);
    if (deps.builder === undefined) throw new ApiError(grpc.status.UNIMPLEMENTED, 'image builds are not available on this node');
    // The cap first, so that tsctl can say which parts of its context are too large before it sends any.
    writer.send({ accepted: { maxContextBytes: deps.maxContextBytes, node: deps.node } });
    if (header.contextBytes > deps.maxContextBytes)
      throw invalidArgument(`build: the context is ${header.contextBytes} bytes, more than the ${deps.maxContextBytes} ${deps.node} accepts`);
    release = slots.take(deps.node);
    await mkdir(deps.contextRoot, { recursive: true, mode: 0o700 });
    dir = await mkdtemp(join(deps.contextRoot, 'context-'));
    const unpacked = await unpackContext(
      contextChunks(reader),
      dir,
      { maxBytes: deps.maxContextBytes, maxEntries: BUILD_LIMITS.maxContextEntries },
      cancelled.signal,
    );
    await checkDockerfilePresent(request, dir);
    writer.send({ contextReceived: unpacked.bytes });
    result = await deps.builder.build(request, dir, (event) => writer.progress(event), cancelled.signal);
  } catch (err) {
    deps.record(header, err);
    throw toBuildApiError(err, call);
  } finally {
    release?.();
    // Before the answer ends the call: a client that sees the end finds nothing left behind.
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
  writer.send({
    result: {
      manifestDigest: result.manifestDigest,
      configDigest: result.configDigest,
      tags: [...result.tags],
      layers: result.layers,
      cachedSteps: result.cachedSteps,
      ranSteps: result.ranSteps,
    },
  });
  deps.record(header);
  call.end();
}

/** The error as the call ends with it; a builder's failure is first sent as a `failure` message with its location. */
function toBuildApiError(err: unknown, call: BuildCall): unknown {
  if (err instanceof ContextRefusedError) return invalidArgument(err.message);
  if (err instanceof BuildError || (err instanceof Error && err.name === 'BuildError')) {
    const failure = err as BuildError;
    call.write({
      failure: {
        message: failure.message,
        file: failure.location?.file ?? '',
        line: failure.location?.line ?? 0,
        column: failure.location?.column ?? 0,
        runFailed: failure.run !== undefined,
        exitCode: failure.run?.exitCode ?? 0,
        lastLines: [...(failure.run?.lastLines ?? [])].slice(-50),
      },
    });
    return new ApiError(buildErrorCode(failure), failure.message);
  }
  return err;
}
