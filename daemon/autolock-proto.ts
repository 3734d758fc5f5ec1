// Loads proto/autolock.proto at run time (as proto/load.ts does for the API), with the message
// types written out here: four small messages do not need the generated types.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AutolockStatusResponse {
  locked: boolean;
  autolock: boolean;
  node: string;
}
export interface UnlockRequest {
  unlockKey: string;
}
export interface UnlockKeyRequest {
  rotate: boolean;
}
export interface UnlockKeyResponse {
  unlockKey: string;
}
export interface SetAutolockRequest {
  enabled: boolean;
}
export interface SetAutolockResponse {
  unlockKey: string;
  changed: boolean;
}

/** The service's handlers; each answers through its callback. */
export interface AutolockHandlers {
  Status: grpc.handleUnaryCall<Record<string, never>, AutolockStatusResponse>;
  Unlock: grpc.handleUnaryCall<UnlockRequest, Record<string, never>>;
  UnlockKey: grpc.handleUnaryCall<UnlockKeyRequest, UnlockKeyResponse>;
  SetAutolock: grpc.handleUnaryCall<SetAutolockRequest, SetAutolockResponse>;
}

export type AutolockMethod = keyof AutolockHandlers;

/** The client tsctl uses. */
export interface AutolockClient extends grpc.Client {
  Status(req: Record<string, never>, options: grpc.CallOptions, cb: grpc.requestCallback<AutolockStatusResponse>): grpc.ClientUnaryCall;
  Unlock(req: UnlockRequest, options: grpc.CallOptions, cb: grpc.requestCallback<Record<string, never>>): grpc.ClientUnaryCall;
  UnlockKey(req: UnlockKeyRequest, options: grpc.CallOptions, cb: grpc.requestCallback<UnlockKeyResponse>): grpc.ClientUnaryCall;
  SetAutolock(req: SetAutolockRequest, options: grpc.CallOptions, cb: grpc.requestCallback<SetAutolockResponse>): grpc.ClientUnaryCall;
}

function protoFile(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // daemon/ -> proto/ in a checkout; dist/daemon/ -> ../../proto when built.
  for (const root of [join(here, '..'), join(here, '..', '..')]) {
    const file = join(root, 'proto', 'autolock.proto');
    if (existsSync(file)) return file;
  }
  throw new Error(`cannot find proto/autolock.proto near ${here}`);
}

let loaded: grpc.ServiceClientConstructor | undefined;

export function autolockService(): grpc.ServiceClientConstructor {
  if (!loaded) {
    const def = protoLoader.loadSync(protoFile(), { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { tessera: { autolock: { v1: { Autolock: grpc.ServiceClientConstructor } } } };
    loaded = pkg.tessera.autolock.v1.Autolock;
  }
  return loaded;
}
