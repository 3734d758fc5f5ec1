// Every gRPC credential in Tessera is made here. Between nodes and from remote tsctl it is always
// mutual TLS with certificates from the cluster CA; plaintext exists only for the manager's
// root-only unix socket and for tests that run one component alone on loopback.
import * as grpc from '@grpc/grpc-js';

import { type ExpectedServer, verifyOptionsFor } from './mutual-tls.js';
import type { TlsIdentity } from './tls-identity.js';

/**
 * How a component talks gRPC. `mtls`: this end's identity, and who it expects at the other end
 * when it dials (servers ignore `expected`). `insecure`: no TLS; refused anywhere but a unix socket
 * or loopback (assertAddressAllowed).
 */
export type TransportSecurity = { mode: 'insecure' } | { mode: 'mtls'; identity: TlsIdentity; expected: ExpectedServer };

/** Plaintext, for the unix socket and for single-component tests on loopback. */
export const LOCAL_INSECURE: TransportSecurity = { mode: 'insecure' };

/**
 * With mutual TLS the server asks every client for a certificate but does not require one at the
 * handshake: a joining node has none yet and calls NodeCA.Join with its token. Every other call is
 * refused unless the certificate verified against the cluster's roots (grpc-js exposes a peer
 * certificate to handlers only then), so authentication is decided per call, from the certificate.
 */
export function serverCredentials(security: TransportSecurity): grpc.ServerCredentials {
  if (security.mode === 'insecure') return grpc.ServerCredentials.createInsecure();
  return grpc.experimental.createCertificateProviderServerCredentials(security.identity, security.identity, false);
}

export function clientCredentials(security: TransportSecurity): grpc.ChannelCredentials {
  if (security.mode === 'insecure') return grpc.credentials.createInsecure();
  return grpc.experimental.createCertificateProviderChannelCredentials(security.identity, security.identity, verifyOptionsFor(security.expected));
}

/**
 * Channel options that go with the credentials. A cluster node is checked by its certificate's
 * subject, not by the name it is reached on, so the TLS server name (SNI) carries no meaning;
 * without a fixed one grpc-js sends the address's host, and for an IP address Node warns on every
 * connection (DEP0123: SNI may not be an IP address).
 */
export function channelOptions(security: TransportSecurity): grpc.ChannelOptions {
  return security.mode === 'mtls' && security.expected.kind === 'cluster-node' ? { 'grpc.ssl_target_name_override': 'tessera-manager', ...NODE_KEEPALIVE } : {};
}

/**
 * HTTP/2 pings between nodes while calls are open. A machine that dies without closing its
 * connections (power loss, a VM destroyed) sends no reset, and TCP alone takes about 15 minutes to
 * give up: until then a Raft stream or an agent's session to it hangs, its writes blocked by flow
 * control (seen on the Vagrant cluster: the leader never reached a hard-killed manager once it was
 * back). A ping unanswered for 10 s ends the connection and its calls, which reconnect.
 */
const NODE_KEEPALIVE: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

/** The same identity, expecting another kind of peer (e.g. a Raft peer must be a manager). */
export function expecting(security: TransportSecurity, expected: ExpectedServer): TransportSecurity {
  return security.mode === 'insecure' ? security : { ...security, expected };
}

/** Refuses plaintext on anything but loopback or a unix socket. */
export function assertAddressAllowed(address: string, security: TransportSecurity): void {
  if (security.mode !== 'insecure') return;
  if (address.startsWith('unix:')) return;
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (host === '127.0.0.1' || host === 'localhost' || host === '::1') return;
  throw new Error(`refusing plaintext gRPC on ${address}: only unix sockets and loopback may go without mutual TLS`);
}

/**
 * A server that only nodes call (the node-to-node blob service on a worker): unlike
 * serverCredentials, a client certificate from the cluster's roots is required at the handshake,
 * since no one joins through it.
 */
export function nodeOnlyServerCredentials(security: TransportSecurity): grpc.ServerCredentials {
  if (security.mode === 'insecure') return grpc.ServerCredentials.createInsecure();
  return grpc.experimental.createCertificateProviderServerCredentials(security.identity, security.identity, true);
}
