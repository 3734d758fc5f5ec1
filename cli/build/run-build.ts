// One image build through the BuildImage call, as `tsctl build` and Compose's build: (h/compose-build)
// run it: the context walked with .dockerignore applied, the header sent, the manager's cap
// awaited and checked before a byte of context goes out, the context streamed as a tar from disk,
// and the manager's progress handed to `onProgress` until the result (or the failure, with its
// file:line:col and a failing RUN's last lines) arrives.
import type * as grpc from '@grpc/grpc-js';
import { lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { ApiCallError, type ApiClient } from '../client.js';
import { BuildError, type BuildProgress, type BuildRequest, type BuildResult } from '../../common/build/builder.js';
import { buildRequestProblems, contextPathParts } from '../../common/build/request-limits.js';
import type { BuildInput } from '../../proto/gen/tessera/api/v1/BuildInput.js';
import type { BuildOutput__Output } from '../../proto/gen/tessera/api/v1/BuildOutput.js';
import type { BuildFailure__Output } from '../../proto/gen/tessera/api/v1/BuildFailure.js';
import { contextTar } from './context-tar.js';
import { largestEntries, tarBytesOf, walkContext, type WalkedContext } from './context-walk.js';

/** What a build reports while it runs: the builder's progress, and the context's journey before it. */
export type BuildEvent =
  | BuildProgress
  | { readonly kind: 'context'; readonly phase: 'walked' | 'sending' | 'received'; readonly entries: number; readonly bytes: number; readonly totalBytes: number }
  | { readonly kind: 'accepted'; readonly node: string };

/** The manager takes less than the context is; names the context, the cap and where the bytes are. */
export class ContextTooLargeError extends Error {
  constructor(contextDir: string, tarBytes: number, maxBytes: number, node: string, walked: WalkedContext) {
    const largest = largestEntries(walked.entries, 3)
      .filter((e) => e.bytes > 0)
      .map((e) => `${e.path} ${mib(e.bytes)}`)
      .join(', ');
    super(
      `build context ${contextDir} is ${mib(tarBytes)} as a tar, more than the ${mib(maxBytes)} ${node} accepts; the largest parts: ${largest}; leave files out with .dockerignore`,
    );
    this.name = 'ContextTooLargeError';
  }
}

export function mib(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The builder's failure as the client received it: a BuildError with the manager's gRPC code. */
export function buildErrorOf(failure: BuildFailure__Output): BuildError {
  const location = failure.file === '' ? undefined : { file: failure.file, line: failure.line, column: failure.column };
  const run = failure.runFailed ? { exitCode: failure.exitCode, lastLines: failure.lastLines } : undefined;
  // The message already starts with file:line:col when there is a location; BuildError would add it again.
  const prefix = location === undefined ? '' : `${location.file}:${location.line}:${location.column}: `;
  const bare = failure.message.startsWith(prefix) ? failure.message.slice(prefix.length) : failure.message;
  return new BuildError(bare, location, run);
}

/** A progress message as the event it carries; undefined for the messages that are not progress. Pure. */
export function progressOf(message: BuildOutput__Output): BuildProgress | undefined {
  if (message.step) return { kind: 'step', ...message.step, stage: message.step.stage };
  if (message.cached !== undefined && message.kind === 'cached') return { kind: 'cached', step: message.cached };
  if (message.output) return { kind: 'output', step: message.output.step, line: message.output.line };
  if (message.done) return { kind: 'done', step: message.done.step, durationMs: message.done.durationMs };
  for (const kind of ['pull', 'push'] as const) {
    const transfer = message[kind];
    if (transfer)
      return { kind, reference: transfer.reference, bytes: transfer.bytes, ...(transfer.totalBytes > 0 ? { totalBytes: transfer.totalBytes } : {}) };
  }
  return undefined;
}

/** Checks what can be checked here before anything is sent: the request, the context directory, the Dockerfile in it. */
async function checkLocally(request: BuildRequest, contextDir: string): Promise<string | undefined> {
  const problems = buildRequestProblems(request);
  if (problems.length > 0) throw new Error(`build: ${problems.join('; ')}`);
  const info = await stat(contextDir).catch(() => undefined);
  if (!info?.isDirectory()) throw new Error(`build context ${contextDir}: not a directory`);
  if (request.dockerfileInline !== undefined) return undefined;
  const parsed = contextPathParts(request.dockerfilePath);
  if ('problem' in parsed) throw new Error(`build: Dockerfile: ${parsed.problem}`);
  const dockerfile = parsed.parts.join('/');
  const found = await lstat(join(contextDir, dockerfile)).catch(() => undefined);
  if (found === undefined || found.isDirectory()) throw new Error(`build context ${contextDir} has no Dockerfile ${dockerfile}`);
  return dockerfile;
}

/**
 * Builds `request` from the context directory on the manager `client` talks to. Resolves with the
 * image; rejects with a BuildError when the build failed (its message starts with file:line:col
 * when the Dockerfile is at fault), a ContextTooLargeError, or the call's error. `signal` cancels
 * the call, and with it the build.
 */
export async function buildImage(
  client: ApiClient,
  request: BuildRequest,
  contextDir: string,
  onProgress: (event: BuildEvent) => void,
  signal?: AbortSignal,
): Promise<BuildResult> {
  const dockerfile = await checkLocally(request, contextDir);
  const walked = await walkContext(contextDir, dockerfile === undefined ? [] : [dockerfile]);
  const tarBytes = tarBytesOf(walked.entries);
  onProgress({ kind: 'context', phase: 'walked', entries: walked.entries.length, bytes: 0, totalBytes: tarBytes });
  signal?.throwIfAborted();
  const stream = client.buildImage();
  return new Promise<BuildResult>((resolve, reject) => {
    let settled = false;
    let failure: BuildFailure__Output | undefined;
    let result: BuildResult | undefined;
    const settle = (err: Error | undefined, value?: BuildResult) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) {
        stream.cancel();
        reject(err);
      } else resolve(value!);
    };
    const onAbort = () => settle(signal?.reason instanceof Error ? signal.reason : new Error('the build was interrupted'));
    signal?.addEventListener('abort', onAbort, { once: true });

    const sendContext = async () => {
      let sent = 0;
      for await (const data of contextTar(contextDir, walked.entries)) {
        if (settled) return;
        sent += data.length;
        const more = stream.write({ context: data } satisfies BuildInput);
        onProgress({ kind: 'context', phase: 'sending', entries: walked.entries.length, bytes: sent, totalBytes: tarBytes });
        if (!more) await drained(stream, () => settled);
      }
      if (settled) return;
      stream.write({ contextEnd: true });
      stream.end();
    };

    stream.on('data', (message: BuildOutput__Output) => {
      if (message.accepted) {
        const { maxContextBytes, node } = message.accepted;
        if (tarBytes > maxContextBytes) return settle(new ContextTooLargeError(contextDir, tarBytes, maxContextBytes, node, walked));
        onProgress({ kind: 'accepted', node });
        sendContext().catch((err: unknown) => settle(err instanceof Error ? err : new Error(String(err))));
        return;
      }
      if (message.contextReceived !== undefined && message.kind === 'contextReceived') {
        onProgress({ kind: 'context', phase: 'received', entries: walked.entries.length, bytes: message.contextReceived, totalBytes: tarBytes });
        return;
      }
      if (message.failure) failure = message.failure;
      else if (message.result) result = { ...message.result };
      else {
        const progress = progressOf(message);
        if (progress !== undefined) onProgress(progress);
      }
    });
    stream.on('end', () => (result ? settle(undefined, result) : settle(new Error('the build ended without a result'))));
    stream.on('error', (err: grpc.ServiceError) => settle(failure === undefined ? new ApiCallError(err) : buildErrorOf(failure)));
    stream.write({
      header: {
        tags: [...request.tags],
        dockerfilePath: request.dockerfilePath,
        dockerfileInline: request.dockerfileInline ?? '',
        buildArgs: { ...request.buildArgs },
        target: request.target ?? '',
        noCache: request.noCache,
        labels: { ...request.labels },
        compression: request.compression,
        push: request.push,
        contextBytes: tarBytes,
      },
    });
  });
}

/** Waits for the stream to take more, or for the call to be over. */
function drained(stream: grpc.ClientDuplexStream<BuildInput, BuildOutput__Output>, over: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (over()) return resolve();
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
