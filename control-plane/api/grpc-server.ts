// Binding and stopping gRPC servers, the same way for every service Tessera serves.
import type * as grpc from '@grpc/grpc-js';

import { serverCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import { MAX_REQUEST_BYTES } from '../../common/resources/limits.js';

/** A server that carries the user API alone: no request beyond 4 MiB is even read. */
export const API_SERVER_OPTIONS: grpc.ServerOptions = { 'grpc.max_receive_message_length': MAX_REQUEST_BYTES };

export function bindServer(server: grpc.Server, address: string, security: TransportSecurity): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, serverCredentials(security), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Lets calls in flight finish for up to graceMs, then cuts the rest (long watches and sessions). */
export function shutdownServer(server: grpc.Server, graceMs = 2000): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
