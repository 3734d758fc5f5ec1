// gRPC credentials from fixed TLS material that require the client certificate at the handshake
// (createSsl with checkClientCertificate): the plain OpenSSL behaviour, which the tests of
// certificate handling and the CA benchmark compare against. tsd itself uses
// common/transport/credentials.ts (hot-swappable identities, client certificate checked per call).
import * as grpc from '@grpc/grpc-js';

import { joinPem } from '../../common/identity/x509.js';
import { type ExpectedServer, verifyOptionsFor } from '../../common/transport/mutual-tls.js';
import type { TlsMaterial } from '../../common/transport/tls-identity.js';

function rootBundle(material: TlsMaterial): Buffer {
  if (material.trustedRootPems.length === 0) throw new Error('mutual TLS: at least one trusted root certificate is required');
  return Buffer.from(joinPem(material.trustedRootPems));
}

/** Server credentials that require a client certificate chaining to one of the trusted roots. */
export function mutualTlsServerCredentials(material: TlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(
    rootBundle(material),
    [{ private_key: Buffer.from(material.keyPem), cert_chain: Buffer.from(material.certChainPem) }],
    true,
  );
}

export function mutualTlsClientCredentials(material: TlsMaterial, expected: ExpectedServer): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(rootBundle(material), Buffer.from(material.keyPem), Buffer.from(material.certChainPem), verifyOptionsFor(expected));
}
