// The cluster root CA: ECDSA P-256, self-signed, kept by the managers. A rotation makes a new root
// and cross-signs it with the old key (as swarmkit does), so that peers still trusting only the old
// root accept chains of the new one while the new root spreads.
import { randomBytes } from 'node:crypto';
import { assertIdentityName } from '../../common/identity/certificate.js';
import {
  EC_KEY_ALGORITHM,
  EC_SIGNING_ALGORITHM,
  exportPkcs8Pem,
  IdentityError,
  importPkcs8Pem,
  parseCertificate,
  randomSerial,
  type CryptoKey,
  webcrypto,
  x509,
  pemOf,
} from '../../common/identity/x509.js';

/** What a manager keeps: the root certificate and its private key (PKCS#8 PEM). */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

/** A CA ready to sign: parsed certificate, imported key, and the cluster it belongs to. */
export interface LoadedCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
  clusterId: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Root lifetime as swarmkit chooses it: long, because replacing a root is a rotation. */
export const DEFAULT_ROOT_VALIDITY_MS = 20 * 365 * DAY_MS;
/** Certificates start a little in the past so that a peer whose clock is behind still accepts them. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

function rootExtensions(pathLength: number): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
}

/**
 * A new self-signed root for `clusterId`. Its CN carries a random suffix so that the old and the
 * new root of a rotation have different names and path building never confuses them.
 */
export async function createRootCA(options: { clusterId: string; validityMs?: number; now?: Date }): Promise<CaMaterial> {
  assertIdentityName('cluster id', options.clusterId);
  const now = options.now ?? new Date();
  const keys = await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [`tessera-root-ca-${randomBytes(4).toString('hex')}`] }, { O: [options.clusterId] }],
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + (options.validityMs ?? DEFAULT_ROOT_VALIDITY_MS)),
    keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    // pathLength 1 leaves room for exactly one intermediate: the cross-signed root of a rotation.
    extensions: [...rootExtensions(1), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  return { certPem: pemOf(cert), keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** Parses and checks CA material: a self-signed CA certificate with O = cluster id, and its key. */
export async function loadCa(material: CaMaterial): Promise<LoadedCa> {
  const cert = parseCertificate('CA certificate', material.certPem);
  if (!(await cert.isSelfSigned())) throw new IdentityError('not-a-ca', `CA certificate ${cert.subject} is not a self-signed root`);
  if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca) throw new IdentityError('not-a-ca', `CA certificate ${cert.subject} lacks basicConstraints cA`);
  const org = cert.subjectName.getField('O');
  const clusterId = org[0];
  if (org.length !== 1 || clusterId === undefined)
    throw new IdentityError('bad-identity', `CA certificate ${cert.subject} must hold exactly one O (the cluster id)`);
  const key = await importPkcs8Pem('CA private key', material.keyPem);
  await assertKeyMatches(cert, key);
  return { cert, key, clusterId };
}

// A CA whose key does not match its certificate would issue certificates nobody can verify; a
// trial signature catches that at load time instead of at the first join.
async function assertKeyMatches(cert: x509.X509Certificate, key: CryptoKey): Promise<void> {
  const probe = new Uint8Array(randomBytes(32));
  const signature = await webcrypto.subtle.sign(EC_SIGNING_ALGORITHM, key, probe);
  const publicKey = await cert.publicKey.export(EC_KEY_ALGORITHM, ['verify']);
  if (!(await webcrypto.subtle.verify(EC_SIGNING_ALGORITHM, publicKey, signature, probe))) {
    throw new IdentityError('unsupported-key', `CA private key does not belong to CA certificate ${cert.subject}`);
  }
}

/**
 * The new root's subject and public key, issued by the old root. During a rotation a node
 * presents leaf + this certificate: a peer that trusts only the old root builds
 * leaf -> cross-signed -> old root, and a peer that already trusts the new root stops at it.
 */
export async function crossSign(oldCa: CaMaterial | LoadedCa, newRootCertPem: string, now: Date = new Date()): Promise<string> {
  const issuer = 'cert' in oldCa ? oldCa : await loadCa(oldCa);
  const newRoot = parseCertificate('new root certificate', newRootCertPem);
  if (!(await newRoot.isSelfSigned())) throw new IdentityError('not-a-ca', `new root ${newRoot.subject} is not self-signed`);
  const newOrg = newRoot.subjectName.getField('O');
  if (newOrg.length !== 1 || newOrg[0] !== issuer.clusterId) {
    throw new IdentityError('wrong-cluster', `new root ${newRoot.subject} belongs to another cluster than the old root (O=${issuer.clusterId})`);
  }
  const notAfter = Math.min(newRoot.notAfter.getTime(), issuer.cert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: newRoot.subjectName,
    issuer: issuer.cert.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(notAfter),
    publicKey: newRoot.publicKey,
    signingKey: issuer.key,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [
      ...rootExtensions(0),
      await x509.SubjectKeyIdentifierExtension.create(newRoot.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey),
    ],
  });
  return pemOf(cert);
}

/** Step one of a rotation: a new root for the same cluster and its certificate cross-signed by the old key. */
export async function startRootRotation(
  oldCa: CaMaterial,
  options: { validityMs?: number; now?: Date } = {},
): Promise<{ newCa: CaMaterial; crossSignedPem: string }> {
  const old = await loadCa(oldCa);
  const newCa = await createRootCA({ clusterId: old.clusterId, ...options });
  return { newCa, crossSignedPem: await crossSign(old, newCa.certPem, options.now) };
}
