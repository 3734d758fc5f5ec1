// The image builder's executor end to end, all real: Dockerfiles planned by common/build's planner,
// RUN steps in containers of our native runtime, layers into a real image store holding the busybox
// image, and the built image's root file system looked at through an overlay mount of its layers.
// The runtime is wrapped only to count the containers it creates (for the warm-rebuild checks).
import test, { type ExecutionContext } from 'ava';
import { chmod, chown, lstat, mkdir, symlink, mkdtemp, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Parser, create as tarCreate, type ReadEntry } from 'tar';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { BuildError, type BuildProgress, type BuildRequest, type BuildResult } from '../../common/build/builder.js';
import { BuildExecutor } from '../../agent/build/executor.js';
import { layerTar } from '../../agent/build/layer-diff.js';
import { sweepBuildLeftovers } from '../../agent/build/leftovers.js';
import { mountStepRootfs } from '../../agent/build/step-rootfs.js';
import { writeLayerBlob } from '../../agent/build/layer-blob.js';
import { LocalImageStore } from '../../agent/images/image-store.js';
import { readDecompressed } from '../../agent/images/decompress.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import type { ContainerRuntime } from '../../agent/runtime/types.js';
import { mountOverlayRootfs, unmountRootfs } from '../../agent/runtime/rootfs.js';
import { buildBusyboxImage } from '../helpers/busybox-image.js';
import { cgroupDirsUnder } from '../helpers/host-cgroups.js';
import { startRegistry } from '../helpers/registry.js';

const execFileAsync = promisify(execFile);

interface Lab {
  dir: string;
  images: LocalImageStore;
  builder: BuildExecutor;
  /** Containers the runtime created so far. */
  created: () => number;
  context(files: Record<string, string>): Promise<string>;
  build(context: string, tag: string, options?: Partial<BuildRequest>): Promise<{ result: BuildResult; events: BuildProgress[] }>;
  /** The built image's merged root file system, mounted until the test ends. */
  rootfsOf(tag: string): Promise<string>;
  /** Paths and types of one layer's tar, by index (0 = busybox). */
  layerEntries(tag: string, index: number): Promise<Map<string, { type: string; uid: number; mode: number; body: string }>>;
}

async function startLab(t: ExecutionContext, name: string, insecureRegistries: string[] = []): Promise<Lab> {
  const dir = await mkdtemp(join(tmpdir(), `tessera-build-${name}-`));
  const cgroupParent = `tessera-test-build-${name}-${process.pid}`;
  const mounts: string[] = [];
  t.teardown(async () => {
    for (const m of mounts) await unmountRootfs(m).catch((error: Error) => t.log(`unmount ${m}: ${error.message}`));
    for (const cg of await cgroupDirsUnder(cgroupParent)) await rmdir(cg).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  // No credentials file of the machine's: these tests speak to registries of their own only.
  const images = new LocalImageStore({ root: join(dir, 'images'), credentialsFile: join(dir, 'no-registries.json') });
  await images.load((await buildBusyboxImage(join(dir, 'busybox'))).tarballPath);
  const native = new NativeRuntime({ stateRoot: join(dir, 'runtime'), cgroupParent });
  let created = 0;
  const runtime: ContainerRuntime = {
    create: (id, bundle, options) => {
      created += 1;
      return native.create(id, bundle, options);
    },
    start: (id) => native.start(id),
    kill: (id, signal) => native.kill(id, signal),
    wait: (id) => native.wait(id),
    state: (id) => native.state(id),
    delete: (id) => native.delete(id),
  };
  const builder = new BuildExecutor({ images, runtime, workDir: join(dir, 'builds'), cgroupParent, insecureRegistries, log: (m) => t.log(m) });
  let contexts = 0;
  const lab: Lab = {
    dir,
    images,
    builder,
    created: () => created,
    async context(files) {
      const context = join(dir, `context-${++contexts}`);
      for (const [path, content] of Object.entries(files)) {
        await mkdir(join(context, path, '..'), { recursive: true });
        await writeFile(join(context, path), content);
      }
      return context;
    },
    async build(context, tag, options = {}) {
      const events: BuildProgress[] = [];
      const request: BuildRequest = {
        tags: [tag],
        dockerfilePath: 'Dockerfile',
        buildArgs: {},
        noCache: false,
        labels: {},
        compression: 'gzip',
        push: false,
        ...options,
      };
      const result = await builder.build(request, context, (e) => events.push(e), new AbortController().signal);
      return { result, events };
    },
    async rootfsOf(tag) {
      const image = await images.get(tag);
      if (image === undefined) throw new Error(`${tag} is not in the store`);
      const mountDir = join(dir, `mount-${mounts.length}`);
      mounts.push(mountDir);
      return mountOverlayRootfs(image.layerDirs, mountDir);
    },
    async layerEntries(tag, index) {
      const image = await images.get(tag);
      if (image === undefined) throw new Error(`${tag} is not in the store`);
      const manifest = JSON.parse((await readFile(images.blobPath(image.digest))).toString()) as { layers: Array<{ digest: string }> };
      const layer = manifest.layers[index];
      if (layer === undefined) throw new Error(`${tag} has no layer ${index}`);
      return tarEntries(images.blobPath(layer.digest));
    },
  };
  return lab;
}

test.serial('RUN writes files and deletes a lower file (a whiteout in its layer); RUN has only loopback, up', async (t) => {
  const lab = await startLab(t, 'run');
  const context = await lab.context({
    Dockerfile: [
      'FROM busybox',
      'RUN echo built > /built.txt && mkdir -p /app',
      'RUN rm /etc/hostname',
      'RUN ls /sys/class/net && cat /sys/class/net/lo/operstate',
    ].join('\n'),
  });
  const { result, events } = await lab.build(context, 'built:1');
  t.is(result.layers, 4);
  t.is(result.ranSteps, 3);
  t.is(result.cachedSteps, 0);
  t.deepEqual(result.tags, ['docker.io/library/built:1']);
  const output = events.flatMap((e) => (e.kind === 'output' && e.step === 3 ? [e.line] : []));
  t.deepEqual(output, ['lo', 'unknown'], 'a fresh network namespace: lo only, brought up (its operstate reads "unknown" for loopback)');

  const written = await lab.layerEntries('built:1', 1);
  t.is(written.get('built.txt')?.body, 'built\n');
  t.is(written.get('app/')?.type, 'Directory');
  t.false(
    [...written.keys()].some((p) => p.startsWith('proc') || p.startsWith('sys') || p.startsWith('dev')),
    'mount points the runtime made are not in the layer',
  );
  const deleted = await lab.layerEntries('built:1', 2);
  t.deepEqual([...deleted.keys()], ['etc/', 'etc/.wh.hostname']);

  const rootfs = await lab.rootfsOf('built:1');
  t.is(await readFile(join(rootfs, 'built.txt'), 'utf8'), 'built\n');
  await t.throwsAsync(lstat(join(rootfs, 'etc', 'hostname')), { code: 'ENOENT' });
  t.is(await readFile(join(rootfs, 'etc', 'passwd'), 'utf8').then((s) => s.startsWith('root:')), true);
});

test.serial('COPY --chown by name and --chmod, a directory copies its contents, a trailing slash means into', async (t) => {
  const lab = await startLab(t, 'copy');
  const context = await lab.context({
    Dockerfile: ['FROM busybox', 'COPY --chown=nobody:nobody --chmod=640 a.txt /data/', 'COPY dir/ /tree', 'COPY *.md /docs/'].join('\n'),
    'a.txt': 'A\n',
    'dir/sub/b.txt': 'B\n',
    'one.md': '1',
    'two.md': '2',
  });
  await chmod(join(context, 'dir', 'sub', 'b.txt'), 0o600);
  const { result } = await lab.build(context, 'copy:1');
  t.is(result.layers, 4);
  const rootfs = await lab.rootfsOf('copy:1');
  const a = await lstat(join(rootfs, 'data', 'a.txt'));
  t.is(a.uid, 65534);
  t.is(a.gid, 65534);
  t.is(a.mode & 0o7777, 0o640);
  t.is(await readFile(join(rootfs, 'tree', 'sub', 'b.txt'), 'utf8'), 'B\n');
  const b = await lstat(join(rootfs, 'tree', 'sub', 'b.txt'));
  t.is(b.uid, 0, 'context files belong to root');
  t.is(b.mode & 0o7777, 0o600, 'modes are kept without --chmod');
  t.deepEqual((await readdir(join(rootfs, 'docs'))).sort(), ['one.md', 'two.md']);
});

test.serial(
  'multi-stage: COPY --from an earlier stage takes its files (one made by a RUN heredoc script); the builder stage adds no layer to the image',
  async (t) => {
    const lab = await startLab(t, 'stages');
    const context = await lab.context({
      Dockerfile: [
        'FROM busybox AS builder',
        'RUN mkdir /out && echo from-builder > /out/result',
        'RUN <<EOF',
        '#!/bin/sh',
        'echo "heredoc $0" > /out/heredoc',
        'EOF',
        'FROM busybox',
        'COPY --from=builder /out/result /result',
        'COPY --from=builder /out/heredoc /heredoc',
        'CMD ["cat", "/result"]',
      ].join('\n'),
    });
    const { result } = await lab.build(context, 'stages:1');
    t.is(result.layers, 3);
    const rootfs = await lab.rootfsOf('stages:1');
    t.is(await readFile(join(rootfs, 'result'), 'utf8'), 'from-builder\n');
    // A heredoc script with #! runs as a file of its own (BuildKit's /dev/pipes/), not in any layer.
    t.regex(await readFile(join(rootfs, 'heredoc'), 'utf8'), /^heredoc \S+\n$/);
    const record = await lab.images.get('stages:1');
    t.deepEqual(record?.config.cmd, ['cat', '/result']);
  },
);

test.serial('a failing RUN fails the build with its exit code, its last lines and its place; nothing is tagged', async (t) => {
  const lab = await startLab(t, 'fail');
  const lines = Array.from({ length: 30 }, (_, i) => `echo line${i + 1}`).join('; ');
  const context = await lab.context({ Dockerfile: ['FROM busybox', `RUN ${lines}; exit 3`].join('\n') });
  const error = await t.throwsAsync(lab.build(context, 'fail:1'), { instanceOf: BuildError });
  t.is(error.run?.exitCode, 3);
  t.is(error.run?.lastLines.length, 20);
  t.is(error.run?.lastLines.at(-1), 'line30');
  t.is(error.location?.line, 2);
  t.regex(error.message, /exited with code 3/);
  t.is(await lab.images.get('fail:1'), undefined);
});

test.serial('warm rebuild: every step from the cache, no container; a changed file reruns from its step on; removal collects the cache', async (t) => {
  const lab = await startLab(t, 'cache');
  const context = await lab.context({
    Dockerfile: ['FROM busybox', 'COPY a.txt /a.txt', 'RUN cat /a.txt > /b.txt', 'ENV MODE=test', 'COPY c.txt /c.txt'].join('\n'),
    'a.txt': 'first\n',
    'c.txt': 'c1\n',
  });
  let started = performance.now();
  const cold = await lab.build(context, 'cache:1');
  t.log(`cold build: ${Math.round(performance.now() - started)} ms (figure only, not asserted)`);
  t.is(cold.result.ranSteps, 4);
  const containersAfterCold = lab.created();
  t.is(containersAfterCold, 1);
  const coldLayers = (await lab.images.get('cache:1'))?.layers;

  started = performance.now();
  const warm = await lab.build(context, 'cache:1');
  t.log(`warm build, nothing changed: ${Math.round(performance.now() - started)} ms (figure only, not asserted)`);
  t.is(warm.result.cachedSteps, 4);
  t.is(warm.result.ranSteps, 0);
  t.is(lab.created(), containersAfterCold, 'no container was started');
  t.deepEqual((await lab.images.get('cache:1'))?.layers, coldLayers, 'the same layers');
  t.is(warm.events.filter((e) => e.kind === 'cached').length, 4);

  await writeFile(join(context, 'c.txt'), 'c2\n');
  const lastChanged = await lab.build(context, 'cache:1');
  t.is(lastChanged.result.cachedSteps, 3);
  t.is(lastChanged.result.ranSteps, 1);
  t.is(lab.created(), containersAfterCold, 'only the last COPY ran');

  await writeFile(join(context, 'a.txt'), 'second\n');
  const firstChanged = await lab.build(context, 'cache:1');
  t.is(firstChanged.result.cachedSteps, 0);
  t.is(firstChanged.result.ranSteps, 4);
  t.is(lab.created(), containersAfterCold + 1);
  t.is(await readFile(join(await lab.rootfsOf('cache:1'), 'b.txt'), 'utf8'), 'second\n');

  const noCache = await lab.build(context, 'cache:1', { noCache: true });
  t.is(noCache.result.ranSteps, 4);

  // Removing the image takes the cache entries only it named, and the layers only they kept.
  const cacheDir = join(lab.dir, 'images', 'build-cache');
  t.true((await readdir(cacheDir)).length > 0);
  await lab.images.remove('cache:1');
  t.deepEqual(await readdir(cacheDir), []);
  const layersLeft = await readdir(join(lab.dir, 'images', 'layers'));
  t.is(layersLeft.length, 1, 'only busybox is left');
});

async function tarEntries(blobPath: string): Promise<Map<string, { type: string; uid: number; mode: number; body: string }>> {
  const entries = new Map<string, { type: string; uid: number; mode: number; body: string }>();
  const parser = new Parser();
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
  });
  parser.on('entry', (entry: ReadEntry) => {
    const chunks: Buffer[] = [];
    entry.on('data', (c: Buffer) => chunks.push(c));
    entry.on('end', () => entries.set(entry.path, { type: entry.type, uid: entry.uid ?? 0, mode: entry.mode ?? 0, body: Buffer.concat(chunks).toString() }));
  });
  for await (const chunk of readDecompressed(blobPath, 'layer')) parser.write(chunk);
  parser.end();
  await done;
  return entries;
}

test.serial('ADD of a URL from a loopback server: named after the URL, mode 0600, --checksum checked, cached by content', async (t) => {
  const lab = await startLab(t, 'url');
  const body = 'fetched over http\n';
  let requests = 0;
  const server = createServer((request, response) => {
    requests += 1;
    response.writeHead(200, { 'content-type': 'text/plain', 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' });
    response.end(request.url === '/hello.txt' ? body : 'other\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const context = await lab.context({
    Dockerfile: [
      'FROM scratch',
      `ADD http://127.0.0.1:${port}/hello.txt /files/`,
      `ADD --checksum=${digest} http://127.0.0.1:${port}/hello.txt /checked.txt`,
    ].join('\n'),
  });
  const { result } = await lab.build(context, 'url:1');
  t.is(result.layers, 2);
  t.is(lab.created(), 0, 'no container for ADD');
  const rootfs = await lab.rootfsOf('url:1');
  t.is(await readFile(join(rootfs, 'files', 'hello.txt'), 'utf8'), body);
  const info = await lstat(join(rootfs, 'files', 'hello.txt'));
  t.is(info.mode & 0o7777, 0o600);
  t.is(info.mtime.toISOString(), '2025-01-01T00:00:00.000Z');
  t.is(await readFile(join(rootfs, 'checked.txt'), 'utf8'), body);

  const again = await lab.build(context, 'url:1');
  t.is(again.result.cachedSteps, 2, 'the same bytes behind the URL: from the cache');

  const wrong = await lab.context({ Dockerfile: ['FROM scratch', `ADD --checksum=sha256:${'0'.repeat(64)} http://127.0.0.1:${port}/hello.txt /x`].join('\n') });
  const error = await t.throwsAsync(lab.build(wrong, 'url:2'), { instanceOf: BuildError });
  t.regex(error.message, /checksum mismatch/);
  t.is(error.location?.line, 2);
  t.true(requests >= 2);
});

test.serial('ADD unpacks local tar, tar.gz and tar.xz (owners from the archive), copies other .gz as is; WORKDIR makes its directory once', async (t) => {
  const lab = await startLab(t, 'add');
  const context = await lab.context({
    Dockerfile: [
      'FROM busybox',
      'ADD app.tar.gz /app/',
      'ADD more.tar.xz plain.tar /more/',
      'ADD notes.txt.gz /notes/',
      'WORKDIR /work/deep',
      'WORKDIR /tmp',
    ].join('\n'),
  });
  const staging = join(lab.dir, 'staging');
  await mkdir(join(staging, 'bin'), { recursive: true });
  await writeFile(join(staging, 'bin', 'tool'), '#!/bin/sh\n');
  await chmod(join(staging, 'bin', 'tool'), 0o775); // group-writable: survives only if the unpacking ignores tsd's umask
  await chown(join(staging, 'bin', 'tool'), 1234, 5678);
  await tarCreate({ cwd: staging, file: join(context, 'app.tar.gz'), gzip: true }, ['bin']);
  await tarCreate({ cwd: staging, file: join(context, 'more.tar') }, ['bin']);
  await execFileAsync('xz', ['-z', join(context, 'more.tar')]);
  await tarCreate({ cwd: staging, file: join(context, 'plain.tar') }, ['bin/tool']);
  await writeFile(join(context, 'notes.txt.gz'), gzipSync('notes\n'));

  const { result } = await lab.build(context, 'add:1');
  t.is(result.layers, 5, 'busybox, three ADDs and the WORKDIR that made a directory (/tmp existed)');
  const rootfs = await lab.rootfsOf('add:1');
  const tool = await lstat(join(rootfs, 'app', 'bin', 'tool'));
  t.is(tool.uid, 1234);
  t.is(tool.gid, 5678);
  t.is(tool.mode & 0o7777, 0o775);
  t.is(await readFile(join(rootfs, 'more', 'bin', 'tool'), 'utf8'), '#!/bin/sh\n');
  t.deepEqual(await readdir(join(rootfs, 'notes')), ['notes.txt.gz']);
  t.true((await lstat(join(rootfs, 'work', 'deep'))).isDirectory());
  t.is((await lab.images.get('add:1'))?.config.workingDir, '/tmp');
});

test.serial('a symlink in the context cannot reach outside it; a missing source names itself and its line', async (t) => {
  const lab = await startLab(t, 'escape');
  const context = await lab.context({ Dockerfile: ['FROM busybox', 'COPY evil /stolen'].join('\n') });
  await symlink('/etc/hostname', join(context, 'evil'));
  const error = await t.throwsAsync(lab.build(context, 'escape:1'), { instanceOf: BuildError });
  t.regex(error.message, /"evil": no such file or directory/);
  t.is(error.location?.line, 2);

  const inside = await lab.context({ Dockerfile: ['FROM busybox', 'COPY link /copied'].join('\n'), 'etc/hostname': 'the context one\n' });
  await symlink('../../../../etc/hostname', join(inside, 'link'));
  await lab.build(inside, 'escape:2');
  t.is(await readFile(join(await lab.rootfsOf('escape:2'), 'copied'), 'utf8'), 'the context one\n');
});

test.serial('--push sends the built image to a loopback registry under its first tag; pulled back it is the same image', async (t) => {
  const registry = await startRegistry();
  t.teardown(() => registry.stop());
  const lab = await startLab(t, 'push', [registry.host]);
  const context = await lab.context({ Dockerfile: ['FROM busybox', 'COPY a.txt /a.txt', 'LABEL built=yes'].join('\n'), 'a.txt': 'pushed\n' });
  const tag = `${registry.host}/team/built:1`;
  const { result, events } = await lab.build(context, tag, { push: true });
  t.true(events.some((e) => e.kind === 'push' && e.reference === tag));
  const other = new LocalImageStore({
    root: join(lab.dir, 'other-store'),
    credentialsFile: join(lab.dir, 'no-registries.json'),
    insecureRegistries: [registry.host],
  });
  const pulled = await other.pull(tag);
  t.is(pulled.digest, result.manifestDigest);
  t.is(pulled.configDigest, result.configDigest);
  t.deepEqual(pulled.layers, (await lab.images.get(tag))?.layers);

  const unnamed = await t.throwsAsync(lab.build(context, 'nowhere:1', { push: true }), { instanceOf: BuildError });
  t.regex(unnamed.message, /--push: .*names no registry/);

  // FROM an image the store does not hold: pulled through the store, as the worker pulls.
  const elsewhere = await startLab(t, 'pull', [registry.host]);
  const child = await elsewhere.context({ Dockerfile: [`FROM ${tag}`, 'COPY b.txt /b.txt'].join('\n'), 'b.txt': 'child\n' });
  const built = await elsewhere.build(child, 'child:1');
  t.true(built.events.some((e) => e.kind === 'pull' && e.reference === tag));
  t.is(built.result.layers, 3);
  t.deepEqual((await elsewhere.images.get('child:1'))?.config.env, (await lab.images.get(tag))?.config.env);
  t.is(await readFile(join(await elsewhere.rootfsOf('child:1'), 'a.txt'), 'utf8'), 'pushed\n');
});

test.serial('garbage collection keeps what a running build pinned and takes it once the build let go', async (t) => {
  const lab = await startLab(t, 'gc');
  const upper = join(lab.dir, 'upper');
  await mkdir(upper);
  await writeFile(join(upper, 'file'), 'layer content\n');
  const pins = lab.images.holdForBuild();
  const temp = await lab.images.buildTempPath('build');
  const blob = await writeLayerBlob(layerTar(upper, { what: 'test layer' }), temp, 'gzip');
  const layerDir = await lab.images.addBuiltLayer(temp, blob, pins);
  const key = `sha256:${'c'.repeat(64)}`;
  await lab.images.putBuildCacheEntry({ key, layer: blob, config: {}, history: { created_by: 'test' }, createdAt: new Date().toISOString() }, pins);

  await lab.images.prune();
  t.is(await readFile(join(layerDir, 'file'), 'utf8'), 'layer content\n');
  t.truthy(await lab.images.buildCacheEntry(key, pins));
  t.true((await lstat(lab.images.blobPath(blob.digest))).isFile());

  lab.images.releaseBuild(pins);
  const gc = await lab.images.prune();
  t.is(gc.layersRemoved, 1);
  t.is(gc.blobsRemoved, 1);
  await t.throwsAsync(lstat(layerDir), { code: 'ENOENT' });
  t.deepEqual(await readdir(join(lab.dir, 'images', 'build-cache')), []);
});

test.serial('leftovers of a build whose tsd died are unmounted and removed; a live build is left alone', async (t) => {
  const lab = await startLab(t, 'leftovers');
  const workDir = join(lab.dir, 'builds');
  // A process that has exited: its pid is (for now) nobody's.
  const dead = spawnSync('true').pid;
  const stale = join(workDir, `build-${dead}-abcd1234`);
  const image = await lab.images.get('busybox');
  if (image === undefined) throw new Error('busybox is not in the store');
  const step = await mountStepRootfs(image.layerDirs, join(stale, 'step-1'), join(stale, 'empty'));
  await writeFile(join(step.rootfs, 'written-by-the-dead-build'), 'x');
  const live = join(workDir, `build-${process.pid}-0000ffff`);
  await mkdir(live, { recursive: true });
  const native = new NativeRuntime({ stateRoot: join(lab.dir, 'runtime'), cgroupParent: 'unused' });
  const removed = await sweepBuildLeftovers({ runtime: native, workDir, log: (m) => t.log(m) });
  t.is(removed, 1);
  await t.throwsAsync(lstat(stale), { code: 'ENOENT' });
  t.true((await lstat(live)).isDirectory());
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  t.false(mounts.includes(stale));
  // The busybox layer itself is untouched.
  await t.throwsAsync(lstat(join(image.layerDirs[0] ?? '', 'written-by-the-dead-build')), { code: 'ENOENT' });
});
