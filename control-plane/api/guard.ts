// Runs a check before every handler of a gRPC service: the call is refused with the check's error
// (its gRPC code, or PERMISSION_DENIED) before the handler sees it. Unary and client-streaming
// handlers answer through their callback; server-streaming ones end the stream with the status.
import * as grpc from '@grpc/grpc-js';

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;
type AnyHandler = (call: AnyCall, callback?: grpc.sendUnaryData<unknown>) => void;

export function refusalOf(err: unknown): grpc.ServiceError {
  const e = err as Error & { code?: grpc.status };
  const message = e.message;
  return Object.assign(new Error(message), { code: e.code ?? grpc.status.PERMISSION_DENIED, details: message, metadata: new grpc.Metadata() });
}

/** `check(method, call)` throws to refuse; the method names are the implementation's keys (the proto's rpc names). */
export function guardService<T extends object>(impl: T, check: (method: string, call: AnyCall) => void): T {
  const out: Record<string, AnyHandler> = {};
  for (const [method, handler] of Object.entries(impl) as Array<[string, AnyHandler]>) {
    out[method] = (call, callback) => {
      try {
        check(method, call);
      } catch (err) {
        if (callback) callback(refusalOf(err));
        else call.emit('error', refusalOf(err));
        return;
      }
      handler(call, callback);
    };
  }
  return out as T;
}
