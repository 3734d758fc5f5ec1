// The asking side of the node-to-node blob service (proto/image-peer.proto): streams one blob from
// one peer, over mutual TLS, expecting the node the manager named at the other end. It checks the
// framing — the size the peer announces against the caller's limit and the manifest's size, the
// bytes against the size announced — and gives up on a peer that is silent too long; the content
// itself is verified against its digest by whoever stores it (BlobStore.ingest, verifiedBytes).
import type * as grpc from '@grpc/grpc-js';

import type { BlobChunk__Output } from '../../../proto/gen/tessera/imagepeer/v1/BlobChunk.js';
import type { ImagePeerClient } from '../../../proto/gen/tessera/imagepeer/v1/ImagePeer.js';
import { loadImagePeerPackage } from '../../../proto/load.js';
import { channelOptions, clientCredentials, expecting, type TransportSecurity } from '../../../common/transport/credentials.js';
import type { PeerRef } from '../../../common/images/peer-messages.js';

export interface BlobLimits {
  /** More bytes than this are refused before any is read (a manifest's cap, or the store's). */
  maxBytes: number;
  /** The size the manifest gives the blob; the peer must announce exactly this. */
  expectedSize?: number;
}

export interface PeerBlobClientOptions {
  /** This node's identity; peers must be nodes of `clusterId`. */
  security: TransportSecurity;
  clusterId: string;
  /** Until the first chunk: a peer that is down or unreachable is given up on after this. */
  firstChunkTimeoutMs?: number;
  /** Between chunks: a peer that stalls mid-blob is given up on after this. */
  idleTimeoutMs?: number;
}

const FIRST_CHUNK_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;

/** A peer that did not send a blob as it should; the fetch goes on with the next peer. */
export class PeerBlobError extends Error {
  constructor(peer: PeerRef, digest: string, message: string) {
    super(`peer ${peer.nodeName} (${peer.address}), blob ${digest}: ${message}`);
    this.name = 'PeerBlobError';
  }
}

export class PeerBlobClient {
  private readonly clients = new Map<string, ImagePeerClient>();

  constructor(private readonly options: PeerBlobClientOptions) {}

  /** The blob's bytes in chunks as they arrive; the call is cancelled when the consumer stops early. */
  async *open(peer: PeerRef, digest: string, limits: BlobLimits): AsyncGenerator<Uint8Array> {
    const call = this.clientFor(peer).getBlob({ digest });
    const firstMs = this.options.firstChunkTimeoutMs ?? FIRST_CHUNK_TIMEOUT_MS;
    const idleMs = this.options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    let timedOut: string | undefined;
    const arm = (ms: number, what: string): NodeJS.Timeout =>
      setTimeout(() => {
        timedOut = `${what} within ${ms} ms`;
        call.cancel();
      }, ms);
    let timer = arm(firstMs, 'no answer');
    let announced: number | undefined;
    let received = 0;
    const refuse = (message: string): never => {
      throw new PeerBlobError(peer, digest, message);
    };
    try {
      for await (const chunk of call as AsyncIterable<BlobChunk__Output>) {
        clearTimeout(timer);
        timer = arm(idleMs, 'no further bytes');
        const size = Number(chunk.size);
        if (announced === undefined) {
          if (!Number.isSafeInteger(size) || size < 0) refuse(`announced size ${String(chunk.size)} is not a whole number of bytes`);
          if (limits.expectedSize !== undefined && size !== limits.expectedSize) refuse(`announced ${size} bytes, the manifest says ${limits.expectedSize}`);
          if (size > limits.maxBytes) refuse(`announced ${size} bytes, more than the limit of ${limits.maxBytes}`);
          announced = size;
        } else if (size !== 0 && size !== announced) {
          refuse(`announced ${size} bytes mid-stream after ${announced}`);
        }
        received += chunk.data.byteLength;
        if (received > announced) refuse(`sent more than the ${announced} bytes it announced`);
        if (chunk.data.byteLength > 0) yield chunk.data;
      }
    } catch (err) {
      if (err instanceof PeerBlobError) throw err;
      throw new PeerBlobError(peer, digest, timedOut ?? grpcMessage(err));
    } finally {
      clearTimeout(timer);
      // Ends the stream when the consumer stopped early (e.g. a digest mismatch); harmless after its end.
      call.cancel();
    }
    if (announced === undefined) refuse('the peer ended the stream without a chunk');
    if (received !== announced) refuse(`the stream ended after ${received} of the ${announced} bytes announced`);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private clientFor(peer: PeerRef): ImagePeerClient {
    const key = `${peer.nodeName}@${peer.address}`;
    const known = this.clients.get(key);
    if (known) return known;
    // The server must be the node the manager named, of this cluster, whatever address it is on.
    const security = expecting(this.options.security, { kind: 'cluster-node', clusterId: this.options.clusterId, nodeId: peer.nodeName });
    const Client = loadImagePeerPackage().tessera.imagepeer.v1.ImagePeer;
    const client = new Client(peer.address, clientCredentials(security), channelOptions(security));
    this.clients.set(key, client);
    return client;
  }
}

function grpcMessage(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  return e.details || (err as Error).message;
}
