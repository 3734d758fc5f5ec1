// The node's side of NodeCA (proto/dispatcher.proto): join with a token, renew with the current
// certificate, and (a new manager on the etcd backend) fetch the key of the store's sealed values. Before a joining node sends its
// token it reads the chain the manager presents and checks its root against the digest the token
// pins; only then does it open the gRPC channel, trusting that root alone.
import * as grpc from '@grpc/grpc-js';
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';

import { loadDispatcherPackage } from '../../proto/load.js';
import type { NodeCAClient } from '../../proto/gen/tessera/dispatcher/v1/NodeCA.js';
import type { IssuedCertificate__Output } from '../../proto/gen/tessera/dispatcher/v1/IssuedCertificate.js';
import { type JoinToken, pinnedCaMatches } from '../../common/identity/join-token.js';
import { parseCertificate, x509 } from '../../common/identity/x509.js';
import { verifyOptionsFor } from '../../common/transport/mutual-tls.js';
import { clientCredentials, type TransportSecurity } from '../../common/transport/credentials.js';

const CALL_TIMEOUT_MS = 15_000;
const PROBE_TIMEOUT_MS = 10_000;
/** A Tessera chain is short; a manager presenting more is not one. */
const MAX_PRESENTED_CHAIN = 4;

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}

/** The chain the server presents in its handshake, leaf first, as PEM. Nothing is sent but the handshake. */
export function presentedChain(address: string): Promise<string[]> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    // Not verified here on purpose: the root is unknown until it is checked against the token's pin.
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], timeout: PROBE_TIMEOUT_MS }, () => {
      const pems: string[] = [];
      // Node reports "no certificate" as an empty object, whatever its types say.
      let cert = socket.getPeerCertificate(true) as Partial<DetailedPeerCertificate>;
      while (cert.raw !== undefined && pems.length < MAX_PRESENTED_CHAIN) {
        pems.push(`${x509.PemConverter.encode(new Uint8Array(cert.raw).buffer, 'CERTIFICATE')}\n`);
        const issuer = cert.issuerCertificate as Partial<DetailedPeerCertificate> | undefined;
        // A self-signed certificate is its own issuer: the end of the chain.
        if (issuer?.raw === undefined || issuer.raw.equals(cert.raw)) break;
        cert = issuer;
      }
      socket.end();
      resolve(pems);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no TLS handshake with ${address} within ${PROBE_TIMEOUT_MS / 1000} s`));
    });
    socket.once('error', (err) => reject(new Error(`cannot reach the manager at ${address}: ${err.message}`)));
  });
}

/** The manager's root, once its chain proved to end in the root the token pins. Throws a clear refusal otherwise. */
export async function pinnedRoot(address: string, token: JoinToken): Promise<string> {
  const chain = await presentedChain(address);
  const pin = await pinnedCaMatches(token, chain);
  if (!pin.ok) throw new Error(`refusing to join through ${address}: ${pin.reason}`);
  return chain[chain.length - 1]!;
}

function nodeCaClient(address: string, credentials: grpc.ChannelCredentials): NodeCAClient {
  const pkg = loadDispatcherPackage();
  // Managers are checked by certificate subject, so the server name is a fixed one (see channelOptions).
  return new pkg.tessera.dispatcher.v1.NodeCA(address, credentials, { 'grpc.ssl_target_name_override': 'tessera-manager' });
}

function call<T>(start: (deadline: grpc.CallOptions, callback: (err: grpc.ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    start({ deadline: Date.now() + CALL_TIMEOUT_MS }, (err, value) => (err || value === undefined ? reject(err ?? new Error('empty answer')) : resolve(value))),
  );
}

function grpcText(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  return e.details ?? (err instanceof Error ? err.message : String(err));
}

/** Join: a TLS channel that trusts only the pinned root and presents no certificate. */
export async function joinCluster(
  address: string,
  rootPem: string,
  request: { nodeName: string; tokenSecret: string; csrPem: string; address: string },
): Promise<IssuedCertificate__Output> {
  // The root names the cluster in its O (it has no OU: it is not a node).
  const clusterId = parseCertificate('pinned root', rootPem).subjectName.getField('O')[0] ?? '';
  const credentials = grpc.credentials.createSsl(Buffer.from(rootPem), null, null, verifyOptionsFor({ kind: 'cluster-node', clusterId, role: 'manager' }));
  const client = nodeCaClient(address, credentials);
  try {
    return await call<IssuedCertificate__Output>((options, cb) => client.join(request, options, cb));
  } catch (err) {
    throw new Error(`joining through ${address} failed: ${grpcText(err)}`);
  } finally {
    client.close();
  }
}

export async function renewCertificate(address: string, security: TransportSecurity, csrPem: string): Promise<IssuedCertificate__Output> {
  const client = nodeCaClient(address, clientCredentials(security));
  try {
    return await call<IssuedCertificate__Output>((options, cb) => client.renew({ csrPem }, options, cb));
  } catch (err) {
    throw new Error(`certificate renewal through ${address} failed: ${grpcText(err)}`);
  } finally {
    client.close();
  }
}

/** The etcd backend's store key (32 bytes), from a manager, over mutual TLS with a manager certificate. */
export async function fetchStoreKey(address: string, security: TransportSecurity): Promise<Buffer> {
  const client = nodeCaClient(address, clientCredentials(security));
  try {
    const { kek } = await call<{ kek: Buffer }>((options, cb) => client.storeKey({}, options, cb));
    if (kek.length !== 32) throw new Error(`the store key is ${kek.length} bytes, expected 32`);
    return kek;
  } catch (err) {
    throw new Error(`fetching the store key from ${address} failed: ${grpcText(err)}`);
  } finally {
    client.close();
  }
}
