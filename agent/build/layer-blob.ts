// Compresses a layer's tar stream into a file, hashing both sides on the way: the uncompressed
// sha256 is the layer's diff-id (the config's rootfs.diff_ids), the compressed one its blob digest
// (the manifest's). gzip comes from node's zlib. zstd from zstd-napi (Node 20's zlib has none, and
// fzstd only decodes): Node-API bindings to the zstd library, compiled from the sources the package
// ships when it is installed. It is loaded only when a build asks for zstd, so a node whose addon
// did not build still builds gzip layers, and a zstd build there is refused by name before any step.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { OCI_LAYER_TAR_GZIP, OCI_LAYER_TAR_ZSTD } from '../images/media-types.js';
import { BuildError } from '../../common/build/builder.js';

export type LayerCompression = 'gzip' | 'zstd';

export interface LayerBlob {
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** sha256 of the compressed file. */
  digest: string;
  size: number;
  mediaType: string;
}

/** zstd's own default level (what `zstd` and BuildKit use): fast, and smaller than gzip -6. */
const ZSTD_LEVEL = 3;

type ZstdStreamClass = new (parameters?: { compressionLevel?: number }) => Transform;
let zstdStream: Promise<ZstdStreamClass> | undefined;

/** zstd-napi's streaming compressor, imported once on first use. */
function zstdCompressStream(): Promise<ZstdStreamClass> {
  zstdStream ??= import('zstd-napi').then(
    (module) => module.CompressStream as ZstdStreamClass,
    (error: Error) => {
      zstdStream = undefined;
      throw new BuildError(`zstd layer compression is not available on this node (the zstd-napi addon does not load: ${error.message.split('\n')[0]}): build with gzip`);
    },
  );
  return zstdStream;
}

/** Throws the build's error for a compression this node cannot write; call before any step runs. */
export async function assertCompressionAvailable(compression: LayerCompression): Promise<void> {
  if (compression === 'zstd') await zstdCompressStream();
}

/** Writes `tar` compressed into `target` (which must not exist); returns its digests. */
export async function writeLayerBlob(tar: AsyncIterable<Buffer>, target: string, compression: LayerCompression): Promise<LayerBlob> {
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let size = 0;
  const compressor = compression === 'gzip' ? zlib.createGzip() : new (await zstdCompressStream())({ compressionLevel: ZSTD_LEVEL });
  await pipeline(
    tar,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        diff.update(chunk);
        yield chunk;
      }
    },
    compressor,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        blob.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(target, { flags: 'wx', mode: 0o644 }),
  );
  return {
    diffId: `sha256:${diff.digest('hex')}`,
    digest: `sha256:${blob.digest('hex')}`,
    size,
    mediaType: compression === 'gzip' ? OCI_LAYER_TAR_GZIP : OCI_LAYER_TAR_ZSTD,
  };
}
