// Compresses a layer's tar stream into a file, hashing both sides on the way: the uncompressed
// sha256 is the layer's diff-id (the config's rootfs.diff_ids), the compressed one its blob digest
// (the manifest's). gzip comes from node's zlib. zstd needs zlib's zstd (Node 22.15 and later);
// Node 20 has none and fzstd only decodes, so on such a node a zstd build is refused by name.
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

type ZstdFactory = () => Transform;

/** zlib's zstd compressor where this Node has one (22.15+), looked up at run time. */
function zstdCompressor(): ZstdFactory | undefined {
  const candidate = (zlib as unknown as Record<string, unknown>).createZstdCompress;
  return typeof candidate === 'function' ? (candidate as ZstdFactory) : undefined;
}

/** Throws the build's error for a compression this node cannot write; call before any step runs. */
export function assertCompressionAvailable(compression: LayerCompression): void {
  if (compression === 'zstd' && zstdCompressor() === undefined) {
    throw new BuildError(
      `zstd layer compression needs Node.js 22.15 or later (zlib's zstd); this node runs ${process.version}, which has only a zstd decoder: build with gzip`,
    );
  }
}

/** Writes `tar` compressed into `target` (which must not exist); returns its digests. */
export async function writeLayerBlob(tar: AsyncIterable<Buffer>, target: string, compression: LayerCompression): Promise<LayerBlob> {
  assertCompressionAvailable(compression);
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let size = 0;
  const compressor = compression === 'gzip' ? zlib.createGzip() : (zstdCompressor() as ZstdFactory)();
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
