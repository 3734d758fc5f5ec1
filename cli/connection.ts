// How tsctl reaches the API named by the context: a unix socket is a manager's root-only socket
// (plaintext; the file's permissions are the authentication), any host:port takes mutual TLS with
// the context's client certificate, and the server must be a manager of the context's cluster.
// Pure: the context has been read already.
import { LOCAL_INSECURE, type TransportSecurity } from '../common/transport/credentials.js';
import { TlsIdentity } from '../common/transport/tls-identity.js';
import { chooseServer, DEFAULT_SERVER, type CliContext, type ContextTls } from './context.js';

export function noClientCertificateMessage(server: string): string {
  return (
    `${server} takes mutual TLS: this context has no client certificate; on a manager use its root socket (${DEFAULT_SERVER}), ` +
    'elsewhere ask an admin for one (tsctl cluster user add NAME --role viewer)'
  );
}

export function securityFor(address: string, tls: ContextTls | undefined): TransportSecurity {
  if (address.startsWith('unix:')) return LOCAL_INSECURE;
  if (!tls) throw new Error(noClientCertificateMessage(address));
  return {
    mode: 'mtls',
    identity: new TlsIdentity({ trustedRootPems: tls.trustedRootPems, certChainPem: tls.certChainPem, keyPem: tls.keyPem }),
    expected: { kind: 'cluster-node', clusterId: tls.clusterId, role: 'manager' },
  };
}

/**
 * The addresses to try, in order. An address given by --server or $TESSERA_SERVER is the only one;
 * otherwise the context's server and then its other managers (each tried when the one before is
 * unreachable at connection time; a call that fails later is not retried elsewhere).
 */
export function candidateServers(flag: string | undefined, context: CliContext | undefined): string[] {
  const chosen = chooseServer(flag, context);
  if (flag !== undefined || process.env.TESSERA_SERVER !== undefined || !context) return [chosen];
  return [...new Set([chosen, ...(context.servers ?? [])])];
}
