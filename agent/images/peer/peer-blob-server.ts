// The serving side of the node-to-node blob service (proto/image-peer.proto): any blob of this
// node's store, by digest, to a node of this cluster, read-only. Who may call is decided by
// `authorize` (the wiring's: the manager's authenticator on a manager, PeerAccess on a worker); the
// request is a digest checked for its form before it names a file; blobs are streamed in chunks
// with back-pressure, a bounded number at once.
import * as grpc from '@grpc/grpc-js';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { once } from 'node:events';

import type { ImagePeerHandlers } from '../../../proto/gen/tessera/imagepeer/v1/ImagePeer.js';
import type { BlobRequest__Output } from '../../../proto/gen/tessera/imagepeer/v1/BlobRequest.js';
import type { BlobChunk } from '../../../proto/gen/tessera/imagepeer/v1/BlobChunk.js';
import { loadImagePeerPackage } from '../../../proto/load.js';
import { isSha256Digest } from '../../../common/images/digest.js';
import type { HasAuthContext } from '../../../common/transport/mutual-tls.js';
import { isNotFound } from '../../fs-errors.js';

/** Chunks of this size keep a message well under gRPC's 4 MiB default and the copies small. */
const CHUNK_BYTES = 256 * 1024;
/** Streams served at once; more are refused (the asker goes to another peer or the registry). */
const MAX_CONCURRENT_STREAMS = 16;
/** A layer beyond this is not served: no real image layer is that large, a runaway file may be. */
export const MAX_PEER_BLOB_BYTES = 64 * 1024 ** 3;

export interface ImagePeerServiceDeps {
  /** The file of a stored blob (BlobStore.path). */
  blobPath: (digest: string) => string;
  /** Throws, with a gRPC code, unless the caller is a node of this cluster whose certificate stands. */
  authorize: (call: HasAuthContext) => void;
  log: (message: string) => void;
}

type BlobCall = grpc.ServerWritableStream<BlobRequest__Output, BlobChunk>;

function statusError(code: grpc.status, message: string): Error & { code: grpc.status; details: string; metadata: grpc.Metadata } {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

export function addImagePeerService(server: grpc.Server, deps: ImagePeerServiceDeps): void {
  let active = 0;
  const handlers: ImagePeerHandlers = {
    GetBlob: (call: BlobCall) => {
      if (active >= MAX_CONCURRENT_STREAMS) {
        call.emit('error', statusError(grpc.status.RESOURCE_EXHAUSTED, `this node already serves ${MAX_CONCURRENT_STREAMS} blobs; try another peer`));
        return;
      }
      active++;
      serveBlob(call, deps)
        .catch((err: unknown) => {
          const e = err as Error & { code?: grpc.status };
          // A refusal (request, missing blob) is the caller's answer; a caller refused for who it is, and
          // errors of our own, are logged here too.
          if (e.code === undefined) deps.log(`image peer: serving ${call.request.digest.slice(0, 80)}: ${e.message}`);
          else if (e.code === grpc.status.UNAUTHENTICATED || e.code === grpc.status.PERMISSION_DENIED) {
            deps.log(`image peer: refused a call from ${call.getPeer()}: ${e.message}`);
          }
          if (!call.cancelled) call.emit('error', statusError(e.code ?? grpc.status.INTERNAL, e.message));
        })
        .finally(() => active--);
    },
  };
  server.addService(loadImagePeerPackage().tessera.imagepeer.v1.ImagePeer.service, handlers);
}

async function serveBlob(call: BlobCall, deps: ImagePeerServiceDeps): Promise<void> {
  deps.authorize(call);
  const digest = call.request.digest;
  if (!isSha256Digest(digest)) {
    throw statusError(grpc.status.INVALID_ARGUMENT, `blob digest ${JSON.stringify(digest.slice(0, 80))} is not "sha256:" followed by 64 lowercase hex digits`);
  }
  let file;
  try {
    file = await open(deps.blobPath(digest), 'r');
  } catch (err) {
    if (isNotFound(err)) throw statusError(grpc.status.NOT_FOUND, `this node does not hold blob ${digest}`);
    throw err;
  }
  // The descriptor is read to its end even if a garbage collection unlinks the file meanwhile.
  const stream = createReadStream('', { fd: file, highWaterMark: CHUNK_BYTES, autoClose: true });
  try {
    const info = await file.stat();
    if (!info.isFile()) throw statusError(grpc.status.NOT_FOUND, `this node does not hold blob ${digest}`);
    if (info.size > MAX_PEER_BLOB_BYTES)
      throw statusError(grpc.status.FAILED_PRECONDITION, `blob ${digest} is ${info.size} bytes, more than ${MAX_PEER_BLOB_BYTES} served`);
    const cancelled = new Promise<void>((resolve) => call.once('cancelled', () => resolve()));
    let first = true;
    for await (const data of stream as AsyncIterable<Buffer>) {
      if (call.cancelled) return;
      const chunk: BlobChunk = first ? { size: info.size, data } : { data };
      first = false;
      if (!call.write(chunk)) await Promise.race([once(call, 'drain'), cancelled]);
    }
    if (first) call.write({ size: info.size, data: Buffer.alloc(0) });
    call.end();
  } finally {
    stream.destroy();
  }
}
