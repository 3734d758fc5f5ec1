// Turns a call into a Caller. On the TLS port the identity is the subject of the client
// certificate (OpenSSL has verified it against the cluster's roots, or grpc-js would show none),
// checked against this cluster and the revocation list; on the manager's unix socket, which only
// root can open, the caller is local root.
import * as grpc from '@grpc/grpc-js';

import { isNodeRole, isUserRole, type CertificateSubject } from '../../common/identity/certificate.js';
import { type HasAuthContext, peerIdentity } from '../../common/transport/mutual-tls.js';
import type { Caller } from './caller.js';

export class AuthenticationError extends Error {
  readonly code = grpc.status.UNAUTHENTICATED;
  constructor(message: string) {
    super(message);
    this.name = 'AuthenticationError';
  }
}

export type Authenticate = (call: HasAuthContext) => Caller;

export interface TrustState {
  clusterId(): string;
  isRevoked(serial: string): boolean;
}

/** The unix socket's authenticator: file permissions (0600, root) did the authentication. */
export const authenticateLocalRoot: Authenticate = () => ({ kind: 'local-root' });

export function certificateAuthenticator(trust: TrustState): Authenticate {
  return (call) => callerOf(subjectOf(call), trust);
}

function subjectOf(call: HasAuthContext): CertificateSubject {
  try {
    return peerIdentity(call);
  } catch (err) {
    throw new AuthenticationError(
      `${(err as Error).message}: this port takes mutual TLS with a certificate from this cluster's CA (a certificate from another CA is not accepted)`,
    );
  }
}

export function callerOf(subject: CertificateSubject, trust: TrustState): Caller {
  const clusterId = trust.clusterId();
  if (subject.o !== clusterId) throw new AuthenticationError(`certificate ${subject.cn} belongs to cluster ${subject.o}, this is cluster ${clusterId}`);
  if (trust.isRevoked(subject.serial)) throw new AuthenticationError(`certificate ${subject.cn} (serial ${subject.serial}) has been revoked`);
  // Validity dates are checked at the handshake only: a renewal does not redo the handshakes of the
  // connections already open (grpc-js keeps them), so a per-call date check would cut a renewed
  // node's old connections off at its old certificate's end. Revocation is checked per call.
  if (isNodeRole(subject.ou)) return { kind: 'node', nodeId: subject.cn, role: subject.ou, serial: subject.serial };
  if (isUserRole(subject.ou)) return { kind: 'user', name: subject.cn, role: subject.ou, serial: subject.serial };
  throw new AuthenticationError(`certificate ${subject.cn}: OU "${subject.ou}" is neither a node role nor a user role`);
}

/** What a caller that failed authentication presented, for the audit log: a subject and serial, or that there was none, and from where. */
export function peerSubjectText(call: HasAuthContext & { getPeer?: () => string }): { who: string; serial?: string } {
  const from = call.getPeer ? ` from ${call.getPeer()}` : '';
  try {
    const subject = peerIdentity(call);
    return { who: `CN=${subject.cn}, OU=${subject.ou}, O=${subject.o}${from}`, serial: subject.serial };
  } catch {
    // No verified certificate: nothing more to say about who it was than where it came from.
    return { who: `no verified certificate${from}` };
  }
}

/** A caller that must be a node of this cluster, with the role given if any; throws PERMISSION_DENIED otherwise. */
export function requireNode(caller: Caller, role?: 'manager' | 'worker'): Extract<Caller, { kind: 'node' }> {
  if (caller.kind !== 'node' || (role !== undefined && caller.role !== role)) {
    const who = caller.kind === 'node' ? `node ${caller.nodeId} (${caller.role})` : caller.kind === 'user' ? `user ${caller.name}` : 'local root';
    throw Object.assign(new Error(`${who} is not a ${role ?? 'node'} certificate; only ${role ?? 'node'}s may call this`), {
      code: grpc.status.PERMISSION_DENIED,
    });
  }
  return caller;
}
