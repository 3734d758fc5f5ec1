// Every gRPC credential in Tessera is made here, so that mutual TLS can be switched on in one place
// (the security issue) without touching the servers and clients that use them.
import * as grpc from '@grpc/grpc-js';

/**
 * How a component talks gRPC. `insecure` is only accepted for loopback and unix-socket endpoints
 * until the cluster CA exists; `mtls` is reserved for the security work.
 */
export type TransportSecurity = { mode: 'insecure' } | { mode: 'mtls'; caPem: Buffer; certPem: Buffer; keyPem: Buffer };

export const LOCAL_INSECURE: TransportSecurity = { mode: 'insecure' };

export function serverCredentials(security: TransportSecurity): grpc.ServerCredentials {
  if (security.mode === 'insecure') return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(security.caPem, [{ private_key: security.keyPem, cert_chain: security.certPem }], true);
}

export function clientCredentials(security: TransportSecurity): grpc.ChannelCredentials {
  if (security.mode === 'insecure') return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(security.caPem, security.keyPem, security.certPem);
}

/** Refuses to serve without TLS on anything but loopback or a unix socket. */
export function assertAddressAllowed(address: string, security: TransportSecurity, allowInsecureRemote = false): void {
  if (security.mode !== 'insecure' || allowInsecureRemote) return;
  if (address.startsWith('unix:')) return;
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (host === '127.0.0.1' || host === 'localhost' || host === '::1') return;
  throw new Error(`refusing to serve the API without TLS on ${address}: only loopback or unix: addresses are allowed until mutual TLS is configured`);
}
