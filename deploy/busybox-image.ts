// Builds a busybox image without Docker, from the host's busybox-static binary: an OCI image
// layout directory, the same layout as a tarball, and a `docker save`-style tarball. Written with
// our own code (tar + sha256). The quickstart loads it (build-example-image.ts) and the tests run it
// (test/helpers/busybox-image.ts builds their other images from the same pieces), so it also checks
// our reading of the OCI image format.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, lstat, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { create } from 'tar';

export const BUSYBOX_BINARY = '/bin/busybox';
/** The name both archives give the image ("busybox:latest" normalised). */
export const BUSYBOX_IMAGE_REFERENCE = 'docker.io/library/busybox:latest';
/** What /www/index.html holds, for tests that fetch it from `httpd -h /www`. */
export const BUSYBOX_INDEX_HTML = '<html><body><h1>Hello from Tessera</h1></body></html>\n';

export interface BusyboxImage {
  /** OCI image layout directory; its index names the image "latest" (skopeo: `oci:DIR:latest`). */
  ociLayoutDir: string;
  /** The OCI image layout as a tarball (oci-layout, index.json, blobs/ at the top). */
  tarballPath: string;
  /** A `docker save`-style tarball (manifest.json, <config>.json, <layer>/layer.tar). */
  dockerArchivePath: string;
  /** Digest of the OCI manifest in the layout. */
  manifestDigest: string;
}

/** Every time stamp in the images: the same busybox gives the same digests. */
export const FIXED_TIME = new Date('2026-01-01T00:00:00Z');
export const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

export function ociArchitecture(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** Lays out the root filesystem of the single layer in `root`. */
async function stageRootfs(root: string): Promise<void> {
  for (const dir of ['bin', 'dev', 'etc', 'proc', 'root', 'sys', 'tmp', 'var', 'www']) await mkdir(join(root, dir), { recursive: true });
  await chmod(root, 0o755);
  await chmod(join(root, 'tmp'), 0o1777);
  await chmod(join(root, 'root'), 0o700);
  await copyFile(BUSYBOX_BINARY, join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX_BINARY, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((a) => a.trim())
    .filter((a) => a !== '' && a !== 'busybox' && !a.includes('/'));
  for (const applet of applets) await symlink('busybox', join(root, 'bin', applet));
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnobody:x:65534:\n');
  await writeFile(join(root, 'etc', 'hostname'), 'busybox\n');
  await writeFile(join(root, 'www', 'index.html'), BUSYBOX_INDEX_HTML);
}

/** Every path below `root`, parents before children, sorted, so the layer's bytes are reproducible. */
async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const names = (await readdir(join(root, rel))).sort();
  for (const name of names) {
    const path = rel ? `${rel}/${name}` : name;
    out.push(path);
    if ((await lstat(join(root, path))).isDirectory()) out.push(...(await walk(root, path)));
  }
  return out;
}

export async function writeTar(cwd: string, file: string, paths: string[], gzip: boolean): Promise<void> {
  // Not `portable`: that would clear group/other write bits (the sticky, world-writable /tmp).
  // Instead pin every time field, so the same busybox gives the same digests.
  const onWriteEntry = (entry: { stat?: { atime: Date; ctime: Date } }): void => {
    if (entry.stat) {
      entry.stat.atime = FIXED_TIME;
      entry.stat.ctime = FIXED_TIME;
    }
  };
  await create({ cwd, file, gzip, mtime: FIXED_TIME, noDirRecurse: true, onWriteEntry }, paths);
}

export interface OciLayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/**
 * Writes an image's config and manifest blobs, `oci-layout` and an index.json naming the manifest
 * `latest` into an OCI layout whose layer blobs are already in place; returns the manifest digest.
 */
export async function writeOciManifestAndIndex(
  ociLayoutDir: string,
  config: { digest: string; bytes: Buffer },
  layers: OciLayerDescriptor[],
  index: { platform?: { architecture: string; os: string }; annotations?: Record<string, string> } = {},
): Promise<string> {
  const blobsDir = join(ociLayoutDir, 'blobs', 'sha256');
  await writeFile(join(blobsDir, hexOf(config.digest)), config.bytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.byteLength },
      layers,
    }),
  );
  const manifestDigest = sha256(manifest);
  await writeFile(join(blobsDir, hexOf(manifestDigest)), manifest);
  await writeFile(join(ociLayoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const entry = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: manifestDigest,
    size: manifest.byteLength,
    ...(index.platform === undefined ? {} : { platform: index.platform }),
    annotations: { 'org.opencontainers.image.ref.name': 'latest', ...index.annotations },
  };
  await writeFile(
    join(ociLayoutDir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }),
  );
  return manifestDigest;
}

export async function buildBusyboxImage(dir: string): Promise<BusyboxImage> {
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, 'build-'));
  try {
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    await stageRootfs(rootfs);
    const layerGzPath = join(work, 'layer.tar.gz');
    await writeTar(rootfs, layerGzPath, await walk(rootfs), true);
    const layerGz = await readFile(layerGzPath);
    const layerTar = gunzipSync(layerGz);
    const layerDigest = sha256(layerGz);
    const diffId = sha256(layerTar);

    const config = Buffer.from(
      JSON.stringify({
        created: FIXED_TIME.toISOString(),
        architecture: ociArchitecture(),
        os: 'linux',
        config: { Env: [PATH_ENV], Cmd: ['sh'] },
        rootfs: { type: 'layers', diff_ids: [diffId] },
        history: [{ created: FIXED_TIME.toISOString(), created_by: 'tessera deploy/busybox-image.ts' }],
      }),
    );
    const configDigest = sha256(config);
    const ociLayoutDir = join(dir, 'oci-layout');
    await rm(ociLayoutDir, { recursive: true, force: true });
    const blobsDir = join(ociLayoutDir, 'blobs', 'sha256');
    await mkdir(blobsDir, { recursive: true });
    await writeFile(join(blobsDir, hexOf(layerDigest)), layerGz);
    const manifestDigest = await writeOciManifestAndIndex(
      ociLayoutDir,
      { digest: configDigest, bytes: config },
      [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layerGz.byteLength }],
      { platform: { architecture: ociArchitecture(), os: 'linux' }, annotations: { 'io.containerd.image.name': BUSYBOX_IMAGE_REFERENCE } },
    );
    const tarballPath = join(dir, 'busybox-oci.tar');
    await writeTar(ociLayoutDir, tarballPath, ['oci-layout', 'index.json', 'blobs', 'blobs/sha256', ...(await walk(ociLayoutDir, 'blobs/sha256'))], false);

    const dockerDir = join(work, 'docker');
    const layerDirName = hexOf(diffId);
    await mkdir(join(dockerDir, layerDirName), { recursive: true });
    await writeFile(join(dockerDir, layerDirName, 'layer.tar'), layerTar);
    await writeFile(join(dockerDir, layerDirName, 'VERSION'), '1.0');
    await writeFile(join(dockerDir, `${hexOf(configDigest)}.json`), config);
    await writeFile(
      join(dockerDir, 'manifest.json'),
      JSON.stringify([{ Config: `${hexOf(configDigest)}.json`, RepoTags: ['busybox:latest'], Layers: [`${layerDirName}/layer.tar`] }]),
    );
    await writeFile(join(dockerDir, 'repositories'), JSON.stringify({ busybox: { latest: layerDirName } }));
    const dockerArchivePath = join(dir, 'busybox-docker.tar');
    await writeTar(dockerDir, dockerArchivePath, await walk(dockerDir), false);

    return { ociLayoutDir, tarballPath, dockerArchivePath, manifestDigest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
