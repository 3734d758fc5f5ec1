// The server side of proto/raft.proto: peer message batches (Send, Stream) go to the host; Propose, Range,
// Status and ChangeMembers to whoever implements RaftServiceHandlers (the Raft store). Errors
// reach the caller as gRPC statuses that say what went wrong.
import * as grpc from '@grpc/grpc-js';

import type { ChangeMembersRequest, WireStatus } from './peer-client.js';
import type { HasAuthContext } from '../../../common/transport/mutual-tls.js';
import { BATCH_METHODS, raftService } from './proto.js';
import type { WireBatch } from './wire.js';

export interface RaftServiceHandlers {
  /** bytes: the batch's serialized size, for the traffic metrics (undefined if not known). */
  receive(batch: WireBatch, bytes?: number): void;
  /** timeoutMs: what is left of the caller's deadline (a forwarded write gives up with it). */
  propose(command: Uint8Array, forward: boolean, timeoutMs: number): Promise<{ resultJson: string; index: number }>;
  rangeJson(prefix: string): Promise<string>;
  status(): Promise<WireStatus>;
  changeMembers(req: ChangeMembersRequest): Promise<{ index: number }>;
}

/** Maps an error to a gRPC status: who is the leader, what was malformed, or what failed. */
export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  const e = err instanceof Error ? err : new Error(String(err));
  // An error that carries its gRPC code (an authorization refusal) keeps it.
  const own = (e as Error & { code?: unknown }).code;
  if (typeof own === 'number' && grpc.status[own] !== undefined) return { code: own, details: e.message, message: e.message };
  const code =
    e.name === 'NotLeaderError'
      ? grpc.status.UNAVAILABLE
      : /^(raft message|raft batch|store command|member change)/.test(e.message)
        ? grpc.status.INVALID_ARGUMENT
        : grpc.status.UNKNOWN;
  return { code, details: e.message, message: e.message };
}

/**
 * Who may use the Raft service: given the call, the id of the member calling (a manager
 * certificate's node id), or a throw with a gRPC code. Absent: no check (a group in one process's
 * tests, or on loopback).
 */
export type AuthorizePeer = (call: HasAuthContext) => string;

function denied(err: unknown): Partial<grpc.ServiceError> {
  const e = err as Error & { code?: grpc.status };
  return { code: e.code ?? grpc.status.PERMISSION_DENIED, details: e.message, message: e.message };
}

/** A batch must come from the member its certificate names: no peer speaks for another. */
function checkFrom(batch: WireBatch, peer: string | undefined): void {
  if (peer === undefined) return;
  if (batch.from !== peer)
    throw Object.assign(new Error(`raft batch claims to be from ${String(batch.from).slice(0, 80)}, but the caller's certificate is ${peer}'s`), {
      code: grpc.status.PERMISSION_DENIED,
    });
  for (const message of batch.messages) {
    if (message.from !== peer)
      throw Object.assign(new Error(`raft message claims to be from ${String(message.from).slice(0, 80)}, but the caller's certificate is ${peer}'s`), {
        code: grpc.status.PERMISSION_DENIED,
      });
  }
}

function remainingMs(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : Number(d);
  return Number.isFinite(at) && at > 0 ? Math.max(0, at - Date.now()) : 15_000;
}

const REFUSED = Symbol('refused');

/** The calling member (undefined without a check), or REFUSED after answering the call with the refusal. */
function admitted(
  authorize: AuthorizePeer | undefined,
  call: HasAuthContext,
  callback: (err: Partial<grpc.ServiceError>) => void,
): string | undefined | typeof REFUSED {
  try {
    return authorize?.(call);
  } catch (err) {
    callback(denied(err));
    return REFUSED;
  }
}

function unary<Req, Res>(
  authorize: AuthorizePeer | undefined,
  fn: (req: Req, timeoutMs: number, peer: string | undefined) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  // The callback is called after the await, not from a promise handler (a throw in it stays a throw).
  return (call, callback) => {
    const peer = admitted(authorize, call, callback);
    if (peer === REFUSED) return;
    void (async () => {
      let res: Res;
      try {
        res = await fn(call.request, remainingMs(call), peer);
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      callback(null, res);
    })();
  };
}

/**
 * A peer's stream of batches. A batch that is refused (another group, a malformed message) ends the
 * stream with the reason, which the sender logs; it opens a new stream for its next batch.
 */
function batchStream(
  handlers: RaftServiceHandlers,
  authorize: AuthorizePeer | undefined,
  sizes: BatchSizes,
): grpc.handleClientStreamingCall<WireBatch, object> {
  return (call, callback) => {
    const peer = admitted(authorize, call, callback);
    if (peer === REFUSED) return;
    let ended = false;
    const end = (err: unknown): void => {
      if (ended) return;
      ended = true;
      if (err) callback(toServiceError(err));
      else callback(null, {});
    };
    call.on('data', (batch: WireBatch) => {
      if (ended) return;
      try {
        checkFrom(batch, peer);
        handlers.receive(batch, sizes.get(batch));
      } catch (err) {
        end(err);
      }
    });
    call.on('end', () => end(undefined));
    call.on('error', () => end(undefined));
  };
}

/** The serialized size of each batch received, keyed by the decoded batch (gone with it). */
type BatchSizes = WeakMap<object, number>;

/**
 * The Raft service's definition with the batch methods' deserializer wrapped to note each batch's
 * size (the buffer gRPC decoded anyway), so that the handler can count it for its sender.
 */
function sizeNotingService(sizes: BatchSizes): grpc.ServiceDefinition {
  const service: grpc.ServiceDefinition = Object.fromEntries(
    Object.entries(raftService().service).map(([name, method]) => {
      if (!BATCH_METHODS.has(name)) return [name, method];
      const deserialize = method.requestDeserialize;
      const noted = (bytes: Buffer): unknown => {
        const batch = deserialize(bytes);
        if (typeof batch === 'object' && batch !== null) sizes.set(batch, bytes.length);
        return batch;
      };
      return [name, { ...method, requestDeserialize: noted }];
    }),
  );
  return service;
}

export function addRaftService(server: grpc.Server, handlers: RaftServiceHandlers, authorize?: AuthorizePeer): void {
  const sizes: BatchSizes = new WeakMap();
  server.addService(sizeNotingService(sizes), {
    send: unary<WireBatch, object>(authorize, async (batch, _ms, peer) => {
      checkFrom(batch, peer);
      handlers.receive(batch, sizes.get(batch));
      return {};
    }),
    stream: batchStream(handlers, authorize, sizes),
    propose: unary<{ command: Uint8Array; forward: boolean }, { resultJson: string; index: number }>(authorize, (req, ms) =>
      handlers.propose(req.command, req.forward, ms),
    ),
    range: unary<{ prefix: string }, { resultJson: string }>(authorize, async (req) => ({ resultJson: await handlers.rangeJson(req.prefix) })),
    status: unary<object, WireStatus>(authorize, () => handlers.status()),
    changeMembers: unary<ChangeMembersRequest, { index: number }>(authorize, (req) => {
      if (!['add-learner', 'add-voter', 'remove-node'].includes(req.type)) {
        return Promise.reject(new Error(`member change: type must be add-learner, add-voter or remove-node, got ${JSON.stringify(req.type)}`));
      }
      if (!/^[A-Za-z0-9._-]{1,63}$/.test(req.id)) return Promise.reject(new Error(`member change: id ${JSON.stringify(req.id)} is not a member name`));
      return handlers.changeMembers(req);
    }),
  });
}
