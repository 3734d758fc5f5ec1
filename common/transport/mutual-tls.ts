// gRPC credentials for mutual TLS with certificates from the cluster CA, and reading the caller's
// identity from the peer certificate on a server call. OpenSSL (inside Node's tls) verifies the
// chain against the trusted roots; what Tessera adds is which subject it expects on the other end.
// credentials.ts builds the credentials tsd uses from a TlsIdentity (hot-swappable).
import type * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { type CertificateSubject, parseIdentity } from '../identity/certificate.js';

/** Who a client expects to reach: a host name the certificate's SAN lists, or a node of the cluster by subject. */
export type ExpectedServer = { kind: 'hostname' } | { kind: 'cluster-node'; clusterId: string; role?: 'manager' | 'worker'; nodeId?: string };

/** How a client checks the server it reached: the SAN host name (OpenSSL's default), or the subject of a cluster node. */
export function verifyOptionsFor(expected: ExpectedServer): grpc.VerifyOptions {
  return expected.kind === 'hostname' ? {} : { checkServerIdentity: (_host, cert) => checkExpectedServer(cert, expected) };
}

/**
 * Node certificates name the node, not the address it is reached on (addresses change, SANs are
 * optional), so a node-to-node client checks the subject instead of the host name. Runs after
 * OpenSSL has verified the chain, so the subject was written by a trusted CA.
 */
export function checkExpectedServer(cert: PeerCertificate, expected: Extract<ExpectedServer, { kind: 'cluster-node' }>): Error | undefined {
  let subject: CertificateSubject;
  try {
    subject = subjectOf(cert);
  } catch (err) {
    return err as Error;
  }
  if (subject.o !== expected.clusterId) return new Error(`server certificate ${subject.cn} belongs to cluster ${subject.o}, expected ${expected.clusterId}`);
  if (subject.ou !== 'manager' && subject.ou !== 'worker') return new Error(`server certificate ${subject.cn} is not a node certificate (OU=${subject.ou})`);
  if (expected.role !== undefined && subject.ou !== expected.role) return new Error(`server ${subject.cn} is a ${subject.ou}, expected a ${expected.role}`);
  if (expected.nodeId !== undefined && subject.cn !== expected.nodeId)
    return new Error(`server certificate names node ${subject.cn}, expected ${expected.nodeId}`);
  return undefined;
}

/**
 * Anything that exposes grpc-js's auth context: every server call type, and client calls. Written
 * out because grpc-js (1.14) does not export its AuthContext type from the package root.
 */
export interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

/**
 * The subject of the certificate the caller presented. Throws when there is none (a plaintext
 * connection, or TLS without a client certificate): an identity is never taken from a request.
 */
export function peerIdentity(call: HasAuthContext): CertificateSubject {
  const peer = call.getAuthContext()?.sslPeerCertificate;
  // Node reports "no certificate" as an empty object rather than undefined.
  if (peer?.raw === undefined) throw new Error('the caller presented no TLS client certificate');
  return subjectOf(peer);
}

/**
 * The subject of a peer certificate. Parsing with the X.509 library costs ~0.6 ms, which once per
 * call would dominate a Raft proposal; a certificate never changes, so its subject is kept by the
 * SHA-256 fingerprint OpenSSL computed.
 */
function subjectOf(peer: PeerCertificate): CertificateSubject {
  const known = subjects.get(peer.fingerprint256);
  if (known) return known;
  const subject = parseIdentity(new Uint8Array(peer.raw));
  if (subjects.size >= MAX_CACHED_SUBJECTS) subjects.delete(subjects.keys().next().value as string);
  subjects.set(peer.fingerprint256, subject);
  return subject;
}

/** Certificates of a cluster's nodes and users; beyond this, the oldest are parsed again when seen. */
const MAX_CACHED_SUBJECTS = 4096;
const subjects = new Map<string, CertificateSubject>();
