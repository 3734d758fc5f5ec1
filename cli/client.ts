// A promise-based face of the gRPC API for tsctl. The server address comes from --server,
// $TESSERA_SERVER or the context file; how to reach it (plaintext on a manager's root socket,
// mutual TLS with the context's certificate elsewhere) is with-client.ts's choice.
import * as grpc from '@grpc/grpc-js';

import { loadApiPackage } from '../proto/load.js';
import { MAX_REQUEST_BYTES } from '../common/resources/limits.js';
import type { TesseraClient } from '../proto/gen/tessera/api/v1/Tessera.js';
import type { ApplyRequest } from '../proto/gen/tessera/api/v1/ApplyRequest.js';
import type { ApplyResponse__Output } from '../proto/gen/tessera/api/v1/ApplyResponse.js';
import type { DeleteRequest } from '../proto/gen/tessera/api/v1/DeleteRequest.js';
import type { DeleteResponse__Output } from '../proto/gen/tessera/api/v1/DeleteResponse.js';
import type { ListRequest } from '../proto/gen/tessera/api/v1/ListRequest.js';
import type { ListResponse__Output } from '../proto/gen/tessera/api/v1/ListResponse.js';
import type { WatchRequest } from '../proto/gen/tessera/api/v1/WatchRequest.js';
import type { WatchEvent__Output } from '../proto/gen/tessera/api/v1/WatchEvent.js';
import type { ScaleRequest } from '../proto/gen/tessera/api/v1/ScaleRequest.js';
import type { ScaleResponse__Output } from '../proto/gen/tessera/api/v1/ScaleResponse.js';
import type { ImageSummary__Output } from '../proto/gen/tessera/api/v1/ImageSummary.js';
import type { ImageListResponse__Output } from '../proto/gen/tessera/api/v1/ImageListResponse.js';
import type { ImageLoadResponse__Output } from '../proto/gen/tessera/api/v1/ImageLoadResponse.js';
import type { ImagePullEvent__Output } from '../proto/gen/tessera/api/v1/ImagePullEvent.js';
import type { ImagePushEvent__Output } from '../proto/gen/tessera/api/v1/ImagePushEvent.js';
import type { ImageRemoveResponse__Output } from '../proto/gen/tessera/api/v1/ImageRemoveResponse.js';
import type { ImageGcResult__Output } from '../proto/gen/tessera/api/v1/ImageGcResult.js';
import type { ImageSaveChunk__Output } from '../proto/gen/tessera/api/v1/ImageSaveChunk.js';
import type { LogsRequest } from '../proto/gen/tessera/api/v1/LogsRequest.js';
import type { LogLine__Output } from '../proto/gen/tessera/api/v1/LogLine.js';
import type { EventsRequest } from '../proto/gen/tessera/api/v1/EventsRequest.js';
import type { ClusterEventMessage__Output } from '../proto/gen/tessera/api/v1/ClusterEventMessage.js';
import type { JoinTokenResponse__Output } from '../proto/gen/tessera/api/v1/JoinTokenResponse.js';
import type { NodeUpdateRequest } from '../proto/gen/tessera/api/v1/NodeUpdateRequest.js';
import type { NodeUpdateResponse__Output } from '../proto/gen/tessera/api/v1/NodeUpdateResponse.js';
import type { NodeRemoveResponse__Output } from '../proto/gen/tessera/api/v1/NodeRemoveResponse.js';
import type { UserCertificateRequest } from '../proto/gen/tessera/api/v1/UserCertificateRequest.js';
import type { UserCertificateResponse__Output } from '../proto/gen/tessera/api/v1/UserCertificateResponse.js';
import type { AuditLogRequest } from '../proto/gen/tessera/api/v1/AuditLogRequest.js';
import type { AuditLogResponse__Output } from '../proto/gen/tessera/api/v1/AuditLogResponse.js';
import type { RotateCaResponse__Output } from '../proto/gen/tessera/api/v1/RotateCaResponse.js';
import type { ClusterUpdateRequest } from '../proto/gen/tessera/api/v1/ClusterUpdateRequest.js';
import type { ClusterUpdateResponse__Output } from '../proto/gen/tessera/api/v1/ClusterUpdateResponse.js';
import type { TopRequest } from '../proto/gen/tessera/api/v1/TopRequest.js';
import type { TopResponse__Output } from '../proto/gen/tessera/api/v1/TopResponse.js';
import type { ExecInput } from '../proto/gen/tessera/api/v1/ExecInput.js';
import type { ExecOutput__Output } from '../proto/gen/tessera/api/v1/ExecOutput.js';
import type { BuildInput } from '../proto/gen/tessera/api/v1/BuildInput.js';
import type { BuildOutput__Output } from '../proto/gen/tessera/api/v1/BuildOutput.js';
import { assertAddressAllowed, channelOptions, clientCredentials, LOCAL_INSECURE, type TransportSecurity } from '../common/transport/credentials.js';
import type { ClusterInfoResponse__Output } from '../proto/gen/tessera/api/v1/ClusterInfoResponse.js';
import {
  CONNECT_WAIT_MS,
  type ConnectOutcome,
  ELECTION_WAIT_MS,
  failoverClient,
  failureReason,
  ManagerRotation,
  mayRetry,
  NO_MANAGER_ANSWERED,
} from './failover.js';
import { EventResume, WatchResume } from './watch-resume.js';
import { LogResume } from '../common/logs/log-resume.js';

export class ApiCallError extends Error {
  readonly code: grpc.status;
  constructor(err: grpc.ServiceError) {
    // The gRPC error stays as the cause: a watch reads its code to decide whether to go on elsewhere.
    super(callErrorMessage(err), { cause: err });
    this.code = err.code;
    this.name = 'ApiCallError';
  }
}

/** The server's own words, with what kind of refusal it is where the code alone would leave a user guessing. */
function callErrorMessage(err: grpc.ServiceError): string {
  const said = err.details || err.message;
  if (said.startsWith(NO_MANAGER_ANSWERED)) return said; // already the one line that says what to do
  if (err.code === grpc.status.UNAVAILABLE) return `cannot reach the Tessera API (${said}); is the cluster up? (tsctl cluster up)`;
  if (err.code === grpc.status.UNAUTHENTICATED) return `the server did not accept this client's identity: ${said}`;
  if (err.code === grpc.status.PERMISSION_DENIED) return `permission denied: ${said}`;
  return said;
}

export interface ApiClientOptions {
  /** Deadline of a unary call unless the method sets its own; default 30 s. */
  timeoutMs?: number;
  /** Default plaintext, which assertAddressAllowed admits only on a unix socket or loopback. */
  security?: TransportSecurity;
  /**
   * Several managers: `address` is tried first, then these in order, each with its own security;
   * calls safe to repeat go to the next one when a manager is down or does not lead (failover.ts).
   */
  failover?: { addresses: string[]; securityFor: (address: string) => TransportSecurity; waitMs?: number };
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

function unary<T>(start: (callback: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, value) => {
      if (err) reject(new ApiCallError(err));
      else if (value === undefined) reject(new Error('empty response from the server'));
      else resolve(value);
    });
  });
}

export class ApiClient {
  private readonly raw: TesseraClient;
  private readonly timeoutMs: number;
  /** With several managers: which one is in use, and the way to the next. */
  private readonly rotation: ManagerRotation<TesseraClient> | undefined;

  /** `options` as a number is the timeout alone (how older callers pass it). */
  constructor(
    readonly address: string,
    options: ApiClientOptions | number = {},
  ) {
    const { timeoutMs = 30_000, security = LOCAL_INSECURE, failover } = typeof options === 'number' ? { timeoutMs: options } : options;
    this.timeoutMs = timeoutMs;
    const pkg = loadApiPackage();
    const open = (to: string, toSecurity: TransportSecurity): TesseraClient => {
      assertAddressAllowed(to, toSecurity);
      return new pkg.tessera.api.v1.Tessera(to, clientCredentials(toSecurity), {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        'grpc.max_send_message_length': MAX_REQUEST_BYTES, // requests: the server's 4 MiB; responses (List) may be larger
        ...channelOptions(toSecurity),
      });
    };
    if (!failover) {
      this.raw = open(address, security);
      this.rotation = undefined;
      return;
    }
    const addresses = [...new Set([address, ...failover.addresses])];
    // Every address is checked now, so a bad one is refused before anything is sent anywhere.
    for (const each of addresses) assertAddressAllowed(each, failover.securityFor(each));
    this.rotation = new ManagerRotation<TesseraClient>(
      addresses,
      (to) => open(to, to === address ? security : failover.securityFor(to)),
      (client) => client.close(),
      failover.waitMs ?? ELECTION_WAIT_MS,
    );
    const definition = pkg.tessera.api.v1.Tessera.service;
    const unaryMethods = new Set<string>();
    for (const [name, method] of Object.entries(definition)) {
      if (method.requestStream || method.responseStream) continue;
      unaryMethods.add(name);
      if (method.originalName) unaryMethods.add(method.originalName);
    }
    this.raw = failoverClient(this.rotation, unaryMethods, (client) => channelState(client.getChannel(), CONNECT_WAIT_MS));
  }

  /** The manager this client talks to now (after a failover, not the one it started with). */
  answeringAddress(): string {
    return this.rotation?.currentAddress ?? this.address;
  }

  private options(timeoutMs = this.timeoutMs): grpc.CallOptions {
    return { deadline: Date.now() + timeoutMs };
  }

  apply(req: ApplyRequest): Promise<ApplyResponse__Output> {
    return unary((cb) => this.raw.apply(req, this.options(), cb));
  }

  list(req: ListRequest, timeoutMs?: number): Promise<ListResponse__Output> {
    return unary((cb) => this.raw.list(req, this.options(timeoutMs), cb));
  }

  delete(req: DeleteRequest): Promise<DeleteResponse__Output> {
    return unary((cb) => this.raw.delete(req, this.options(), cb));
  }

  scale(req: ScaleRequest): Promise<ScaleResponse__Output> {
    return unary((cb) => this.raw.scale(req, this.options(), cb));
  }

  imagePull(reference: string): Promise<ImageSummary__Output> {
    return unary((cb) => this.raw.imagePull({ reference }, this.options(600_000), cb));
  }

  imageList(): Promise<ImageListResponse__Output> {
    return unary((cb) => this.raw.imageList({}, this.options(), cb));
  }

  /** Pulls with progress: every event goes to onEvent; resolves with the image from the last one. */
  imagePullProgress(reference: string, onEvent: (event: ImagePullEvent__Output) => void): Promise<ImageSummary__Output> {
    return new Promise((resolve, reject) => {
      let image: ImageSummary__Output | undefined;
      const stream = this.raw.imagePullProgress({ reference }, this.options(600_000));
      stream.on('data', (event: ImagePullEvent__Output) => {
        if (event.image) image = event.image;
        else onEvent(event);
      });
      stream.on('end', () => (image ? resolve(image) : reject(new Error('the pull ended without a result'))));
      stream.on('error', (err: grpc.ServiceError) => reject(new ApiCallError(err)));
    });
  }

  /** Pushes an image of the answering manager's node to a registry; `target` "" pushes it under its own name. */
  imagePush(reference: string, target: string, onEvent: (event: ImagePushEvent__Output) => void): Promise<ImageSummary__Output> {
    return new Promise((resolve, reject) => {
      let image: ImageSummary__Output | undefined;
      const stream = this.raw.imagePush({ reference, target }, this.options(3_600_000));
      stream.on('data', (event: ImagePushEvent__Output) => {
        if (event.image) image = event.image;
        else onEvent(event);
      });
      stream.on('end', () => (image ? resolve(image) : reject(new Error('the push ended without a result'))));
      stream.on('error', (err: grpc.ServiceError) => reject(new ApiCallError(err)));
    });
  }

  imageRemove(reference: string): Promise<ImageRemoveResponse__Output> {
    return unary((cb) => this.raw.imageRemove({ reference }, this.options(), cb));
  }

  imagePrune(): Promise<ImageGcResult__Output> {
    return unary((cb) => this.raw.imagePrune({}, this.options(600_000), cb));
  }

  /** The archive of the named images as a stream of chunks. */
  async *imageSave(references: string[], format: string): AsyncGenerator<Buffer> {
    const stream = this.raw.imageSave({ references, format }, this.options(3_600_000));
    try {
      for await (const chunk of stream as AsyncIterable<ImageSaveChunk__Output>) yield chunk.data;
    } catch (err) {
      throw 'code' in (err as object) ? new ApiCallError(err as grpc.ServiceError) : err;
    } finally {
      stream.cancel();
    }
  }

  /** Uploads a tarball through a client stream; chunks come from the iterable. */
  imageLoad(chunks: AsyncIterable<Buffer>): Promise<ImageLoadResponse__Output> {
    return new Promise((resolve, reject) => {
      const upload = this.raw.imageLoad(this.options(600_000), (err, res) => {
        if (err) reject(new ApiCallError(err));
        else if (!res) reject(new Error('empty response from the server'));
        else resolve(res);
      });
      void (async () => {
        try {
          for await (const data of chunks) {
            if (!upload.write({ data })) await new Promise((r) => upload.once('drain', r));
          }
          upload.end();
        } catch (err) {
          upload.cancel();
          reject(err as Error);
        }
      })();
    });
  }

  /** The Exec call's stream (tsctl exec): no deadline, it lives as long as the command. */
  exec(): grpc.ClientDuplexStream<ExecInput, ExecOutput__Output> {
    return this.raw.exec();
  }

  /** The BuildImage call's stream (tsctl build, cli/build/run-build.ts): no deadline, a build takes as long as it takes. */
  buildImage(): grpc.ClientDuplexStream<BuildInput, BuildOutput__Output> {
    return this.raw.buildImage();
  }

  /**
   * Streams log lines to onLine; resolves at the end of the stream or when cancelled. With several
   * managers, a stream whose manager goes away goes on at the next one after each task's last line
   * delivered (common/logs/log-resume.ts), dropping any line delivered before.
   */
  logs(req: LogsRequest, onLine: (line: LogLine__Output) => void, signal?: AbortSignal): Promise<void> {
    if (!this.rotation) return untilEnd(this.raw.logs(req), onLine, signal);
    const resume = new LogResume(req.tail ?? 0);
    return this.resuming(
      'Logs',
      (answered) => {
        const { tail, afterSequence } = resume.next();
        const resumed = { ...req, tail, afterSequence: Object.fromEntries(afterSequence), reportCaughtUp: req.follow === true };
        const onResumed = (line: LogLine__Output) => {
          answered();
          if (line.caughtUp) resume.markCaughtUp();
          else if (line.notice || resume.deliver(line.task, Number(line.sequence))) onLine(line);
        };
        return untilEnd(this.raw.logs(resumed), onResumed, signal, false);
      },
      signal,
    );
  }

  /**
   * Streams cluster events to onEvent; resolves at the end of the stream or when cancelled. With
   * several managers, a stream whose manager goes away goes on at the next one after the last event
   * delivered (its store revision and place), dropping any delivered before.
   */
  events(req: EventsRequest, onEvent: (event: ClusterEventMessage__Output) => void, signal?: AbortSignal): Promise<void> {
    if (!this.rotation) return untilEnd(this.raw.events(req), onEvent, signal);
    const resume = new EventResume();
    return this.resuming(
      'Events',
      (answered) => {
        const onResumed = (event: ClusterEventMessage__Output) => {
          answered();
          if (event.notice || resume.deliver(event)) onEvent(event);
        };
        return untilEnd(this.raw.events({ ...req, ...resume.position() }), onResumed, signal, false);
      },
      signal,
    );
  }

  /**
   * Runs one stream (`attempt`) and, when its manager goes away in a way that allows it (failover.ts),
   * again at the next manager; the attempt resumes from where the last one left off. A stream that
   * delivered something (`answered`) starts a new wait for an election when it fails.
   */
  private async resuming(method: string, attempt: (answered: () => void) => Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    const rotation = this.rotation!;
    const moveOn = async (reason: string): Promise<void> => {
      const next = rotation.advance(reason);
      if (next instanceof Error) throw next;
      await new Promise((r) => setTimeout(r, next));
    };
    for (;;) {
      // A stream has no deadline: on a manager whose connection never comes up it would wait for good.
      if ((await channelState(rotation.current().getChannel(), CONNECT_WAIT_MS)) === 'timeout') {
        if (signal?.aborted === true) return; // as a stream cancelled by its user ends
        await moveOn(`no connection within ${CONNECT_WAIT_MS / 1000} s`);
        continue;
      }
      const openedAt = Date.now();
      try {
        return await attempt(() => rotation.answered());
      } catch (err) {
        const failed = err instanceof ApiCallError ? err.cause : undefined;
        if (signal?.aborted === true || !isServiceError(failed) || !mayRetry(method, failed)) throw err;
        // A stream that ran a while before failing starts a new wait for an election.
        if (Date.now() - openedAt > ELECTION_WAIT_MS) rotation.answered();
        await moveOn(failureReason(failed));
      }
    }
  }

  /**
   * Streams the changes of one kind to onEvent. Resolves when the signal aborts it (or the server
   * ends the stream), rejects when the stream fails. No deadline: a watch lives as long as its user.
   * With several managers, a watch whose manager goes away goes on at the next one from the last
   * revision it delivered, skipping what it has already delivered (watch-resume.ts).
   */
  async watch(req: WatchRequest, onEvent: (event: WatchEvent__Output) => void, signal: AbortSignal): Promise<void> {
    if (!this.rotation) return this.watchOnce(req, onEvent, signal);
    const resume = new WatchResume(Number(req.fromRevision ?? 0));
    return this.resuming(
      'Watch',
      (answered) =>
        this.watchOnce(
          { ...req, fromRevision: resume.fromRevision() },
          (event) => {
            answered();
            if (resume.deliver(event)) onEvent(event);
          },
          signal,
        ),
      signal,
    );
  }

  private watchOnce(req: WatchRequest, onEvent: (event: WatchEvent__Output) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.watch(req);
      const cancel = () => stream.cancel();
      signal.addEventListener('abort', cancel, { once: true });
      if (signal.aborted) cancel();
      const settle = () => signal.removeEventListener('abort', cancel);
      stream.on('data', onEvent);
      stream.on('end', () => {
        settle();
        resolve();
      });
      stream.on('error', (err: grpc.ServiceError) => {
        settle();
        if (err.code === grpc.status.CANCELLED && signal.aborted) resolve();
        else reject(new ApiCallError(err));
      });
    });
  }

  /** A new token for the role; the previous one stops working (`rotate` is ignored by servers that always mint one). */
  joinToken(role: string, rotate = true): Promise<JoinTokenResponse__Output> {
    return unary((cb) => this.raw.joinToken({ role, rotate }, this.options(), cb));
  }

  removeNode(name: string, force: boolean): Promise<NodeRemoveResponse__Output> {
    return unary((cb) => this.raw.removeNode({ name, force }, this.options(), cb));
  }

  issueUserCertificate(req: UserCertificateRequest): Promise<UserCertificateResponse__Output> {
    return unary((cb) => this.raw.issueUserCertificate(req, this.options(), cb));
  }

  auditLog(req: AuditLogRequest): Promise<AuditLogResponse__Output> {
    return unary((cb) => this.raw.auditLog(req, this.options(), cb));
  }

  /** Resource use of running tasks (or per node); the nodes take about a second to sample. */
  top(req: TopRequest): Promise<TopResponse__Output> {
    return unary((cb) => this.raw.top(req, this.options(), cb));
  }

  /** Starts a root CA rotation, or with statusOnly only reports on one. */
  rotateCa(statusOnly = false): Promise<RotateCaResponse__Output> {
    return unary((cb) => this.raw.rotateCa({ statusOnly }, this.options(), cb));
  }

  /** Changes cluster-wide settings (tsctl cluster update); admin only. */
  updateCluster(req: ClusterUpdateRequest): Promise<ClusterUpdateResponse__Output> {
    return unary((cb) => this.raw.updateCluster(req, this.options(), cb));
  }

  updateNode(req: NodeUpdateRequest): Promise<NodeUpdateResponse__Output> {
    return unary((cb) => this.raw.updateNode(req, this.options(), cb));
  }

  /** The cluster's id, version and managers' API addresses (the leader's first). */
  clusterInfo(timeoutMs?: number): Promise<ClusterInfoResponse__Output> {
    return unary((cb) => this.raw.clusterInfo({}, this.options(timeoutMs), cb));
  }

  /**
   * Whether a connection (with its TLS handshake) comes up within timeoutMs: false as soon as the
   * channel fails, so that a caller with several managers moves on without waiting out a deadline.
   */
  reachable(timeoutMs: number): Promise<boolean> {
    return channelState(this.raw.getChannel(), timeoutMs).then((outcome) => outcome === 'ready');
  }

  close(): void {
    if (this.rotation) this.rotation.closeAll();
    else this.raw.close();
  }
}

/** Whether the channel's connection (with its TLS handshake) is up, failed, or neither within timeoutMs. */
function channelState(channel: ReturnType<grpc.Client['getChannel']>, timeoutMs: number): Promise<ConnectOutcome> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return resolve('ready');
      if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) return resolve('failed');
      channel.watchConnectivityState(state, deadline, (err) => (err ? resolve('timeout') : check()));
    };
    check();
  });
}

function isServiceError(value: unknown): value is grpc.ServiceError {
  return value instanceof Error && typeof (value as Partial<grpc.ServiceError>).code === 'number';
}

/** A client for `address`, plaintext unless `security` says otherwise (see with-client.ts for tsctl's choice). */
export function connect(address: string, security: TransportSecurity = LOCAL_INSECURE): ApiClient {
  return new ApiClient(address, { security });
}

/**
 * Hands a server stream's messages to onData; resolves when it ends or is cancelled, rejects when it
 * fails. `cancelledEnds` false: only a cancel by the signal ends it; a manager going away (which
 * cancels its calls) fails it, so that it can be resumed elsewhere.
 */
function untilEnd<T>(stream: grpc.ClientReadableStream<T>, onData: (message: T) => void, signal: AbortSignal | undefined, cancelledEnds = true): Promise<void> {
  return new Promise((resolve, reject) => {
    const cancel = () => stream.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted === true) cancel();
    const settle = () => signal?.removeEventListener('abort', cancel);
    stream.on('data', onData);
    stream.on('end', () => {
      settle();
      resolve();
    });
    stream.on('error', (err: grpc.ServiceError) => {
      settle();
      if (err.code === grpc.status.CANCELLED && (cancelledEnds || signal?.aborted === true)) resolve();
      else reject(new ApiCallError(err));
    });
  });
}
