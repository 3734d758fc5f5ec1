// Our image builder (agent/build/executor.ts, issue 18) set up for the differential tests and the
// build benchmark: a real image store holding the busybox image, our native runtime for RUN, and
// the executor, all in one temporary directory. The executor is found by importing its module at
// run time, so the oracle tests and the benchmark work (and say so) on a tree where it is not
// there yet; `loadOurBuilder` answers why it is unavailable instead of failing the import.
import { chmod, chown, copyFile, link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, rmdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import dockerignore from '@balena/dockerignore';
import type { BuildError, BuildProgress, BuildRequest, BuildResult, ImageBuilder } from '../../common/build/builder.js';
import { LocalImageStore } from '../../agent/images/image-store.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { buildBusyboxImage } from './busybox-image.js';
import { cgroupDirsUnder } from './host-cgroups.js';
import { type ComparableImage, readStoreImage } from './image-tree.js';

/** The executor's module, relative to this file. */
const EXECUTOR_MODULE = '../../agent/build/executor.js';

interface ExecutorOptions {
  images: LocalImageStore;
  runtime: NativeRuntime;
  workDir: string;
  cgroupParent: string;
  insecureRegistries: string[];
  log: (message: string) => void;
}
type ExecutorConstructor = new (options: ExecutorOptions) => ImageBuilder;

export type OurBuildResult =
  | { ok: true; durationMs: number; result: BuildResult; events: BuildProgress[] }
  | { ok: false; durationMs: number; message: string; runExitCode?: number; events: BuildProgress[] };

export interface OurBuildOptions {
  context: string;
  tag: string;
  dockerfile?: string;
  buildArgs?: Readonly<Record<string, string>>;
  target?: string;
  noCache?: boolean;
  /** Layer compression (default gzip). */
  compression?: 'gzip' | 'zstd';
}

export interface OurBuilder {
  readonly dir: string;
  build(options: OurBuildOptions): Promise<OurBuildResult>;
  read(tag: string): Promise<ComparableImage>;
  /** The image store the builder builds into (replaced by clearCache). */
  store(): LocalImageStore;
  /** A fresh image store holding only busybox: an empty step cache. */
  clearCache(): Promise<void>;
  stop(): Promise<void>;
}

/** The executor's class, or why it cannot be had (the module is not in this tree, or exports no BuildExecutor). */
export async function loadOurBuilder(): Promise<{ executor: ExecutorConstructor } | { unavailable: string }> {
  let module: unknown;
  try {
    module = await import(new URL(EXECUTOR_MODULE, import.meta.url).href);
  } catch (error) {
    return { unavailable: `${EXECUTOR_MODULE} does not load: ${(error as Error).message.split('\n')[0]}` };
  }
  const executor = (module as { BuildExecutor?: unknown }).BuildExecutor;
  if (typeof executor !== 'function') return { unavailable: `${EXECUTOR_MODULE} exports no BuildExecutor class` };
  return { executor: executor as ExecutorConstructor };
}

/**
 * A copy of `context` without what its .dockerignore excludes: what the executor is given, since
 * the sender (tsctl build) applies .dockerignore, not the executor. Modes, owners and hard links
 * (which tsctl's context tar carries as links) are kept.
 */
export async function filteredContext(context: string, into: string): Promise<string> {
  let patterns: string[] = [];
  try {
    patterns = (await readFile(join(context, '.dockerignore'), 'utf8')).split('\n');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const ignore = dockerignore.default().add(patterns);
  const copies = new Map<string, string>();
  const copy = async (from: string, to: string): Promise<void> => {
    const info = await lstat(from);
    const rel = relative(context, from);
    if (rel !== '' && ignore.ignores(rel) && !info.isDirectory()) return;
    if (info.isDirectory()) {
      await mkdir(to, { recursive: true });
      for (const name of await readdir(from)) await copy(join(from, name), join(to, name));
      // An ignored directory stays only if an exception (`!`) kept something below it.
      if (rel !== '' && ignore.ignores(rel) && (await readdir(to)).length === 0) {
        await rmdir(to);
        return;
      }
      await chmod(to, info.mode & 0o7777);
    } else if (info.isSymbolicLink()) {
      await symlink(await readlink(from), to);
    } else {
      const inode = `${info.dev}:${info.ino}`;
      const first = info.nlink > 1 ? copies.get(inode) : undefined;
      if (first !== undefined) {
        await link(first, to);
        return;
      }
      if (info.nlink > 1) copies.set(inode, to);
      await copyFile(from, to);
      await chmod(to, info.mode & 0o7777);
    }
    await chown(to, info.uid, info.gid);
  };
  await copy(context, into);
  return into;
}

/** A store with busybox, our runtime and the executor, in a temp dir; stop() removes it all (cgroups too). */
export async function startOurBuilder(executor: ExecutorConstructor, log: (message: string) => void = () => undefined): Promise<OurBuilder> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-ours-build-'));
  const cgroupParent = `tessera-test-oracle-${process.pid}`;
  const busybox = await buildBusyboxImage(join(dir, 'busybox'));
  let generation = 0;
  let contexts = 0;
  let images: LocalImageStore;
  let builder: ImageBuilder;
  const fresh = async (): Promise<void> => {
    if (generation > 0) for (const part of ['images', 'runtime', 'builds']) await rm(join(dir, `${part}-${generation}`), { recursive: true, force: true });
    generation += 1;
    images = new LocalImageStore({ root: join(dir, `images-${generation}`), credentialsFile: join(dir, 'no-registries.json') });
    await images.load(busybox.tarballPath);
    const runtime = new NativeRuntime({ stateRoot: join(dir, `runtime-${generation}`), cgroupParent });
    builder = new executor({ images, runtime, workDir: join(dir, `builds-${generation}`), cgroupParent, insecureRegistries: [], log });
  };
  const stop = async (): Promise<void> => {
    for (const cgroup of await cgroupDirsUnder(cgroupParent)) await rmdir(cgroup).catch((error: Error) => log(`cleanup: rmdir ${cgroup}: ${error.message}`));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await fresh();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    dir,
    async build(options) {
      const context = await filteredContext(options.context, join(dir, `context-${++contexts}`));
      const request: BuildRequest = {
        tags: [options.tag],
        dockerfilePath: options.dockerfile ?? 'Dockerfile',
        buildArgs: options.buildArgs ?? {},
        noCache: options.noCache ?? false,
        labels: {},
        compression: options.compression ?? 'gzip',
        push: false,
        ...(options.target === undefined ? {} : { target: options.target }),
      };
      const events: BuildProgress[] = [];
      const started = performance.now();
      try {
        const result = await builder.build(request, context, (event) => events.push(event), new AbortController().signal);
        return { ok: true, durationMs: performance.now() - started, result, events };
      } catch (error) {
        const durationMs = performance.now() - started;
        // By name: the executor was imported at run time and could, in principle, see another copy of the class.
        if (!(error instanceof Error) || error.name !== 'BuildError') throw error;
        const failed: OurBuildResult = { ok: false, durationMs, message: error.message, events };
        const run = (error as BuildError).run;
        if (run !== undefined) failed.runExitCode = run.exitCode;
        return failed;
      } finally {
        await rm(context, { recursive: true, force: true });
      }
    },
    read: (tag) => readStoreImage(images, tag),
    store: () => images,
    clearCache: fresh,
    stop,
  };
}
