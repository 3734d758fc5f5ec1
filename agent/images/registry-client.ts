// Client for the OCI distribution (v2) API: manifests and blobs, with Docker-style token and
// basic auth, and bounded retries with back-off for what a registry or network may fail at
// for a moment (5xx, 429, resets). It only fetches; verification of what it fetched happens
// where bytes are stored.
import { DigestMismatchError, SizeMismatchError, sha256Digest } from '../../common/images/digest.js';
import { MANIFEST_ACCEPT } from './media-types.js';
import { type Descriptor, type ManifestDocument, parseManifestDocument } from './manifest.js';
import { type ImageReference, isLoopbackRegistry, registryApiHost, repositoryName } from '../../common/images/reference.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, decideRetry, isRetryableStatus, parseRetryAfter, validateRetryPolicy } from './retry.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Registries (host[:port]) spoken to over plain HTTP; loopback registries always are. */
  insecureRegistries?: string[];
  credentials?: (registry: string) => RegistryCredentials | undefined;
  /** Replaces the global fetch (tests count requests with it). */
  fetch?: typeof globalThis.fetch;
  /** Timeout for manifest and token requests, in ms. */
  requestTimeoutMs?: number;
  /** A blob download that receives nothing for this long is aborted, in ms. */
  blobIdleTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Injected for tests: waiting, jitter and the clock (for Retry-After dates). */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
  /** Told about every retry, e.g. for the daemon's log. */
  onRetry?: (message: string) => void;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  document: ManifestDocument;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** True when asking again may succeed (network trouble, overload); false for answers like 404. */
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_TOKEN_BYTES = 1024 * 1024;

/** What a bearer token is asked for: reading, or reading and writing (a push). */
export type RegistryActions = 'pull' | 'pull,push';

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  /** Absolute: an API URL under baseUrl(), or an upload location the registry gave. */
  url: string;
  headers?: Record<string, string>;
  /** Made anew for every attempt: a streamed body can be sent only once. */
  body?: () => Uint8Array | AsyncIterable<Uint8Array>;
  actions: RegistryActions;
  /** Another repository of the same registry the request also reads (a cross-repository mount's source). */
  alsoPullFrom?: string;
  /** true: the whole request within requestTimeoutMs; false: bounded by `idle` if given. */
  timeout: boolean;
  idle?: IdleAbort;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export class RegistryClient {
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly insecure: Set<string>;
  private readonly timeoutMs: number;
  private readonly blobIdleTimeoutMs: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;
  /** Authorization header per "registry/repository", reused until the registry refuses it. */
  private readonly authorizations = new Map<string, string>();

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.insecure = new Set(options.insecureRegistries ?? []);
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.blobIdleTimeoutMs = options.blobIdleTimeoutMs ?? 60_000;
    this.retryPolicy = validateRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...options.retry });
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  baseUrl(registry: string): string {
    const scheme = isLoopbackRegistry(registry) || this.insecure.has(registry) ? 'http' : 'https';
    return `${scheme}://${registryApiHost(registry)}`;
  }

  /** Fetches a manifest or index by tag or digest and checks it against the digest asked for. */
  async getManifest(ref: ImageReference, tagOrDigest: string): Promise<FetchedManifest> {
    const name = `${repositoryName(ref)}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
    const response = await this.request(ref, `/manifests/${tagOrDigest}`, { accept: MANIFEST_ACCEPT, timeout: true });
    const bytes = await readLimited(response, MAX_MANIFEST_BYTES, `manifest of ${name}`);
    const digest = sha256Digest(bytes);
    if (tagOrDigest.startsWith('sha256:') && digest !== tagOrDigest) {
      throw new DigestMismatchError(`manifest of ${name}`, tagOrDigest, digest);
    }
    const headerDigest = response.headers.get('docker-content-digest');
    if (headerDigest !== null && headerDigest.startsWith('sha256:') && headerDigest !== digest) {
      throw new DigestMismatchError(`manifest of ${name} (Docker-Content-Digest header)`, headerDigest, digest);
    }
    const contentType = response.headers.get('content-type') ?? undefined;
    const document = parseManifestDocument(bytes, `manifest of ${name}`, contentType);
    const mediaType = document.kind === 'index' ? (document.index.mediaType ?? contentType ?? '') : (document.manifest.mediaType ?? contentType ?? '');
    return { digest, mediaType, bytes, document };
  }

  /**
   * Opens a blob for reading. Callers must check the digest of what they read (BlobStore.ingest
   * does); here only a Content-Length that contradicts the descriptor is refused early.
   */
  async openBlob(ref: ImageReference, descriptor: Descriptor): Promise<AsyncIterable<Uint8Array>> {
    const what = `blob ${descriptor.digest} of ${repositoryName(ref)}`;
    // Blobs may be large, so no overall deadline; instead a download that stalls is aborted.
    const idle = new IdleAbort(this.blobIdleTimeoutMs);
    let response: Response;
    try {
      response = await this.request(ref, `/blobs/${descriptor.digest}`, { accept: '*/*', timeout: false, idle });
    } catch (error) {
      idle.clear();
      throw error;
    }
    const length = response.headers.get('content-length');
    if (length !== null && Number(length) !== descriptor.size && response.headers.get('content-encoding') === null) {
      idle.clear();
      await response.body?.cancel();
      throw new SizeMismatchError(what, descriptor.size, Number(length));
    }
    const body = response.body;
    if (!body) {
      idle.clear();
      throw new RegistryError(`${what}: response has no body`);
    }
    const timeoutMs = this.blobIdleTimeoutMs;
    return (async function* () {
      // Node 20's fetch cancels a body, silently ending it early, once its Response object is
      // garbage-collected; so the Response stays referenced until the body is read.
      const keepAlive = response;
      let received = 0;
      try {
        for await (const chunk of body) {
          idle.touch();
          received += chunk.byteLength;
          yield chunk;
        }
        // A body shorter than declared is a broken connection (so worth another try), not bad content.
        if (received < descriptor.size)
          throw new Error(`the body ended after ${received} of ${keepAlive.headers.get('content-length') ?? descriptor.size} bytes`);
      } catch (error) {
        if (idle.signal.aborted) throw new RegistryError(`${what}: no data received for ${timeoutMs} ms`, undefined, true);
        // The connection broke mid-body: the download as a whole may be tried again.
        throw new RegistryError(`${what}: download interrupted: ${describeFetchError(error)}`, undefined, true);
      } finally {
        idle.clear();
      }
    })();
  }

  /**
   * Downloads a blob into `consume` (which must check its digest), starting again from the
   * beginning when the download breaks off or stalls, within the retry policy. Errors of the
   * content itself (digest or size mismatch) are never retried: the registry would send the
   * same bytes again.
   */
  async fetchBlob<T>(ref: ImageReference, descriptor: Descriptor, consume: (chunks: AsyncIterable<Uint8Array>, attempt: number) => Promise<T>): Promise<T> {
    const what = `blob ${descriptor.digest} of ${repositoryName(ref)}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await consume(await this.openBlob(ref, descriptor), attempt);
      } catch (error) {
        if (!(error instanceof RegistryError) || !error.retryable) throw error;
        const decision = decideRetry(attempt, this.retryPolicy, this.random);
        if (!decision.retry) throw new RegistryError(`${error.message} (${decision.reason})`, error.status, false);
        this.options.onRetry?.(
          `${what}: ${error.message}; downloading again in ${decision.delayMs} ms (attempt ${attempt + 1} of ${this.retryPolicy.maxAttempts})`,
        );
        await this.sleep(decision.delayMs);
      }
    }
  }

  private async request(ref: ImageReference, path: string, options: { accept: string; timeout: boolean; idle?: IdleAbort }): Promise<Response> {
    const url = `${this.baseUrl(ref.registry)}/v2/${ref.repository}${path}`;
    const response = await this.send(ref, {
      method: 'GET',
      url,
      headers: { accept: options.accept },
      actions: 'pull',
      ...(options.timeout ? {} : { idle: options.idle }),
      timeout: options.timeout,
    });
    if (!response.ok) {
      const detail = await errorDetail(response);
      throw new RegistryError(`GET ${url}: ${response.status} ${response.statusText}${detail}`, response.status);
    }
    return response;
  }

  /**
   * One request to the registry, authorised (a 401 is answered once with credentials or a token
   * for `actions`) and retried as the policy says. Any other status is the caller's to judge.
   * The Authorization header goes only to the registry's own origin: an upload location on
   * another host (a storage backend) must not see the registry's token.
   */
  async send(ref: ImageReference, request: RegistryRequest): Promise<Response> {
    const origin = new URL(this.baseUrl(ref.registry)).origin;
    const target = new URL(request.url);
    // Pull and push tokens are kept apart: a pull token would be refused for an upload.
    const scopes = { actions: request.actions, ...(request.alsoPullFrom === undefined ? {} : { alsoPullFrom: request.alsoPullFrom }) };
    const scopeKey = `${repositoryName(ref)} ${request.actions}${request.alsoPullFrom === undefined ? '' : ` ${request.alsoPullFrom}:pull`}`;
    let authorized = false;
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = { ...request.headers };
      const authorization = this.authorizations.get(scopeKey);
      if (authorization !== undefined && target.origin === origin) headers.authorization = authorization;
      request.idle?.renew();
      const signal = request.timeout ? AbortSignal.timeout(this.timeoutMs) : request.idle?.signal;
      const init: RequestInit & { duplex?: 'half' } = {
        method: request.method,
        headers,
        // A streamed body cannot be sent again to a redirect's target: only reads follow them.
        redirect: request.method === 'GET' || request.method === 'HEAD' ? 'follow' : 'manual',
        ...(signal ? { signal } : {}),
      };
      if (request.body) {
        // Node's fetch (undici) sends an async iterable as a stream; the DOM's BodyInit type does not list it.
        init.body = request.body() as BodyInit;
        // Required by fetch for a streamed request body.
        init.duplex = 'half';
      }
      const response = await this.fetchWithRetry(request.url, init, attempt);
      if (response.kind === 'retry') {
        attempt = response.attempt;
        continue;
      }
      const ok = response.response;
      if (ok.status === 401 && !authorized && target.origin === origin) {
        authorized = true;
        const challenge = parseChallenge(ok.headers.get('www-authenticate'));
        await ok.body?.cancel();
        this.authorizations.set(scopeKey, await this.authorize(ref, challenge, `${request.method} ${urlForMessages(request.url)}`, scopes));
        attempt = 0;
        continue;
      }
      return ok;
    }
  }

  /**
   * One fetch; on a network error or a retryable status it waits as the policy says and returns
   * "retry" (the caller rebuilds the request: headers or signals may have changed), and when
   * the policy is spent it throws.
   */
  private async fetchWithRetry(
    url: string | URL,
    init: RequestInit,
    attempt: number,
  ): Promise<{ kind: 'response'; response: Response } | { kind: 'retry'; attempt: number }> {
    const label = `${init.method ?? 'GET'} ${urlForMessages(url)}`;
    let problem: string;
    let retryAfterMs: number | undefined;
    let status: number | undefined;
    try {
      const response = await this.fetchImpl(url, init);
      if (!isRetryableStatus(response.status)) return { kind: 'response', response };
      status = response.status;
      retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.now());
      problem = `${response.status} ${response.statusText}${await errorDetail(response)}`;
    } catch (error) {
      problem = describeFetchError(error);
    }
    const decision = decideRetry(attempt, this.retryPolicy, this.random, retryAfterMs);
    // Spent: not retryable any more, so callers further up do not start another round.
    if (!decision.retry) throw new RegistryError(`${label}: ${problem} (${decision.reason})`, status, false);
    this.options.onRetry?.(`${label}: ${problem}; retrying in ${decision.delayMs} ms (attempt ${attempt + 1} of ${this.retryPolicy.maxAttempts})`);
    await this.sleep(decision.delayMs);
    return { kind: 'retry', attempt };
  }

  private async authorize(
    ref: ImageReference,
    challenge: Challenge | undefined,
    what: string,
    scopes: { actions: RegistryActions; alsoPullFrom?: string },
  ): Promise<string> {
    const credentials = this.options.credentials?.(ref.registry);
    if (challenge === undefined) {
      throw new RegistryError(`${what}: 401 Unauthorized without a usable WWW-Authenticate challenge`, 401);
    }
    if (challenge.scheme === 'basic') {
      if (!credentials) {
        throw new RegistryError(`${what}: registry ${ref.registry} requires a user name and password; none configured`, 401);
      }
      return basicAuthorization(credentials);
    }
    if (challenge.scheme === 'bearer') {
      const realm = challenge.params.realm;
      if (!realm) throw new RegistryError(`${what}: bearer challenge without a realm`, 401);
      const tokenUrl = new URL(realm);
      if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
      // A push asks for pull and push whatever the challenge named (a HEAD's challenge names pull only).
      const scope =
        scopes.actions === 'pull' ? (challenge.params.scope ?? `repository:${ref.repository}:pull`) : `repository:${ref.repository}:${scopes.actions}`;
      tokenUrl.searchParams.set('scope', scope);
      if (scopes.alsoPullFrom !== undefined) tokenUrl.searchParams.append('scope', `repository:${scopes.alsoPullFrom}:pull`);
      const headers: Record<string, string> = { accept: 'application/json' };
      if (credentials) headers.authorization = basicAuthorization(credentials);
      let response: Response;
      for (let attempt = 1; ; attempt++) {
        const result = await this.fetchWithRetry(tokenUrl, { headers, signal: AbortSignal.timeout(this.timeoutMs) }, attempt);
        if (result.kind === 'response') {
          response = result.response;
          break;
        }
      }
      if (!response.ok) {
        throw new RegistryError(`token request to ${tokenUrl.origin}: ${response.status} ${response.statusText}`, response.status);
      }
      const body: unknown = JSON.parse((await readLimited(response, MAX_TOKEN_BYTES, 'token response')).toString('utf8'));
      const token =
        typeof body === 'object' && body !== null
          ? 'token' in body && typeof body.token === 'string'
            ? body.token
            : 'access_token' in body && typeof body.access_token === 'string'
              ? body.access_token
              : undefined
          : undefined;
      if (!token) throw new RegistryError(`token response from ${tokenUrl.origin} has neither "token" nor "access_token"`);
      return `Bearer ${token}`;
    }
    throw new RegistryError(`${what}: unsupported authentication scheme ${JSON.stringify(challenge.scheme)}`, 401);
  }
}

/** An AbortSignal that fires when `touch` has not been called for `ms`. */
export class IdleAbort {
  private controller = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(ms: number) {
    this.timer = setTimeout(() => this.controller.abort(), ms);
  }

  /** A fresh signal and a fresh deadline, for another attempt after this one fired. */
  renew(): void {
    if (this.controller.signal.aborted) this.controller = new AbortController();
    this.timer.refresh();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    this.timer.refresh();
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

/**
 * A URL as errors and logs show it: without its query, which for an upload location may hold a
 * signature that grants access (a storage backend's pre-signed URL).
 */
export function urlForMessages(url: string | URL): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

function basicAuthorization(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (only the first challenge is used). */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (!match || match[1] === undefined) return undefined;
  const params: Record<string, string> = {};
  const paramPattern = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const p of (match[2] ?? '').matchAll(paramPattern)) {
    if (p[1] !== undefined) params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: match[1].toLowerCase(), params };
}

export async function readLimited(response: Response, max: number, what: string): Promise<Buffer> {
  const length = response.headers.get('content-length');
  if (length !== null && Number(length) > max) {
    await response.body?.cancel();
    throw new RegistryError(`${what}: ${length} bytes is larger than the limit of ${max}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > max) throw new RegistryError(`${what}: larger than the limit of ${max} bytes`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks);
}

/** The distribution API's error list, e.g. " (MANIFEST_UNKNOWN: manifest unknown)". */
export async function errorDetail(response: Response): Promise<string> {
  let text: string;
  try {
    text = (await readLimited(response, 64 * 1024, 'error body')).toString('utf8');
  } catch (error) {
    // The status is the error being reported; a body that cannot be read is only named in it.
    return ` (its body could not be read: ${(error as Error).message})`;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined; // not JSON: the text itself is shown below
  }
  if (typeof body === 'object' && body !== null && 'errors' in body && Array.isArray(body.errors)) {
    const parts = body.errors.map((e: unknown) =>
      typeof e === 'object' && e !== null && 'code' in e && 'message' in e ? `${String(e.code)}: ${String(e.message)}` : JSON.stringify(e),
    );
    if (parts.length > 0) return ` (${parts.join('; ')})`;
  }
  return text.trim() ? ` (${text.trim().slice(0, 200)})` : '';
}

export function describeFetchError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
