// `tsctl build` against a real tsd (issue 18), one node in a network namespace of the test's own:
// a FROM scratch image is built from a real context (nothing to pull) by the daemon's own builder,
// and listed by `image ls` under its tag with the digest tsctl printed; one built with
// `--compression zstd` is saved (`tsctl image save`, OCI and docker layouts) and the archives hold
// exactly what the build committed, then loads back (after rm + prune) as the same image; a
// context over the daemon's
// --build-context-max-bytes is refused by tsctl before it is sent, naming the cap. No context
// directory is left under the data root either way.
import test from 'ava';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { x as untar } from 'tar';

import { startTestNode, type TestNode } from '../helpers/tsd-node.js';

const run = promisify(execFile);
const tsctlMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

let node: TestNode | undefined;
let work: string | undefined;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'tessera-e2e-build-'));
  node = await startTestNode();
});

test.after.always(async () => {
  await node?.destroy();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function tsctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [tsctlMain, '--server', node?.server ?? '', ...args], { timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as Error & { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function extract(archive: string, into: string): Promise<string> {
  await mkdir(into, { recursive: true });
  await untar({ file: archive, cwd: into });
  return into;
}

async function contextsLeft(): Promise<string[]> {
  return readdir(join(node?.dataRoot ?? '', 'build-contexts')).catch(() => []);
}

test.serial('tsctl build through the real daemon: built and listed', async (t) => {
  if (!node || !work) return t.fail('no node');
  const context = join(work, 'app');
  await mkdir(join(context, 'etc'), { recursive: true });
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY etc/ /etc/\nLABEL built.by=tessera\n');
  await writeFile(join(context, 'etc/app.conf'), 'answer = 42\n');
  await writeFile(join(context, '.dockerignore'), '*.tmp\n');
  await writeFile(join(context, 'scratch.tmp'), 'left out');
  const out = await tsctl('build', '-t', 'e2e-built:1', '--progress', 'plain', context);
  t.is(out.code, 0, out.stderr);
  const digest = out.stdout.split('\n')[0] ?? '';
  t.regex(digest, /^sha256:[0-9a-f]{64}$/);
  t.regex(out.stdout, /tagged docker\.io\/library\/e2e-built:1\n/);
  t.regex(out.stderr, /#0 building on node node1\n/);
  const images = await tsctl('image', 'ls');
  t.true(images.stdout.includes(digest.slice('sha256:'.length, 'sha256:'.length + 12)), images.stdout);
  t.regex(images.stdout, /e2e-built/);
  t.deepEqual(await contextsLeft(), []);
});

test.serial('a built image saves like any other (zstd layers): the archive holds what the build made, and loads back as the same image', async (t) => {
  if (!node || !work) return t.fail('no node');
  const context = join(work, 'saved');
  await mkdir(join(context, 'etc'), { recursive: true });
  await mkdir(join(context, 'srv'), { recursive: true });
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY etc/ /etc/\nCOPY srv/ /srv/\nCMD ["/srv/app"]\n');
  await writeFile(join(context, 'etc/app.conf'), 'saved = yes\n');
  await writeFile(join(context, 'srv/app'), 'x'.repeat(64 * 1024), { mode: 0o755 });
  const built = await tsctl('build', '-t', 'e2e-saved:1', '--compression', 'zstd', '--progress', 'plain', context);
  t.is(built.code, 0, built.stderr);
  const digest = built.stdout.split('\n')[0] ?? '';
  t.regex(digest, /^sha256:[0-9a-f]{64}$/);
  // What the builder committed, as the node's store holds it.
  const storedManifest = await readFile(join(node.dataRoot, 'images', 'blobs', 'sha256', digest.slice(7)));
  t.is(sha256(storedManifest), digest);

  // OCI layout: the index names the built manifest, and every blob it leads to is there, whole.
  const ociTar = join(work, 'saved-oci.tar');
  const saved = await tsctl('image', 'save', '-o', ociTar, 'e2e-saved:1');
  t.is(saved.code, 0, saved.stderr);
  const oci = await extract(ociTar, join(work, 'saved-oci'));
  const index = JSON.parse(await readFile(join(oci, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  t.deepEqual(
    index.manifests.map((m) => m.digest),
    [digest],
  );
  const blob = (d: string) => readFile(join(oci, 'blobs', 'sha256', d.slice(7)));
  const manifestBytes = await blob(digest);
  t.true(manifestBytes.equals(storedManifest), 'the archive holds the manifest the build committed, byte for byte');
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as {
    config: { digest: string };
    layers: Array<{ digest: string; mediaType: string; size: number }>;
  };
  t.deepEqual(
    manifest.layers.map((l) => l.mediaType),
    ['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd'],
  );
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) t.is(sha256(await blob(d)), d);
  const config = JSON.parse((await blob(manifest.config.digest)).toString('utf8')) as { rootfs: { diff_ids: string[] }; config: { Cmd?: string[] } };
  t.deepEqual(config.config.Cmd, ['/srv/app']);

  // docker save layout: the layers are uncompressed (decompressed from zstd) and hash to the config's diff-ids.
  const dockerTar = join(work, 'saved-docker.tar');
  t.is((await tsctl('image', 'save', '--format', 'docker', '-o', dockerTar, 'e2e-saved:1')).code, 0);
  const docker = await extract(dockerTar, join(work, 'saved-docker'));
  const [entry] = JSON.parse(await readFile(join(docker, 'manifest.json'), 'utf8')) as Array<{ Config: string; Layers: string[]; RepoTags: string[] }>;
  t.deepEqual(entry?.RepoTags, ['docker.io/library/e2e-saved:1']);
  t.is(sha256(await readFile(join(docker, entry?.Config ?? ''))), manifest.config.digest);
  t.deepEqual(await Promise.all((entry?.Layers ?? []).map(async (l) => sha256(await readFile(join(docker, l))))), config.rootfs.diff_ids);

  // Removed and collected, then loaded from the archive: the same manifest, so the same config (image id).
  t.is((await tsctl('image', 'rm', 'e2e-saved:1')).code, 0);
  t.is((await tsctl('image', 'prune')).code, 0);
  await t.throwsAsync(readFile(join(node.dataRoot, 'images', 'blobs', 'sha256', manifest.config.digest.slice(7))), { code: 'ENOENT' });
  const loaded = await tsctl('image', 'load', ociTar);
  t.is(loaded.code, 0, loaded.stderr);
  t.regex(loaded.stdout, new RegExp(`loaded docker\\.io/library/e2e-saved:1 \\(${digest}\\)`));
  t.is(sha256(await readFile(join(node.dataRoot, 'images', 'blobs', 'sha256', manifest.config.digest.slice(7)))), manifest.config.digest);
  const images = await tsctl('image', 'ls');
  t.regex(images.stdout, new RegExp(`e2e-saved:1\\s+${digest.slice(0, 19)}`));
});

test.serial('tsd --build-context-max-bytes caps the context: refused before it is sent', async (t) => {
  if (!node || !work) return t.fail('no node');
  await node.stopDaemon();
  await node.restartDaemon(['--build-context-max-bytes', String(1024 * 1024)]);
  const context = join(work, 'big');
  await mkdir(join(context, 'data'), { recursive: true });
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY data/ /data/\n');
  await writeFile(join(context, 'data/blob.bin'), Buffer.alloc(2 * 1024 * 1024, 7));
  const out = await tsctl('build', '-t', 'e2e-big:1', '--progress', 'plain', context);
  t.is(out.code, 1);
  t.regex(
    out.stderr,
    new RegExp(`error: build context ${context} is 2\\.0 MiB as a tar, more than the 1\\.0 MiB node node1 accepts; the largest parts: data/ 2\\.0 MiB`),
  );
  t.deepEqual(await contextsLeft(), []);
});
