// Certificate issuance from a CSR. Only the public key is taken from the request, after its
// self-signature proves the requester holds the private key; the subject, the usages and the
// lifetime are the CA's decision. A CSR asking for CN=admin gets exactly what the caller decided.
import { isIP } from 'node:net';
import { assertIdentityName, type NodeRole, type UserRole, isNodeRole, isUserRole } from '../../common/identity/certificate.js';
import {
  EC_SIGNING_ALGORITHM,
  IdentityError,
  isP256,
  OID_CLIENT_AUTH,
  OID_SERVER_AUTH,
  parseCsr,
  randomSerial,
  x509,
  pemOf,
} from '../../common/identity/x509.js';
import { DNS_NAME, MAX_DNS_NAME_LENGTH } from '../../common/resources/names.js';
import { CLOCK_SKEW_MS, type CaMaterial, type LoadedCa, loadCa } from './root-ca.js';

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_NODE_VALIDITY_MS = 90 * DAY_MS;
export const DEFAULT_USER_VALIDITY_MS = 365 * DAY_MS;
/** Short enough for a test to watch a renewal, long enough to outlast one handshake on a loaded machine. */
export const MIN_VALIDITY_MS = 60 * 1000;
const MAX_SANS = 32;

export interface NodeCertificateRequest {
  nodeId: string;
  role: NodeRole;
  clusterId: string;
  validityMs?: number;
  /** Host names and IP addresses the node serves on, as the caller (the manager) knows them. */
  dnsNames?: readonly string[];
  ips?: readonly string[];
  /** The CA's clock; tests move it to make expired or future certificates. */
  now?: Date;
}

export interface UserCertificateRequest {
  name: string;
  role: UserRole;
  clusterId: string;
  validityMs?: number;
  now?: Date;
}

export async function issueNodeCertificate(ca: CaMaterial | LoadedCa, csrPem: string, request: NodeCertificateRequest): Promise<string> {
  assertIdentityName('node id', request.nodeId);
  if (!isNodeRole(request.role)) throw new IdentityError('bad-identity', `node role "${String(request.role)}" is not manager or worker`);
  const subjectAltNames = sanExtension(request.dnsNames ?? [], request.ips ?? []);
  return issue(ca, csrPem, {
    subject: [{ CN: [request.nodeId] }, { OU: [request.role] }, { O: [request.clusterId] }],
    clusterId: request.clusterId,
    usages: [OID_SERVER_AUTH, OID_CLIENT_AUTH],
    extra: subjectAltNames ? [subjectAltNames] : [],
    validityMs: request.validityMs ?? DEFAULT_NODE_VALIDITY_MS,
    now: request.now ?? new Date(),
  });
}

/** A user (tsctl) certificate: client authentication only, so it can never serve as a node. */
export async function issueUserCertificate(ca: CaMaterial | LoadedCa, csrPem: string, request: UserCertificateRequest): Promise<string> {
  assertIdentityName('user name', request.name);
  if (!isUserRole(request.role)) throw new IdentityError('bad-identity', `user role "${String(request.role)}" is not admin, operator or viewer`);
  return issue(ca, csrPem, {
    subject: [{ CN: [request.name] }, { OU: [request.role] }, { O: [request.clusterId] }],
    clusterId: request.clusterId,
    usages: [OID_CLIENT_AUTH],
    extra: [],
    validityMs: request.validityMs ?? DEFAULT_USER_VALIDITY_MS,
    now: request.now ?? new Date(),
  });
}

interface Decision {
  subject: x509.JsonName;
  clusterId: string;
  usages: string[];
  extra: x509.Extension[];
  validityMs: number;
  now: Date;
}

async function issue(caInput: CaMaterial | LoadedCa, csrPem: string, decision: Decision): Promise<string> {
  const ca = 'cert' in caInput ? caInput : await loadCa(caInput);
  // The cluster id is asked for explicitly so that a manager wired to the wrong CA fails here.
  if (decision.clusterId !== ca.clusterId) {
    throw new IdentityError('wrong-cluster', `cannot issue for cluster "${decision.clusterId.slice(0, 80)}" with the CA of cluster "${ca.clusterId}"`);
  }
  if (!Number.isFinite(decision.validityMs) || decision.validityMs < MIN_VALIDITY_MS) {
    throw new IdentityError('malformed', `certificate validity ${decision.validityMs} ms is shorter than the ${MIN_VALIDITY_MS} ms minimum`);
  }
  const csr = parseCsr('certificate request', csrPem);
  if (!isP256(csr.publicKey)) throw new IdentityError('unsupported-key', 'certificate request: the key must be ECDSA P-256');
  if (!(await csr.verify()))
    throw new IdentityError('bad-signature', 'certificate request: its signature does not verify, so the requester has not shown it holds the key');
  // A certificate cannot outlive the root that vouches for it; near the root's end, a rotation is due.
  const notAfter = Math.min(decision.now.getTime() + decision.validityMs, ca.cert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: decision.subject,
    issuer: ca.cert.subjectName,
    notBefore: new Date(decision.now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(notAfter),
    publicKey: csr.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(decision.usages, false),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
      ...decision.extra,
    ],
  });
  return pemOf(cert);
}

function sanExtension(dnsNames: readonly string[], ips: readonly string[]): x509.SubjectAlternativeNameExtension | undefined {
  if (dnsNames.length + ips.length > MAX_SANS)
    throw new IdentityError('malformed', `${dnsNames.length + ips.length} subject alternative names, at most ${MAX_SANS}`);
  for (const name of dnsNames) {
    if (name.length > MAX_DNS_NAME_LENGTH || !DNS_NAME.test(name))
      throw new IdentityError('malformed', `subject alternative name "${name.slice(0, 80)}" is not a DNS name`);
  }
  for (const ip of ips) {
    if (isIP(ip) === 0) throw new IdentityError('malformed', `subject alternative name "${ip.slice(0, 80)}" is not an IP address`);
  }
  if (dnsNames.length + ips.length === 0) return undefined;
  return new x509.SubjectAlternativeNameExtension([
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ips.map((value) => ({ type: 'ip' as const, value })),
  ]);
}
