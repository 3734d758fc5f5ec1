// A cluster CA for tests that run a component alone (a dispatcher, an API server) over real mutual
// TLS on loopback: real certificates from our CA, issued through a real CSR, as tsd gets them.
import { randomUUID } from 'node:crypto';

import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import type { NodeRole, UserRole } from '../../common/identity/certificate.js';
import { joinPem } from '../../common/identity/x509.js';
import type { TransportSecurity } from '../../common/transport/credentials.js';
import { TlsIdentity } from '../../common/transport/tls-identity.js';
import { issueNodeCertificate, issueUserCertificate } from '../../control-plane/ca/issue.js';
import { createRootCA, type CaMaterial } from '../../control-plane/ca/root-ca.js';

export interface TestPki {
  clusterId: string;
  ca: CaMaterial;
  /** A node's identity, expecting to talk to a manager of this cluster. */
  node(nodeId: string, role: NodeRole, options?: { validityMs?: number; now?: Date; ips?: string[] }): Promise<TransportSecurity & { mode: 'mtls' }>;
  /** A user's identity (tsctl), expecting a manager of this cluster. */
  user(name: string, role: UserRole): Promise<TransportSecurity & { mode: 'mtls' }>;
}

export async function testPki(clusterId = randomUUID()): Promise<TestPki> {
  const ca = await createRootCA({ clusterId });
  const expected = { kind: 'cluster-node', clusterId, role: 'manager' } as const;
  const identity = async (issue: (csrPem: string) => Promise<string>, hint: string) => {
    const keys = await generateKeyPair();
    const leaf = await issue(await createCsr(keys, { commonNameHint: hint }));
    return new TlsIdentity({ trustedRootPems: [ca.certPem], certChainPem: joinPem([leaf, ca.certPem]), keyPem: keys.keyPem });
  };
  return {
    clusterId,
    ca,
    node: async (nodeId, role, options = {}) => ({
      mode: 'mtls',
      identity: await identity((csr) => issueNodeCertificate(ca, csr, { nodeId, role, clusterId, ...options }), nodeId),
      expected,
    }),
    user: async (name, role) => ({ mode: 'mtls', identity: await identity((csr) => issueUserCertificate(ca, csr, { name, role, clusterId }), name), expected }),
  };
}
