// ADD of an http(s) URL: the file is fetched by the node (not from a RUN container), size-capped
// and time-limited, hashed on the way in and checked against --checksum when one was given. Its
// content digest is what the step's cache key uses, as BuildKit does: the same bytes behind the
// URL take the step from the cache.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { BuildError } from '../../common/build/builder.js';

export const MAX_ADD_URL_BYTES = 1024 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 10 * 60 * 1000;

export interface DownloadedFile {
  path: string;
  sha256: string;
  /** From Last-Modified when the server sent one (Docker uses it as the file's mtime), else now. */
  mtime: Date;
  /** The file name the URL's path ends with ("index.html" for a path ending in "/"). */
  name: string;
}

/** Pure: the name ADD gives a fetched file when the destination is a directory. */
export function fileNameOfUrl(url: URL): string {
  const last = decodeURIComponent(url.pathname.split('/').pop() ?? '');
  return last === '' || last === '.' || last === '..' || last.includes('/') ? 'index.html' : last;
}

/** Fetches `url` into `target` (which must not exist); checks `checksum` ("sha256:<hex>") when given. */
export async function downloadUrl(rawUrl: string, target: string, checksum: string | undefined, signal: AbortSignal): Promise<DownloadedFile> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new BuildError(`ADD ${rawUrl}: not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BuildError(`ADD ${rawUrl}: only http and https URLs can be fetched`);
  if (checksum !== undefined && !/^sha256:[a-f0-9]{64}$/.test(checksum)) throw new BuildError(`ADD --checksum=${checksum}: expected sha256: and 64 hex digits`);
  const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]), redirect: 'follow' }).catch((error: unknown) => {
    throw new BuildError(`ADD ${rawUrl}: ${(error as Error).message}`);
  });
  if (!response.ok || response.body === null) throw new BuildError(`ADD ${rawUrl}: the server answered ${response.status} ${response.statusText}`);
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_ADD_URL_BYTES) throw new BuildError(`ADD ${rawUrl}: ${declared} bytes is over the limit of ${MAX_ADD_URL_BYTES}`);
  const hash = createHash('sha256');
  const file = await open(target, 'wx', 0o600);
  let size = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > MAX_ADD_URL_BYTES) throw new BuildError(`ADD ${rawUrl}: more than the limit of ${MAX_ADD_URL_BYTES} bytes`);
      hash.update(chunk);
      await file.write(chunk);
    }
  } finally {
    await file.close();
  }
  const sha256 = `sha256:${hash.digest('hex')}`;
  if (checksum !== undefined && checksum !== sha256) throw new BuildError(`ADD ${rawUrl}: checksum mismatch: --checksum=${checksum}, the content is ${sha256}`);
  const lastModified = Date.parse(response.headers.get('last-modified') ?? '');
  return { path: target, sha256, mtime: Number.isNaN(lastModified) ? new Date() : new Date(lastModified), name: fileNameOfUrl(url) };
}
