// Pushing one image to an OCI distribution registry (distribution spec, "Pushing blobs" and
// "Pushing manifests"). Every blob is first asked for with HEAD and sent only when the registry
// lacks it: a POST opens an upload session, then one PUT to the Location it returned carries the
// whole blob and its digest (the spec's "POST then PUT" monolithic upload). Chunked PATCH uploads
// are not used: they pay only when a broken upload is resumed from where it stopped, and here a
// broken upload is sent again from the start (blobs are read from the store's files, so that costs
// nothing but the bytes); one PUT is also what every registry accepts. The manifest goes last,
// once everything it points to is there, and the registry must confirm the digest of the bytes we
// sent.
import { createReadStream } from 'node:fs';
import { DigestMismatchError, sha256Digest } from '../../common/images/digest.js';
import { type ImageReference, formatReference } from '../../common/images/reference.js';
import type { PushProgress } from '../../common/images/types.js';
import { mapLimit } from './concurrency.js';
import type { Descriptor, ImageManifest } from './manifest.js';
import { OCI_MANIFEST } from './media-types.js';
import { meteredChunks } from './metered.js';
import { IdleAbort, type RegistryClient, RegistryError, type RegistryRequest, errorDetail, urlForMessages } from './registry-client.js';

export interface PushInput {
  /** Where to: registry, repository and the tag to put the manifest under. */
  target: ImageReference & { tag: string };
  manifestBytes: Buffer;
  manifest: ImageManifest;
  /**
   * A repository of the same registry that already holds the image's blobs (the one it was
   * pulled from): blobs missing from the target are mounted from it instead of sent, where the
   * registry allows (a cross-repository mount); otherwise they are uploaded.
   */
  mountFrom?: string;
  /** The store's file of a blob (verified when it was stored). */
  blobPath: (digest: string) => string;
  /** Blobs checked and sent at once. */
  concurrency: number;
  /** A blob upload whose body the registry stops reading for this long is aborted, in ms. */
  blobIdleTimeoutMs: number;
  onProgress: (event: PushProgress) => void;
  /** Checked before each blob and before the manifest (blob uploads under way finish or fail on their own). */
  signal?: AbortSignal;
}

export interface PushedManifest {
  /** The manifest digest the registry confirmed. */
  digest: string;
  pushed: number;
  existed: number;
  mounted: number;
}

/** A registry's Location header longer than this is not a URL we follow. */
const MAX_LOCATION_CHARS = 8192;

/** A push that failed, naming the target and the step (the cause names the URL, so registry and repository). */
export class PushError extends Error {
  constructor(
    readonly target: string,
    readonly step: string,
    cause: unknown,
  ) {
    super(`push ${target}: ${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'PushError';
  }
}

async function step<T>(target: string, what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new PushError(target, what, error);
  }
}

interface Blob {
  descriptor: Descriptor;
  kind: 'config' | 'layer';
}

/** Config and layers, each digest once (an image may repeat a layer, e.g. an empty one). */
function blobsOf(manifest: ImageManifest): Blob[] {
  const seen = new Set<string>();
  const blobs: Blob[] = [];
  for (const blob of [
    { descriptor: manifest.config, kind: 'config' as const },
    ...manifest.layers.map((descriptor) => ({ descriptor, kind: 'layer' as const })),
  ]) {
    if (seen.has(blob.descriptor.digest)) continue;
    seen.add(blob.descriptor.digest);
    blobs.push(blob);
  }
  return blobs;
}

/** The registry, repository and token scope every request of one push shares (one token serves them all). */
interface Session {
  client: RegistryClient;
  ref: ImageReference;
  /** .../v2/<repository> of the target. */
  api: string;
  access: Pick<RegistryRequest, 'actions' | 'alsoPullFrom'>;
}

/** Sends the blobs the registry lacks, then the manifest under the target's tag. */
export async function pushManifest(client: RegistryClient, input: PushInput): Promise<PushedManifest> {
  const target = formatReference(input.target);
  const mountFrom = input.mountFrom !== undefined && input.mountFrom !== input.target.repository ? input.mountFrom : undefined;
  const session: Session = {
    client,
    ref: input.target,
    api: `${client.baseUrl(input.target.registry)}/v2/${input.target.repository}`,
    access: { actions: 'pull,push', ...(mountFrom === undefined ? {} : { alsoPullFrom: mountFrom }) },
  };
  const counts = { pushed: 0, existed: 0, mounted: 0 };
  await mapLimit(blobsOf(input.manifest), input.concurrency, async ({ descriptor, kind }) => {
    const event = { digest: descriptor.digest, kind, total: descriptor.size };
    const what = `${kind} ${descriptor.digest}`;
    stopIfCancelled(input.signal, target);
    if (await step(target, `checking whether the registry has ${what}`, () => blobExists(session, descriptor))) {
      counts.existed++;
      input.onProgress({ ...event, status: 'exists', current: descriptor.size });
      return;
    }
    const started = await step(target, `starting the upload of ${what}`, () => startUpload(session, descriptor, mountFrom));
    if (started === 'mounted') {
      counts.mounted++;
      input.onProgress({ ...event, status: 'mounted', current: descriptor.size });
      return;
    }
    await step(target, `uploading ${what}`, () =>
      uploadBlob(session, input.blobIdleTimeoutMs, started, descriptor, input.blobPath(descriptor.digest), (current) =>
        input.onProgress({ ...event, status: 'pushing', current }),
      ),
    );
    counts.pushed++;
    input.onProgress({ ...event, status: 'pushed', current: descriptor.size });
  });
  stopIfCancelled(input.signal, target);
  const digest = await step(target, 'putting the manifest', () => putManifest(session, input));
  return { digest, ...counts };
}

function stopIfCancelled(signal: AbortSignal | undefined, target: string): void {
  if (signal?.aborted) throw new PushError(target, 'cancelled', new Error('the push was called off before its manifest was put; the tag is unchanged'));
}

async function unexpected(method: string, url: string, response: Response, hint = ''): Promise<RegistryError> {
  const detail = await errorDetail(response);
  return new RegistryError(`${method} ${urlForMessages(url)}: ${response.status} ${response.statusText}${detail}${hint}`, response.status);
}

/** The credentials may allow pulling only: say where they come from when the registry refuses. */
function authHint(status: number, ref: ImageReference): string {
  return status === 401 || status === 403 ? `; the node's credentials for ${ref.registry} (its registries file) must allow pushing to ${ref.repository}` : '';
}

async function blobExists(session: Session, descriptor: Descriptor): Promise<boolean> {
  const url = `${session.api}/blobs/${descriptor.digest}`;
  const response = await session.client.send(session.ref, { method: 'HEAD', url, ...session.access, timeout: true });
  await response.body?.cancel();
  if (response.status === 404) return false;
  if (response.status === 200) return true;
  throw await unexpected('HEAD', url, response, authHint(response.status, session.ref));
}

/**
 * Opens an upload session and returns its absolute URL; or, asked to mount the blob from
 * `mountFrom` and the registry did (201), 'mounted'. A registry that will not mount answers 202
 * with an upload session, as for a plain POST.
 */
async function startUpload(session: Session, descriptor: Descriptor, mountFrom: string | undefined): Promise<URL | 'mounted'> {
  const url = `${session.api}/blobs/uploads/`;
  const mount = mountFrom === undefined ? '' : `?mount=${encodeURIComponent(descriptor.digest)}&from=${encodeURIComponent(mountFrom)}`;
  const response = await session.client.send(session.ref, {
    method: 'POST',
    url: `${url}${mount}`,
    headers: { 'content-length': '0' },
    ...session.access,
    timeout: true,
  });
  if (response.status === 201 && mountFrom !== undefined) {
    await response.body?.cancel();
    return 'mounted';
  }
  if ((response.status === 401 || response.status === 403) && mountFrom !== undefined) {
    // The token may grant the target but not reading the source: then the blob is simply uploaded.
    await response.body?.cancel();
    return startUpload(session, descriptor, undefined);
  }
  if (response.status !== 202) throw await unexpected('POST', url, response, authHint(response.status, session.ref));
  await response.body?.cancel();
  return uploadLocation(response.headers.get('location'), url);
}

/**
 * The Location of an upload session, resolved against the request's URL (registries may send a
 * path only). Only http(s), and never plain HTTP when the registry itself is spoken to over HTTPS.
 */
export function uploadLocation(header: string | null, requestUrl: string): URL {
  if (header === null || header === '') throw new RegistryError(`POST ${requestUrl}: 202 without a Location header for the upload`);
  if (header.length > MAX_LOCATION_CHARS) throw new RegistryError(`POST ${requestUrl}: the upload Location is longer than ${MAX_LOCATION_CHARS} characters`);
  let location: URL;
  try {
    location = new URL(header, requestUrl);
  } catch {
    // Not quoted: a Location may carry a signature, and this one is unusable whatever it says.
    throw new RegistryError(`POST ${requestUrl}: the upload Location (${header.length} characters) is not a URL`);
  }
  if (location.protocol !== 'https:' && location.protocol !== 'http:') {
    throw new RegistryError(`POST ${requestUrl}: the upload Location has scheme ${location.protocol}, expected http or https`);
  }
  if (new URL(requestUrl).protocol === 'https:' && location.protocol !== 'https:') {
    throw new RegistryError(`POST ${requestUrl}: the registry sent an upload Location over plain HTTP (${location.origin}); refused`);
  }
  location.hash = '';
  return location;
}

/** The upload URL with `digest=` added to what the registry put in its query (kept as it is, e.g. a state token). */
export function withDigest(location: URL, digest: string): string {
  const url = new URL(location);
  const parameter = `digest=${encodeURIComponent(digest)}`;
  url.search = url.search.length > 1 ? `${url.search}&${parameter}` : `?${parameter}`;
  return url.toString();
}

async function uploadBlob(
  session: Session,
  idleTimeoutMs: number,
  location: URL,
  descriptor: Descriptor,
  path: string,
  report: (current: number) => void,
): Promise<void> {
  const url = withDigest(location, descriptor.digest);
  // Blobs may be large, so no overall deadline: an upload the registry stops reading is aborted.
  const idle = new IdleAbort(idleTimeoutMs);
  try {
    const body = (): AsyncIterable<Uint8Array> =>
      meteredChunks(
        (async function* () {
          for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
            idle.touch();
            yield chunk;
          }
        })(),
        descriptor.size,
        report,
      );
    const response = await session.client.send(session.ref, {
      method: 'PUT',
      url,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(descriptor.size) },
      body,
      ...session.access,
      timeout: false,
      idle,
    });
    if (response.status !== 201 && response.status !== 204) throw await unexpected('PUT', url, response, authHint(response.status, session.ref));
    await response.body?.cancel();
    checkConfirmedDigest(response, descriptor.digest, `PUT ${urlForMessages(url)}`);
  } catch (error) {
    if (idle.signal.aborted)
      throw new RegistryError(
        `PUT ${urlForMessages(url)}: no progress for ${idleTimeoutMs} ms (the registry neither read the blob nor answered), also when tried again`,
      );
    throw error;
  } finally {
    idle.clear();
  }
}

async function putManifest(session: Session, input: PushInput): Promise<string> {
  const url = `${session.api}/manifests/${input.target.tag}`;
  const digest = sha256Digest(input.manifestBytes);
  // OCI manifests may leave their media type out; the registry needs it as the Content-Type.
  const contentType = input.manifest.mediaType ?? OCI_MANIFEST;
  const response = await session.client.send(session.ref, {
    method: 'PUT',
    url,
    headers: { 'content-type': contentType },
    body: () => input.manifestBytes,
    ...session.access,
    timeout: true,
  });
  if (response.status !== 201 && response.status !== 200) throw await unexpected('PUT', url, response, authHint(response.status, session.ref));
  await response.body?.cancel();
  if (response.headers.get('docker-content-digest') !== null) {
    checkConfirmedDigest(response, digest, `PUT ${url}`);
    return digest;
  }
  // No digest in the answer (it is optional): ask for the tag, which must now name our manifest.
  const head = await session.client.send(session.ref, { method: 'HEAD', url, headers: { accept: contentType }, ...session.access, timeout: true });
  await head.body?.cancel();
  if (!head.ok) throw await unexpected('HEAD', url, head);
  if (head.headers.get('docker-content-digest') === null) {
    throw new RegistryError(`HEAD ${url}: the registry confirms no digest (no Docker-Content-Digest header) for the manifest it accepted`);
  }
  checkConfirmedDigest(head, digest, `HEAD ${url}`);
  return digest;
}

function checkConfirmedDigest(response: Response, expected: string, what: string): void {
  const confirmed = response.headers.get('docker-content-digest');
  if (confirmed !== null && confirmed !== expected) throw new DigestMismatchError(`${what} (Docker-Content-Digest header)`, expected, confirmed);
}
