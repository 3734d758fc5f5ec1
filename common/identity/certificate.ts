// What a Tessera certificate says about its holder, read the same way by the manager, the agent and
// tsctl. The subject is the identity: CN = node id or user name, OU = role, O = cluster id; the CA
// writes these from its own decision, so reading them back is all a peer has to do.
import { createHash } from 'node:crypto';
import { DNS_LABEL } from '../resources/names.js';
import { IdentityError, parseCertificate, normalizeSerial } from './x509-core.js';
import type { x509 } from './x509.js';

export const NODE_ROLES = ['manager', 'worker'] as const;
export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];
export type UserRole = (typeof USER_ROLES)[number];

/** Node ids, user names and cluster ids: DNS labels, as node names are everywhere else. */
export const IDENTITY_NAME = DNS_LABEL;

export interface CertificateSubject {
  cn: string;
  ou: string;
  o: string;
  /** Lowercase hex, no leading zero bytes. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export function assertIdentityName(what: string, value: string): void {
  if (!IDENTITY_NAME.test(value))
    throw new IdentityError('bad-identity', `${what} "${value.slice(0, 80)}" is not a DNS label (a-z, 0-9 and '-', at most 63 characters)`);
}

function singleField(name: x509.Name, field: string, what: string): string {
  const values = name.getField(field);
  if (values.length !== 1 || values[0] === undefined) {
    throw new IdentityError('bad-identity', `${what}: the subject must hold exactly one ${field}, it holds ${values.length}`);
  }
  return values[0];
}

/** Reads CN, OU, O, the serial and the validity of a certificate (PEM, or DER as a TLS peer presents it). */
export function parseIdentity(certificate: string | Uint8Array): CertificateSubject {
  return identityOf(parseCertificate('certificate', certificate));
}

/** parseIdentity of a certificate already parsed (a verifier has it in hand; no second parse). */
export function identityOf(cert: x509.X509Certificate): CertificateSubject {
  const what = `certificate ${cert.subject}`;
  return {
    cn: singleField(cert.subjectName, 'CN', what),
    ou: singleField(cert.subjectName, 'OU', what),
    o: singleField(cert.subjectName, 'O', what),
    serial: normalizeSerial(cert.serialNumber),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** The CA digest a join token pins: sha256 of the root certificate's DER, lowercase hex. */
export function caDigest(certPem: string): string {
  const cert = parseCertificate('CA certificate', certPem);
  return createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex');
}

export function isNodeRole(value: string): value is NodeRole {
  return (NODE_ROLES as readonly string[]).includes(value);
}

export function isUserRole(value: string): value is UserRole {
  return (USER_ROLES as readonly string[]).includes(value);
}
