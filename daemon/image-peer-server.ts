// A worker's TLS server on --listen: it carries the node-to-node blob service alone (images across
// nodes). A manager serves the same service on its own TLS port instead, so the server runs only
// while the node is not a manager (a promotion stops it before the manager binds the address; a
// demotion starts it again).
import * as grpc from '@grpc/grpc-js';

import { nodeOnlyServerCredentials, type TransportSecurity } from '../common/transport/credentials.js';
import { certificateRequiredAtTheDoor } from '../control-plane/auth/door.js';
import { shutdownServer } from '../control-plane/api/grpc-server.js';
import { addImagePeerService, type ImagePeerServiceDeps } from '../agent/images/peer/peer-blob-server.js';

/** A blob request is a digest: nothing larger is read. */
const MAX_REQUEST_BYTES = 4096;

export class WorkerBlobServer {
  private server: grpc.Server | undefined;

  constructor(
    private readonly listen: string,
    private readonly security: TransportSecurity,
    private readonly service: ImagePeerServiceDeps,
  ) {}

  /** Binds --listen; resolves with the port, or undefined when the address could not be bound (logged: the node then serves no blobs). */
  async start(): Promise<number | undefined> {
    if (this.server) return undefined;
    // The handshake already requires a node certificate; the door also names a refusal per call.
    const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES, interceptors: [certificateRequiredAtTheDoor(() => {}, new Set())] });
    addImagePeerService(server, this.service);
    try {
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(this.listen, nodeOnlyServerCredentials(this.security), (err, bound) => (err ? reject(err) : resolve(bound))),
      );
      this.server = server;
      return port;
    } catch (err) {
      server.forceShutdown();
      this.service.log(`image blobs are not served to other nodes: cannot listen on ${this.listen}: ${(err as Error).message}`);
      return undefined;
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await shutdownServer(server);
  }
}
