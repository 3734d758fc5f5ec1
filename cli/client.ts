// A promise-based face of the gRPC API for tsctl. The server address comes from --server,
// $TESSERA_SERVER or the context file `tsctl cluster up` writes.
import * as grpc from '@grpc/grpc-js';

import { loadApiPackage } from '../proto/load.js';
import type { TesseraClient } from '../proto/gen/tessera/api/v1/Tessera.js';
import { clientCredentials, LOCAL_INSECURE } from '../control-plane/ca/credentials.js';

export type ApiClient = TesseraClient;

export function connect(address: string): ApiClient {
  const pkg = loadApiPackage();
  return new pkg.tessera.api.v1.Tessera(address, clientCredentials(LOCAL_INSECURE), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
}

/** Calls a unary method and turns gRPC failures into errors whose message is the server's. */
export function call<Req, Res>(
  client: ApiClient,
  method: (req: Req, options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
  request: Req,
  timeoutMs = 30_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) reject(new ApiCallError(err));
      else if (res === undefined) reject(new Error('empty response from the server'));
      else resolve(res);
    });
  });
}

export class ApiCallError extends Error {
  readonly code: grpc.status;
  constructor(err: grpc.ServiceError) {
    super(
      err.code === grpc.status.UNAVAILABLE
        ? `cannot reach the Tessera API (${err.details}); is the cluster up? (tsctl cluster up)`
        : err.details || err.message,
    );
    this.code = err.code;
    this.name = 'ApiCallError';
  }
}
