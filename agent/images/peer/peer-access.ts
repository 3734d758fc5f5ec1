// Who may fetch blobs from a worker: a node certificate of this cluster (OpenSSL verified it
// against the cluster's roots at the handshake) whose serial the managers have not revoked. A
// worker has no store to read revocations from, so it serves only once a manager has sent it the
// list over its dispatcher session (PeerRevocations), and keeps the last list it got while it has
// no session. Users' certificates are refused: this service is between nodes.
import * as grpc from '@grpc/grpc-js';

import { isNodeRole } from '../../../common/identity/certificate.js';
import { normalizeSerial } from '../../../common/identity/x509.js';
import { type HasAuthContext, peerIdentity } from '../../../common/transport/mutual-tls.js';

function refusal(code: grpc.status, message: string): Error & { code: grpc.status } {
  return Object.assign(new Error(message), { code });
}

export class PeerAccess {
  private revoked: ReadonlySet<string> | undefined;

  constructor(private readonly clusterId: string) {}

  /** The cluster's revoked serials (normalised), as the manager last sent them. */
  setRevoked(serials: readonly string[]): void {
    this.revoked = new Set(serials);
  }

  /** Whether the serial is revoked; undefined until a manager has sent the list. */
  isRevoked(serial: string): boolean | undefined {
    return this.revoked?.has(normalizeSerial(serial));
  }

  /** The calling node's id; throws UNAUTHENTICATED, PERMISSION_DENIED or UNAVAILABLE (no list yet). */
  authorize(call: HasAuthContext): string {
    let subject;
    try {
      subject = peerIdentity(call);
    } catch (err) {
      throw refusal(grpc.status.UNAUTHENTICATED, `${(err as Error).message}: blobs are served to nodes of this cluster only`);
    }
    if (subject.o !== this.clusterId) {
      throw refusal(grpc.status.UNAUTHENTICATED, `certificate ${subject.cn} belongs to cluster ${subject.o}, this is cluster ${this.clusterId}`);
    }
    if (!isNodeRole(subject.ou)) throw refusal(grpc.status.PERMISSION_DENIED, `${subject.cn} (${subject.ou}) is not a node: blobs are served to nodes only`);
    const revoked = this.revoked;
    if (revoked === undefined) throw refusal(grpc.status.UNAVAILABLE, "this node has not yet received the cluster's revocation list from a manager");
    if (revoked.has(normalizeSerial(subject.serial))) {
      throw refusal(grpc.status.UNAUTHENTICATED, `certificate ${subject.cn} (serial ${subject.serial}) has been revoked`);
    }
    return subject.cn;
  }
}
