// Debian's buildah as the oracle for our image builder (issue 18): it builds a Dockerfile FROM our
// busybox image, served by a loopback registry, and its result is read back as a ComparableImage.
//
// Everything buildah reads or writes is in one temporary directory, named by environment variables
// and flags, never the host's /etc/containers or /var/lib/containers:
//   CONTAINERS_STORAGE_CONF   storage.conf: vfs driver (overlay on request), graphroot and runroot in the temp dir
//   CONTAINERS_REGISTRIES_CONF registries.conf: docker.io is *remapped* to the loopback registry
//                              (insecure, plain HTTP), so `FROM busybox` resolves to our busybox and
//                              nothing can reach the internet; short-name mode disabled (no alias
//                              cache written under /var/cache)
//   CONTAINERS_CONF           containers.conf of our own (cgroupfs, no events log)
//   REGISTRY_AUTH_FILE, TMPDIR in the temp dir
//   --signature-policy        an insecureAcceptAnything policy file in the temp dir
// plus `--root/--runroot/--storage-driver` on every command. RUN steps run with
// `--isolation oci` (runc) and `--network none`.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildBusyboxImage } from './busybox-image.js';
import { type RunningRegistry, pushImage, startRegistry } from './registry.js';
import { type ComparableImage, readDirTransportImage } from './image-tree.js';

export const BUILDAH = '/usr/bin/buildah';

/** Whether Debian's buildah is installed (deploy/install-deps.sh installs it). */
export function buildahInstalled(): boolean {
  return existsSync(BUILDAH);
}

export interface BuildahBuildOptions {
  /** The context directory; its .dockerignore is honoured by buildah itself. */
  context: string;
  /** Dockerfile path relative to the context (default "Dockerfile"). */
  dockerfile?: string;
  tag: string;
  buildArgs?: Readonly<Record<string, string>>;
  target?: string;
  /** Default true: `--layers`, one layer per filesystem-changing step and a step cache (see docs below). */
  layers?: boolean;
  noCache?: boolean;
}

export type BuildahBuildResult =
  | { ok: true; durationMs: number; output: string }
  | {
      ok: false;
      durationMs: number;
      /** The failing RUN's exit status as buildah reports it ("exit status N"), if it says one. */
      runExitCode?: number;
      /** buildah's own exit code. */
      buildahExitCode: number;
      output: string;
    };

export interface BuildahOracle {
  readonly dir: string;
  readonly storageDriver: 'vfs' | 'overlay';
  readonly registry: RunningRegistry;
  /** Where buildah finds the base image: docker.io/library/busybox:latest, remapped to the loopback registry. */
  readonly baseImage: string;
  build(options: BuildahBuildOptions): Promise<BuildahBuildResult>;
  /**
   * Writes the image to a `dir:` directory (`buildah push IMAGE dir:DIR`) and reads it back. Not
   * `oci:`: that re-encodes the config as an OCI one, dropping Healthcheck.
   */
  read(tag: string): Promise<ComparableImage>;
  /** Removes every image and working container but the base image (an empty step cache). */
  clearCache(): Promise<void>;
  stop(): Promise<void>;
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(BUILDAH, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (error === null) resolve({ code: 0, output });
      else if (typeof error.code === 'number') resolve({ code: error.code, output });
      else reject(new Error(`buildah ${args.join(' ')}: ${error.message}\n${output}`));
    });
  });
}

/** Unmounts whatever is still mounted under `dir` (deepest first), lazily: buildah's runroot can leave some after a kill. */
async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) {
    await new Promise<void>((resolve) => {
      execFile('umount', ['-l', point], (error) => {
        // Deliberately not thrown: cleanup goes on with the next mount; the rm below reports what is left.
        if (error) process.stderr.write(`buildah cleanup: umount ${point}: ${error.message}\n`);
        resolve();
      });
    });
  }
}

export interface StartBuildahOptions {
  /**
   * c/storage driver; default vfs (plain copies: nothing mounted, nothing to leak). overlay is
   * what a real buildah uses and what bench:build gives it, for a fair race with our overlay steps;
   * its mounts are under the temp dir and taken down by stop().
   */
  storageDriver?: 'vfs' | 'overlay';
}

/** Starts a loopback registry holding our busybox as library/busybox:latest, and a buildah confined to a temp dir. */
export async function startBuildah(options: StartBuildahOptions = {}): Promise<BuildahOracle> {
  const driver = options.storageDriver ?? 'vfs';
  const dir = await mkdtemp(join(tmpdir(), 'tessera-buildah-'));
  let registry: RunningRegistry | undefined;
  const root = join(dir, 'storage');
  const runroot = join(dir, 'run');
  const policy = join(dir, 'policy.json');
  const global = ['--root', root, '--runroot', runroot, '--storage-driver', driver];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: join(dir, 'home'),
    TMPDIR: join(dir, 'tmp'),
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
    CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
    BUILDAH_ISOLATION: 'oci',
  };
  const stop = async (): Promise<void> => {
    if (existsSync(root)) {
      // Working containers first (they hold images), then every image; failures are reported, not thrown, so cleanup goes on.
      for (const args of [
        ['rm', '--all'],
        ['rmi', '--all', '--force'],
      ]) {
        const result = await run([...global, ...args], env, 120_000).catch((error: Error) => ({ code: -1, output: error.message }));
        if (result.code !== 0 && !/no images|image not known/i.test(result.output))
          process.stderr.write(`buildah cleanup: buildah ${args.join(' ')}: ${result.output}\n`);
      }
    }
    // Whatever the storage driver left mounted (overlay's layer mounts, the graph root's own bind).
    await unmountUnder(dir);
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const sub of ['home', 'tmp', 'oci']) await mkdir(join(dir, sub), { recursive: true });
    registry = await startRegistry();
    const busybox = await buildBusyboxImage(join(dir, 'busybox'));
    await pushImage(busybox.ociLayoutDir, registry.host, 'library/busybox:latest');
    // buildah refuses an auth file that does not exist; an empty one: no credentials for anything.
    await writeFile(env.REGISTRY_AUTH_FILE as string, '{"auths":{}}\n');
    await writeFile(policy, `${JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] })}\n`);
    await writeFile(env.CONTAINERS_STORAGE_CONF as string, `[storage]\ndriver = "${driver}"\ngraphroot = "${root}"\nrunroot = "${runroot}"\n`);
    await writeFile(
      env.CONTAINERS_REGISTRIES_CONF as string,
      [
        'unqualified-search-registries = ["docker.io"]',
        'short-name-mode = "disabled"',
        '[[registry]]',
        'prefix = "docker.io"',
        `location = "${registry.host}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    await writeFile(env.CONTAINERS_CONF as string, ['[containers]', '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "none"', ''].join('\n'));
    const baseImage = 'docker.io/library/busybox:latest';
    const pulled = await run([...global, 'pull', '--signature-policy', policy, baseImage], env, 120_000);
    if (pulled.code !== 0) throw new Error(`buildah pull ${baseImage} (from ${registry.host}) failed: ${pulled.output}`);
    const reg = registry;
    let exports = 0;
    return {
      dir,
      storageDriver: driver,
      registry: reg,
      baseImage,
      async build(options) {
        const args = [...global, 'bud', '--signature-policy', policy, '--format', 'docker', '--isolation', 'oci', '--network', 'none', '--pull=false'];
        args.push(`--layers=${options.layers ?? true}`, '-t', options.tag, '-f', join(options.context, options.dockerfile ?? 'Dockerfile'));
        for (const [key, value] of Object.entries(options.buildArgs ?? {})) args.push('--build-arg', `${key}=${value}`);
        if (options.target !== undefined) args.push('--target', options.target);
        if (options.noCache === true) args.push('--no-cache');
        args.push(options.context);
        const started = performance.now();
        const result = await run(args, env, 300_000);
        const durationMs = performance.now() - started;
        if (result.code === 0) return { ok: true, durationMs, output: result.output };
        const status = /exit status (\d+)/.exec(result.output);
        const failed: BuildahBuildResult = { ok: false, durationMs, buildahExitCode: result.code, output: result.output };
        if (status?.[1] !== undefined) failed.runExitCode = Number(status[1]);
        return failed;
      },
      async read(tag) {
        const layout = join(dir, 'oci', `${++exports}`);
        const pushed = await run([...global, 'push', '--signature-policy', policy, tag, `dir:${layout}`], env, 120_000);
        if (pushed.code !== 0) throw new Error(`buildah push ${tag} dir:${layout} failed: ${pushed.output}`);
        try {
          return await readDirTransportImage(layout);
        } finally {
          await rm(layout, { recursive: true, force: true });
        }
      },
      async clearCache() {
        for (const args of [
          ['rm', '--all'],
          ['rmi', '--all', '--force'],
        ]) {
          const result = await run([...global, ...args], env, 120_000);
          if (result.code !== 0) throw new Error(`buildah ${args.join(' ')} failed: ${result.output}`);
        }
        const again = await run([...global, 'pull', '--signature-policy', policy, baseImage], env, 120_000);
        if (again.code !== 0) throw new Error(`buildah pull ${baseImage} failed: ${again.output}`);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
