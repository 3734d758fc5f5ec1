// `tsctl build -t NAME[:TAG] [-f FILE] [--build-arg K=V] [--target STAGE] [--no-cache] [--push] CONTEXT`
// (issue 18), with docker build's flags. The context is walked here with .dockerignore applied
// and streamed to the manager the client talks to, which builds; progress goes to stderr (a live
// frame on a terminal, plain lines otherwise), the image's manifest digest and names to stdout.
// A failed build exits 1 with the manager's message (file:line:col first when the Dockerfile is
// at fault) and a failing RUN's last lines.
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';

import type { WithClient } from '../with-client.js';
import { BuildError, type BuildRequest } from '../../common/build/builder.js';
import { BUILD_LIMITS } from '../../common/build/request-limits.js';
import { buildImage } from '../build/run-build.js';
import { buildProgressRenderer, resultLines, type BuildProgressRenderer } from '../build/progress.js';

export interface BuildOptions {
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  /** commander's --no-cache: false when given. */
  cache: boolean;
  label: string[];
  compression: string;
  push?: boolean;
  quiet?: boolean;
  progress: string;
}

/** Redraws of the terminal frame per second (spinners and clocks). */
const TICK_MS = 100;

function collect(value: string, all: string[]): string[] {
  return [...all, value];
}

/** --build-arg K=V, or K alone for the value of $K here (left out when $K is not set, as docker does). Pure. */
export function parseBuildArgs(args: readonly string[], env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === 0) throw new Error(`--build-arg ${JSON.stringify(arg)}: expected KEY=VALUE or KEY`);
    if (eq > 0) out[arg.slice(0, eq)] = arg.slice(eq + 1);
    else if (env[arg] !== undefined) out[arg] = env[arg];
  }
  return out;
}

/** --label K=V (K alone: an empty value). Pure. */
export function parseLabels(labels: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const label of labels) {
    const eq = label.indexOf('=');
    if (eq === 0) throw new Error(`--label ${JSON.stringify(label)}: expected KEY=VALUE`);
    if (eq > 0) out[label.slice(0, eq)] = label.slice(eq + 1);
    else out[label] = '';
  }
  return out;
}

/**
 * Where the Dockerfile comes from: a path inside the context (what -f names relative to the
 * current directory, as docker reads it), or its text when it is outside the context or `-`
 * (stdin), sent inline under the name -f gave it.
 */
export async function dockerfileOf(
  file: string | undefined,
  contextDir: string,
  cwd: string,
  readStdin: () => Promise<string>,
): Promise<Pick<BuildRequest, 'dockerfilePath' | 'dockerfileInline'>> {
  if (file === undefined) return { dockerfilePath: 'Dockerfile' };
  if (file === '-') return { dockerfilePath: '-', dockerfileInline: await readStdin() };
  const absolute = resolve(cwd, file);
  const inside = relative(resolve(cwd, contextDir), absolute);
  if (inside !== '' && !inside.startsWith(`..${sep}`) && inside !== '..' && !isAbsolute(inside)) return { dockerfilePath: inside.split(sep).join('/') };
  const text = await readFile(absolute).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`-f ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  if (text.length > BUILD_LIMITS.maxInlineDockerfileBytes)
    throw new Error(`-f ${file}: ${text.length} bytes; a Dockerfile is at most ${BUILD_LIMITS.maxInlineDockerfileBytes}`);
  return { dockerfilePath: file, dockerfileInline: text.toString('utf8') };
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BUILD_LIMITS.maxInlineDockerfileBytes)
      throw new Error(`-f -: the Dockerfile on stdin is larger than ${BUILD_LIMITS.maxInlineDockerfileBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The request the flags ask for. */
export async function buildRequestOf(contextDir: string, options: BuildOptions): Promise<BuildRequest> {
  if (options.compression !== 'gzip' && options.compression !== 'zstd')
    throw new Error(`--compression must be gzip or zstd, got ${JSON.stringify(options.compression)}`);
  return {
    tags: options.tag,
    ...(await dockerfileOf(options.file, contextDir, process.cwd(), readAllStdin)),
    buildArgs: parseBuildArgs(options.buildArg, process.env),
    ...(options.target === undefined ? {} : { target: options.target }),
    noCache: !options.cache,
    labels: parseLabels(options.label),
    compression: options.compression,
    push: options.push === true,
  };
}

/** Says a failure the way a user can act on it: a failing RUN's last lines, then the message. */
export function failureText(err: unknown): string {
  if (err instanceof BuildError && err.run !== undefined) {
    const tail = err.run.lastLines.map((line) => `  | ${line}\n`).join('');
    return `${tail}error: ${err.message} (exit code ${err.run.exitCode})\n`;
  }
  return `error: ${err instanceof Error ? err.message : String(err)}\n`;
}

function rendererFor(options: BuildOptions): BuildProgressRenderer | undefined {
  if (options.quiet) return undefined;
  if (!['auto', 'plain', 'tty'].includes(options.progress)) throw new Error(`--progress must be auto, plain or tty, got ${JSON.stringify(options.progress)}`);
  const tty = options.progress === 'tty' || (options.progress === 'auto' && process.stderr.isTTY);
  return buildProgressRenderer(process.stderr, tty);
}

export function registerBuildCommand(program: Command, withClient: WithClient): void {
  program
    .command('build')
    .description('build an image from a Dockerfile and a context directory, on the manager this client talks to')
    .argument('<context>', 'the build context: a directory (.dockerignore in it leaves files out)')
    .option('-t, --tag <name>', 'name the image NAME[:TAG] (repeatable; at least one)', collect, [] as string[])
    .option('-f, --file <path>', 'the Dockerfile (default CONTEXT/Dockerfile; - reads it from stdin)')
    .option('--build-arg <key=value>', 'set a build-time variable; KEY alone takes $KEY (repeatable)', collect, [] as string[])
    .option('--target <stage>', 'build this stage of a multi-stage Dockerfile')
    .option('--no-cache', 'run every step, take nothing from the cache')
    .option('--label <key=value>', 'add a label to the image (repeatable)', collect, [] as string[])
    .option('--compression <gzip|zstd>', 'layer compression', 'gzip')
    .option('--push', 'push the first tag to its registry once built')
    .option('-q, --quiet', 'print only the image digest')
    .option('--progress <auto|plain|tty>', 'how progress is shown', 'auto')
    .action(async (contextDir: string, options: BuildOptions) => {
      const request = await buildRequestOf(contextDir, options);
      const renderer = rendererFor(options);
      const interrupted = new AbortController();
      const onInterrupt = () => interrupted.abort(new Error('interrupted; the build was cancelled'));
      process.once('SIGINT', onInterrupt);
      const ticker = renderer === undefined ? undefined : setInterval(() => renderer.tick(), TICK_MS);
      try {
        const result = await withClient((client) => buildImage(client, request, contextDir, (event) => renderer?.event(event), interrupted.signal));
        renderer?.finish();
        process.stdout.write(`${(options.quiet ? [result.manifestDigest] : resultLines(result)).join('\n')}\n`);
      } catch (err) {
        renderer?.finish();
        process.stderr.write(failureText(err));
        process.exitCode = interrupted.signal.aborted ? 130 : 1;
      } finally {
        if (ticker !== undefined) clearInterval(ticker);
        process.off('SIGINT', onInterrupt);
      }
    });
}
