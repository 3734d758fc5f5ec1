// The images the tests build beyond plain busybox (deploy/busybox-image.ts builds that one, for the
// quickstart too): busybox with extra layers, gzip or zstd.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  buildBusyboxImage,
  FIXED_TIME,
  hexOf,
  ociArchitecture,
  PATH_ENV,
  sha256,
  writeOciManifestAndIndex,
  writeTar,
  type BusyboxImage,
} from '../../deploy/busybox-image.js';

export { BUSYBOX_BINARY, BUSYBOX_IMAGE_REFERENCE, BUSYBOX_INDEX_HTML, buildBusyboxImage, type BusyboxImage } from '../../deploy/busybox-image.js';

export interface LayeredImage {
  /** OCI image layout directory; skopeo names the image `oci:DIR:latest`. */
  ociLayoutDir: string;
  manifestDigest: string;
  /** Compressed layer digests, bottom first (busybox first). */
  layerDigests: string[];
  diffIds: string[];
  /** File each extra layer adds (/layers/N.bin), with its content, bottom first. */
  extraFiles: Array<{ path: string; content: Buffer }>;
}

/**
 * busybox plus `extraLayers` layers, each adding /layers/N.bin of `layerBytes` pseudo-random
 * bytes (incompressible, so downloads are that big), compressed with gzip or zstd (the zstd
 * CLI). The config carries ExposedPorts and a Healthcheck.
 */
export async function buildLayeredImage(
  dir: string,
  options: { extraLayers: number; layerBytes: number; compression?: 'gzip' | 'zstd'; seed?: number; base?: BusyboxImage },
): Promise<LayeredImage> {
  const compression = options.compression ?? 'gzip';
  const base = options.base ?? (await buildBusyboxImage(join(dir, 'base')));
  const baseIndex = JSON.parse(await readFile(join(base.ociLayoutDir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const baseManifest = JSON.parse(await readFile(join(base.ociLayoutDir, 'blobs', 'sha256', hexOf(baseIndex.manifests[0]?.digest ?? '')), 'utf8')) as {
    config: { digest: string };
    layers: Array<{ digest: string; size: number; mediaType: string }>;
  };
  const baseConfig = JSON.parse(await readFile(join(base.ociLayoutDir, 'blobs', 'sha256', hexOf(baseManifest.config.digest)), 'utf8')) as {
    rootfs: { diff_ids: string[] };
  };
  const ociLayoutDir = join(dir, 'layered-oci');
  await rm(ociLayoutDir, { recursive: true, force: true });
  const blobsDir = join(ociLayoutDir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  const baseLayer = baseManifest.layers[0];
  if (!baseLayer) throw new Error('busybox image has no layer');
  await copyFile(join(base.ociLayoutDir, 'blobs', 'sha256', hexOf(baseLayer.digest)), join(blobsDir, hexOf(baseLayer.digest)));

  const layers = [baseLayer];
  const diffIds = [...baseConfig.rootfs.diff_ids];
  const extraFiles: LayeredImage['extraFiles'] = [];
  let state = options.seed ?? 1;
  for (let n = 0; n < options.extraLayers; n++) {
    const work = await mkdtemp(join(dir, 'layer-'));
    try {
      const content = Buffer.alloc(options.layerBytes);
      for (let i = 0; i < content.length; i++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0; // LCG: reproducible, incompressible enough
        content[i] = state >>> 24;
      }
      await mkdir(join(work, 'root', 'layers'), { recursive: true });
      await writeFile(join(work, 'root', 'layers', `${n}.bin`), content);
      extraFiles.push({ path: `layers/${n}.bin`, content });
      const tarPath = join(work, 'layer.tar');
      await writeTar(join(work, 'root'), tarPath, ['layers', `layers/${n}.bin`], false);
      const tar = await readFile(tarPath);
      let blob: Buffer;
      if (compression === 'zstd') {
        execFileSync('zstd', ['-q', '-3', tarPath, '-o', `${tarPath}.zst`]);
        blob = await readFile(`${tarPath}.zst`);
      } else {
        blob = gzipSync(tar);
      }
      const digest = sha256(blob);
      await writeFile(join(blobsDir, hexOf(digest)), blob);
      layers.push({
        digest,
        size: blob.byteLength,
        mediaType: compression === 'zstd' ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar+gzip',
      });
      diffIds.push(sha256(tar));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const config = Buffer.from(
    JSON.stringify({
      created: FIXED_TIME.toISOString(),
      architecture: ociArchitecture(),
      os: 'linux',
      config: {
        Env: [PATH_ENV],
        Cmd: ['httpd', '-f', '-p', '8080', '-h', '/www'],
        ExposedPorts: { '8080/tcp': {} },
        Healthcheck: { Test: ['CMD', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'], Interval: 5_000_000_000, Retries: 3 },
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
  const manifestDigest = await writeOciManifestAndIndex(
    ociLayoutDir,
    { digest: sha256(config), bytes: config },
    layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  );
  return { ociLayoutDir, manifestDigest, layerDigests: layers.map((l) => l.digest), diffIds, extraFiles };
}
