// How a node comes by its identity when tsd starts: from its certificate files when it has them
// (a restart needs no token); otherwise `tsd init` creates the cluster's root CA and signs its own
// manager certificate, and `tsd join` sends a CSR with the join token's secret to a manager whose
// root matched the token's pin. The CA's key is never written to a file: `tsd init` hands it to the
// manager, which stores it (sealed) with the cluster's meta; a manager that joins finds it in its
// store once it is a Raft member (daemon/ca-keeper.ts).
import { randomUUID } from 'node:crypto';

import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { parseIdentity, type CertificateSubject, type NodeRole } from '../../common/identity/certificate.js';
import { parseJoinToken, type JoinToken } from '../../common/identity/join-token.js';
import { joinPem } from '../../common/identity/x509.js';
import { TlsIdentity, type TlsMaterial } from '../../common/transport/tls-identity.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import { createRootCA, loadCa, type CaMaterial } from '../../control-plane/ca/root-ca.js';
import type { DaemonConfig } from '../config.js';
import { certPaths, readNodeCertificates, writeNodeCertificates } from './cert-files.js';
import { fetchStoreKey, joinCluster, pinnedRoot } from './node-ca-client.js';
import { writeStoreKey } from './store-key.js';

export interface NodeIdentity {
  identity: TlsIdentity;
  clusterId: string;
  role: NodeRole;
  /** The root CA this start created (tsd init), for the manager to store with the cluster's meta. */
  ca?: CaMaterial;
  /** True when this start created the cluster (tsd init without certificate files). */
  createdCluster: boolean;
}

/** What an identity must say to be this node's: its name, and a role it may run as. */
function checkOwn(subject: { cn: string; ou: string }, config: DaemonConfig): NodeRole {
  if (subject.cn !== config.nodeName) {
    throw new Error(`the certificate in ${certPaths(config.dataRoot).dir} is node ${subject.cn}'s, but this tsd is --node-name ${config.nodeName}`);
  }
  if (subject.ou !== 'manager' && subject.ou !== 'worker') throw new Error(`the node certificate has role "${subject.ou}", not manager or worker`);
  return subject.ou;
}

async function fromFiles(config: DaemonConfig): Promise<NodeIdentity | undefined> {
  const paths = certPaths(config.dataRoot);
  const existing = await readNodeCertificates(paths);
  if (!existing) return undefined;
  const role = checkOwn(existing.subject, config);
  return { identity: new TlsIdentity(existing.material), clusterId: existing.subject.o, role, createdCluster: false };
}

/** `tsd init`: this node's identity, creating the cluster's root CA the first time. */
export async function initIdentity(config: DaemonConfig, log: (message: string) => void): Promise<NodeIdentity> {
  const existing = await fromFiles(config);
  if (existing) {
    if (existing.role !== 'manager') throw new Error(`this node joined a cluster as a worker; start it with tsd join, not tsd init`);
    return existing;
  }
  const clusterId = randomUUID();
  const ca = await createRootCA({ clusterId });
  const keys = await generateKeyPair();
  const leaf = await issueNodeCertificate(await loadCa(ca), await createCsr(keys, { commonNameHint: config.nodeName }), {
    nodeId: config.nodeName,
    role: 'manager',
    clusterId,
    validityMs: config.certValidityMs,
    ips: [config.advertiseAddress],
  });
  const material: TlsMaterial = { trustedRootPems: [ca.certPem], certChainPem: joinPem([leaf, ca.certPem]), keyPem: keys.keyPem };
  const paths = certPaths(config.dataRoot);
  await writeNodeCertificates(paths, material);
  log(`created cluster ${clusterId}: this manager's certificate in ${paths.dir}; the root CA goes into the store`);
  return { identity: new TlsIdentity(material), clusterId, role: 'manager', ca, createdCluster: true };
}

/**
 * The join itself, with nothing written: the manager's chain checked against the token's pin, a
 * new key and CSR, NodeCA.Join. `tsd join` and the hollow nodes of the scale tests (test/scale/)
 * both come by their certificates this way.
 */
export async function requestJoin(
  address: string,
  token: JoinToken,
  nodeName: string,
  advertiseAddress: string,
): Promise<{ material: TlsMaterial; subject: CertificateSubject }> {
  const rootPem = await pinnedRoot(address, token);
  const keys = await generateKeyPair();
  const issued = await joinCluster(address, rootPem, {
    nodeName,
    tokenSecret: token.secret,
    csrPem: await createCsr(keys, { commonNameHint: nodeName }),
    address: advertiseAddress,
  });
  const material: TlsMaterial = { trustedRootPems: issued.trustedRootPems, certChainPem: issued.certChainPem, keyPem: keys.keyPem };
  return { material, subject: parseIdentity(issued.certChainPem) };
}

/**
 * `tsd join`: the node's identity from its files, or (first start) from the cluster through the
 * manager at `address`. `readToken` is called only when a token is needed.
 */
export async function joinIdentity(
  config: DaemonConfig,
  address: string,
  readToken: () => Promise<string>,
  log: (message: string) => void,
): Promise<NodeIdentity> {
  const existing = await fromFiles(config);
  if (existing) return existing;
  const token = parseJoinToken(await readToken());
  const { material, subject } = await requestJoin(address, token, config.nodeName, config.advertiseAddress);
  const role = checkOwn(subject, config);
  const identity = new TlsIdentity(material);
  // A manager sharing an etcd needs the key of the store's sealed values (and with it the CA's key).
  if (role === 'manager' && config.store === 'etcd') {
    const kek = await fetchStoreKey(address, { mode: 'mtls', identity, expected: { kind: 'cluster-node', clusterId: subject.o, role: 'manager' } });
    await writeStoreKey(config.dataRoot, kek);
    kek.fill(0);
  }
  await writeNodeCertificates(certPaths(config.dataRoot), material);
  log(`joined cluster ${subject.o} as ${role} ${subject.cn}; certificate valid until ${subject.notAfter.toISOString()}`);
  return { identity, clusterId: subject.o, role, createdCluster: false };
}
