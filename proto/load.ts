// Loads the .proto files at run time with @grpc/proto-loader; the types in proto/gen/ are generated
// from the same files by `npm run build:proto`, so the two cannot drift apart.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

import type { ProtoGrpcType as ApiGrpcType } from './gen/api.js';
import type { ProtoGrpcType as DispatcherGrpcType } from './gen/dispatcher.js';
import type { ProtoGrpcType as ImagePeerGrpcType } from './gen/image-peer.js';

/** proto/ in a checkout; when running from dist/proto we look two levels up. */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [here, join(here, '..', '..', 'proto')]) {
    if (existsSync(join(candidate, 'api.proto'))) return candidate;
  }
  throw new Error(`cannot find api.proto near ${here}`);
}

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let apiPackage: ApiGrpcType | undefined;

export function loadApiPackage(): ApiGrpcType {
  if (!apiPackage) {
    const definition = protoLoader.loadSync(join(protoDir(), 'api.proto'), LOADER_OPTIONS);
    apiPackage = grpc.loadPackageDefinition(definition) as unknown as ApiGrpcType;
  }
  return apiPackage;
}

let dispatcherPackage: DispatcherGrpcType | undefined;

export function loadDispatcherPackage(): DispatcherGrpcType {
  if (!dispatcherPackage) {
    const definition = protoLoader.loadSync(join(protoDir(), 'dispatcher.proto'), LOADER_OPTIONS);
    dispatcherPackage = grpc.loadPackageDefinition(definition) as unknown as DispatcherGrpcType;
  }
  return dispatcherPackage;
}

let imagePeerPackage: ImagePeerGrpcType | undefined;

/** The node-to-node blob service (proto/image-peer.proto). */
export function loadImagePeerPackage(): ImagePeerGrpcType {
  if (!imagePeerPackage) {
    const definition = protoLoader.loadSync(join(protoDir(), 'image-peer.proto'), LOADER_OPTIONS);
    imagePeerPackage = grpc.loadPackageDefinition(definition) as unknown as ImagePeerGrpcType;
  }
  return imagePeerPackage;
}
