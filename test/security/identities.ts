// The identities the attacks use, each got the way an attacker (or an honest user) would get it:
// a node's certificate files read from its data root (a compromised node), certificates minted
// with the cluster CA's key (which a manager's certificate reads from the store), and user
// certificates from the cluster's IssueUserCertificate RPC on the root socket (key and CSR made
// here; only the CSR is sent).
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { parseIdentity, type CertificateSubject, type NodeRole, type UserRole } from '../../common/identity/certificate.js';
import { joinPem } from '../../common/identity/x509.js';
import type { TransportSecurity } from '../../common/transport/credentials.js';
import { TlsIdentity } from '../../common/transport/tls-identity.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import type { CaMaterial } from '../../control-plane/ca/root-ca.js';
import { certPaths, readNodeCertificates } from '../../daemon/identity/cert-files.js';
import type { TesseraClient } from '../../proto/gen/tessera/api/v1/Tessera.js';
import type { UserCertificateResponse__Output } from '../../proto/gen/tessera/api/v1/UserCertificateResponse.js';
import { unary } from './grpc-calls.js';

export type MtlsSecurity = TransportSecurity & { mode: 'mtls' };

export interface Identity {
  security: MtlsSecurity;
  subject: CertificateSubject;
}

function expectingManagerOf(clusterId: string): MtlsSecurity['expected'] {
  return { kind: 'cluster-node', clusterId, role: 'manager' };
}

/** The identity a node holds in <data-root>/certs, as anyone who can read that directory has it. */
export async function nodeIdentityFromDisk(dataRoot: string): Promise<Identity> {
  const read = await readNodeCertificates(certPaths(dataRoot));
  if (!read) throw new Error(`${dataRoot}/certs holds no node certificate`);
  return {
    security: { mode: 'mtls', identity: new TlsIdentity(read.material), expected: expectingManagerOf(read.subject.o) },
    subject: read.subject,
  };
}

/** A node certificate signed with `ca` (the cluster's, or another one), for any node id, role and validity. */
export async function mintNodeIdentity(
  ca: CaMaterial,
  request: { clusterId: string; nodeId: string; role: NodeRole; validityMs?: number; now?: Date },
): Promise<Identity> {
  const keys = await generateKeyPair();
  const leaf = await issueNodeCertificate(ca, await createCsr(keys, { commonNameHint: request.nodeId }), request);
  const identity = new TlsIdentity({ trustedRootPems: [ca.certPem], certChainPem: joinPem([leaf, ca.certPem]), keyPem: keys.keyPem });
  return { security: { mode: 'mtls', identity, expected: expectingManagerOf(request.clusterId) }, subject: parseIdentity(leaf) };
}

/** A user certificate issued by the cluster through IssueUserCertificate on the root socket. */
export async function issueUserIdentity(root: TesseraClient, name: string, role: UserRole): Promise<Identity> {
  const keys = await generateKeyPair();
  const csrPem = await createCsr(keys, { commonNameHint: name });
  const issued = await unary<UserCertificateResponse__Output>((options, callback) =>
    root.issueUserCertificate({ name, role, csrPem, validityMs: 0 }, options, callback),
  );
  const identity = new TlsIdentity({ trustedRootPems: issued.trustedRootPems, certChainPem: issued.certChainPem, keyPem: keys.keyPem });
  return { security: { mode: 'mtls', identity, expected: expectingManagerOf(issued.clusterId) }, subject: parseIdentity(issued.certChainPem) };
}
