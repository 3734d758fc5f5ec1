// Reading a stored layer blob as its uncompressed tar stream, whatever it was compressed with:
// gzip (zlib), zstd (fzstd, a pure-JS decoder: Node 20 has none built in) or nothing.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';

export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Tells the compression from the first bytes, not the media type: archives often get that wrong. */
export async function detectCompression(path: string): Promise<Compression> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await file.read(head, 0, 4, 0);
    const starts = (magic: number[]): boolean => bytesRead >= magic.length && magic.every((b, i) => head[i] === b);
    if (starts(GZIP_MAGIC)) return 'gzip';
    if (starts(ZSTD_MAGIC)) return 'zstd';
    return 'none';
  } finally {
    await file.close();
  }
}

/** The uncompressed bytes of the file at `path`; `what` names it in errors. */
export async function* readDecompressed(path: string, what: string): AsyncGenerator<Buffer> {
  const compression = await detectCompression(path);
  const raw = createReadStream(path, { highWaterMark: 256 * 1024 });
  try {
    if (compression === 'none') {
      for await (const chunk of raw as AsyncIterable<Buffer>) yield chunk;
    } else if (compression === 'gzip') {
      const gunzip = createGunzip();
      raw.on('error', (error) => gunzip.destroy(error));
      raw.pipe(gunzip);
      try {
        for await (const chunk of gunzip as AsyncIterable<Buffer>) yield chunk;
      } catch (error) {
        throw new Error(`${what}: cannot decompress gzip: ${(error as Error).message}`);
      } finally {
        gunzip.destroy();
      }
    } else {
      yield* zstdChunks(raw as AsyncIterable<Buffer>, what);
    }
  } finally {
    raw.destroy();
  }
}

async function* zstdChunks(source: AsyncIterable<Buffer>, what: string): AsyncGenerator<Buffer> {
  const pending: Buffer[] = [];
  // Set by the decoder's callback (an object, so the check below is not narrowed to its start value).
  const stream = { finished: false };
  const decoder = new Decompress((data, final) => {
    // fzstd may reuse its window buffer between calls, so keep a copy.
    if (data.byteLength > 0) pending.push(Buffer.from(data));
    if (final === true) stream.finished = true;
  });
  const push = (chunk: Uint8Array, final: boolean): void => {
    try {
      decoder.push(chunk, final);
    } catch (error) {
      throw new Error(`${what}: cannot decompress zstd: ${(error as Error).message}`);
    }
  };
  for await (const chunk of source) {
    push(chunk, false);
    while (pending.length > 0) yield pending.shift() as Buffer;
  }
  push(new Uint8Array(0), true);
  while (pending.length > 0) yield pending.shift() as Buffer;
  if (!stream.finished) throw new Error(`${what}: cannot decompress zstd: the stream ends inside a frame`);
}
