// The cluster CA and node identity (issue 14's foundation): real ECDSA keys, real certificates, and
// Node's own X509Certificate (OpenSSL) as an independent reader of what @peculiar/x509 wrote.
import test, { type ExecutionContext } from 'ava';
import { X509Certificate as NodeX509, createHash, createPrivateKey } from 'node:crypto';
import { caDigest, parseIdentity } from '../../common/identity/certificate.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import {
  formatJoinToken,
  generateJoinSecret,
  hashJoinSecret,
  JOIN_SECRET_ALPHABET,
  JOIN_SECRET_LENGTH,
  joinSecretMatches,
  newJoinToken,
  parseJoinToken,
  pinnedCaMatches,
} from '../../common/identity/join-token.js';
import { EC_KEY_ALGORITHM, EC_SIGNING_ALGORITHM, IdentityError, type IdentityErrorCode, webcrypto, x509 } from '../../common/identity/x509.js';
import { issueNodeCertificate, issueUserCertificate } from '../../control-plane/ca/issue.js';
import { RevocationSet } from '../../control-plane/ca/revocation.js';
import { type CaMaterial, createRootCA, loadCa, startRootRotation } from '../../control-plane/ca/root-ca.js';
import { verifyChain } from '../helpers/verify-chain.js';

const CLUSTER = 'cluster-a';
const DAY = 24 * 60 * 60 * 1000;

async function csrFor(hint: string): Promise<string> {
  return createCsr(await generateKeyPair(), { commonNameHint: hint });
}

async function nodeCert(
  ca: CaMaterial,
  nodeId = 'node-1',
  role: 'manager' | 'worker' = 'worker',
  extra: { validityMs?: number; now?: Date } = {},
): Promise<string> {
  return issueNodeCertificate(ca, await csrFor(nodeId), { nodeId, role, clusterId: CLUSTER, ...extra });
}

async function rejects(t: ExecutionContext, promise: Promise<unknown>, code: IdentityErrorCode, messagePart: RegExp): Promise<void> {
  const err = await t.throwsAsync(promise, { instanceOf: IdentityError });
  t.is(err.code, code, err.message);
  t.regex(err.message, messagePart);
}

let caPromise: Promise<CaMaterial> | undefined;
function sharedCa(): Promise<CaMaterial> {
  caPromise ??= createRootCA({ clusterId: CLUSTER });
  return caPromise;
}

test('root CA: self-signed ECDSA P-256 CA with O = cluster id, key in PKCS#8, read back by OpenSSL', async (t) => {
  const ca = await sharedCa();
  const cert = new NodeX509(ca.certPem);
  t.true(cert.ca);
  t.true(cert.checkIssued(cert));
  t.true(cert.verify(cert.publicKey));
  t.regex(cert.subject, /^CN=tessera-root-ca-[0-9a-f]{8}\nO=cluster-a$/);
  t.is(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const key = createPrivateKey(ca.keyPem);
  t.is(key.asymmetricKeyType, 'ec');
  t.is(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.true(ca.keyPem.startsWith('-----BEGIN PRIVATE KEY-----'), 'PKCS#8, not SEC1');
  const years = (Date.parse(cert.validTo) - Date.now()) / (365 * DAY);
  t.true(years > 19.9 && years < 20.1, `default root lifetime is 20 years, got ${years}`);
  const loaded = await loadCa(ca);
  t.is(loaded.clusterId, CLUSTER);
});

test("root CA: refuses a cluster id that is not a DNS label, and a key that is not the certificate's", async (t) => {
  await rejects(t, createRootCA({ clusterId: 'Cluster A,O=evil' }), 'bad-identity', /cluster id/);
  const [a, b] = await Promise.all([sharedCa(), createRootCA({ clusterId: CLUSTER })]);
  await rejects(t, loadCa({ certPem: a.certPem, keyPem: b.keyPem }), 'unsupported-key', /does not belong/);
});

test('caDigest is sha256 of the root certificate DER', async (t) => {
  const ca = await sharedCa();
  t.is(caDigest(ca.certPem), createHash('sha256').update(new NodeX509(ca.certPem).raw).digest('hex'));
});

test("node certificate: the subject is the CA's decision, only the public key comes from the CSR", async (t) => {
  const ca = await sharedCa();
  const keys = await generateKeyPair();
  // The request asks for an admin identity and for CA powers; neither must reach the certificate.
  const greedyCsr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: ['admin'] }, { OU: ['admin'] }, { O: ['other-cluster'] }],
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [new x509.BasicConstraintsExtension(true, 5, true), new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'evil.example' }])],
  });
  const before = Date.now();
  const pem = await issueNodeCertificate(ca, greedyCsr.toString('pem'), {
    nodeId: 'node-7',
    role: 'worker',
    clusterId: CLUSTER,
    dnsNames: ['node-7.cluster.local'],
    ips: ['127.0.0.1', '::1'],
  });
  const cert = new NodeX509(pem);
  t.is(cert.subject, 'CN=node-7\nOU=worker\nO=cluster-a');
  t.false(cert.ca);
  t.is(cert.subjectAltName, 'DNS:node-7.cluster.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  t.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'extended key usage: serverAuth and clientAuth');
  t.true(cert.verify(new NodeX509(ca.certPem).publicKey), 'signed by the CA key');
  t.true(cert.checkIssued(new NodeX509(ca.certPem)));
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  t.deepEqual(cert.publicKey.export({ type: 'spki', format: 'der' }), spki, "the public key is the requester's");
  const parsed = new x509.X509Certificate(pem);
  const usage = parsed.getExtension(x509.KeyUsagesExtension);
  t.is(usage?.usages, x509.KeyUsageFlags.digitalSignature);
  t.true(parsed.notBefore.getTime() <= before - 4 * 60 * 1000, 'notBefore is set back for clock skew');
  const days = (parsed.notAfter.getTime() - before) / DAY;
  t.true(days > 89.99 && days < 90.01, `default node lifetime is 90 days, got ${days}`);
});

test('node certificate: random serials, minute-scale validity, refusals with the reason', async (t) => {
  const ca = await sharedCa();
  const [a, b] = await Promise.all([nodeCert(ca), nodeCert(ca)]);
  t.not(parseIdentity(a).serial, parseIdentity(b).serial);
  t.regex(parseIdentity(a).serial, /^[4-7][0-9a-f]{31}$/);
  const short = parseIdentity(await nodeCert(ca, 'node-2', 'manager', { validityMs: 2 * 60 * 1000 }));
  const minutes = (short.notAfter.getTime() - Date.now()) / 60_000;
  t.true(minutes > 1.9 && minutes <= 2, `2-minute certificate lasts ${minutes} minutes`);

  const csr = await csrFor('x');
  await rejects(t, issueNodeCertificate(ca, csr, { nodeId: 'node-1', role: 'worker', clusterId: 'cluster-b' }), 'wrong-cluster', /cluster-b.*cluster-a/);
  await rejects(t, issueNodeCertificate(ca, csr, { nodeId: 'Node_1', role: 'worker', clusterId: CLUSTER }), 'bad-identity', /node id "Node_1"/);
  await rejects(t, issueNodeCertificate(ca, csr, { nodeId: 'n', role: 'admin' as 'worker', clusterId: CLUSTER }), 'bad-identity', /node role "admin"/);
  await rejects(t, issueNodeCertificate(ca, csr, { nodeId: 'n', role: 'worker', clusterId: CLUSTER, validityMs: 1000 }), 'malformed', /shorter than/);
  await rejects(
    t,
    issueNodeCertificate(ca, csr, { nodeId: 'n', role: 'worker', clusterId: CLUSTER, ips: ['300.1.1.1'] }),
    'malformed',
    /"300.1.1.1" is not an IP/,
  );
  await rejects(t, issueNodeCertificate(ca, 'hello', { nodeId: 'n', role: 'worker', clusterId: CLUSTER }), 'malformed', /certificate request: not a PEM/);
  await rejects(
    t,
    issueNodeCertificate(ca, 'x'.repeat(100_000), { nodeId: 'n', role: 'worker', clusterId: CLUSTER }),
    'malformed',
    /more than the 16384 allowed/,
  );
});

test('node certificate: a CSR whose signature does not match its key, or an RSA key, is refused', async (t) => {
  const ca = await sharedCa();
  const [mine, stolen] = await Promise.all([generateKeyPair(), generateKeyPair()]);
  // Someone who knows a public key but not its private key cannot get it certified.
  const forged = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=x',
    keys: { publicKey: stolen.publicKey, privateKey: mine.privateKey },
    signingAlgorithm: EC_SIGNING_ALGORITHM,
  });
  await rejects(t, issueNodeCertificate(ca, forged.toString('pem'), { nodeId: 'n', role: 'worker', clusterId: CLUSTER }), 'bad-signature', /does not verify/);
  const rsaAlgorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const rsa = await webcrypto.subtle.generateKey(rsaAlgorithm, false, ['sign', 'verify']);
  const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys: rsa, signingAlgorithm: rsaAlgorithm });
  await rejects(t, issueNodeCertificate(ca, rsaCsr.toString('pem'), { nodeId: 'n', role: 'worker', clusterId: CLUSTER }), 'unsupported-key', /ECDSA P-256/);
});

test('user certificate: OU = role, clientAuth only, verified as a user', async (t) => {
  const ca = await sharedCa();
  const pem = await issueUserCertificate(ca, await csrFor('root'), { name: 'alice', role: 'operator', clusterId: CLUSTER });
  const cert = new NodeX509(pem);
  t.is(cert.subject, 'CN=alice\nOU=operator\nO=cluster-a');
  t.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  const identity = await verifyChain(pem, [], [ca.certPem]);
  t.like(identity, { kind: 'user', name: 'alice', role: 'operator', clusterId: CLUSTER });
  await rejects(
    t,
    issueUserCertificate(ca, await csrFor('x'), { name: 'bob', role: 'manager' as 'admin', clusterId: CLUSTER }),
    'bad-identity',
    /user role "manager"/,
  );
});

test('verifyChain: a node certificate of this CA gives the identity', async (t) => {
  const ca = await sharedCa();
  const pem = await nodeCert(ca, 'node-3', 'manager');
  const identity = await verifyChain(pem, [], [ca.certPem], new Date(), { clusterId: CLUSTER });
  t.like(identity, { kind: 'node', nodeId: 'node-3', role: 'manager', clusterId: CLUSTER, serial: parseIdentity(pem).serial });
  t.deepEqual(identity.notAfter, parseIdentity(pem).notAfter);
  // DER, as a TLS peer presents it, reads the same.
  t.like(await verifyChain(new Uint8Array(new NodeX509(pem).raw), [], [ca.certPem]), { nodeId: 'node-3' });
});

test('verifyChain: expired, not yet valid, another CA, another cluster, revoked', async (t) => {
  const ca = await sharedCa();
  const pem = await nodeCert(ca, 'node-4', 'worker', { validityMs: 5 * 60 * 1000 });
  await rejects(t, verifyChain(pem, [], [ca.certPem], new Date(Date.now() + 10 * 60 * 1000)), 'expired', /CN=node-4.*expired at/);
  await rejects(t, verifyChain(pem, [], [ca.certPem], new Date(Date.now() - 60 * 60 * 1000)), 'not-yet-valid', /not valid before/);

  const other = await createRootCA({ clusterId: CLUSTER });
  await rejects(t, verifyChain(pem, [], [other.certPem]), 'unknown-ca', /not a trusted root/);
  // The other CA's root presented as an "intermediate" does not help: it did not sign the leaf.
  await rejects(t, verifyChain(pem, [other.certPem], [other.certPem]), 'unknown-ca', /not a trusted root/);

  await rejects(
    t,
    verifyChain(pem, [], [ca.certPem], new Date(), { clusterId: 'cluster-b' }),
    'wrong-cluster',
    /belongs to cluster cluster-a, this is cluster cluster-b/,
  );
  // A certificate naming another cluster under this cluster's root (written here with the library
  // directly, since issueNodeCertificate refuses to make one) is refused by the verifier too.
  const loaded = await loadCa(ca);
  const keys = await generateKeyPair();
  const crossCluster = await x509.X509CertificateGenerator.create({
    subject: [{ CN: ['node-9'] }, { OU: ['manager'] }, { O: ['cluster-b'] }],
    issuer: loaded.cert.subjectName,
    publicKey: keys.publicKey,
    signingKey: loaded.key,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + DAY),
    extensions: [new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'])],
  });
  await rejects(t, verifyChain(crossCluster.toString('pem'), [], [ca.certPem]), 'wrong-cluster', /names cluster cluster-b.*belongs to cluster cluster-a/);

  const revocations = new RevocationSet();
  revocations.revoke(parseIdentity(pem).serial.toUpperCase(), parseIdentity(pem).notAfter, 'node rm node-4');
  await rejects(t, verifyChain(pem, [], [ca.certPem], new Date(), { revocations }), 'revoked', /serial [0-9a-f]+\) was revoked: node rm node-4/);
  t.like(
    await verifyChain(await nodeCert(ca, 'node-4'), [], [ca.certPem], new Date(), { revocations }),
    { nodeId: 'node-4' },
    'a reissued certificate has a new serial',
  );
});

test('verifyChain: a CA certificate or a malformed input is not an identity', async (t) => {
  const ca = await sharedCa();
  await rejects(t, verifyChain(ca.certPem, [], [ca.certPem]), 'wrong-usage', /is a CA certificate/);
  await rejects(
    t,
    verifyChain('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', [], [ca.certPem]),
    'malformed',
    /presented certificate: not a valid X.509/,
  );
  await rejects(t, verifyChain(await nodeCert(ca), [], []), 'unknown-ca', /no trusted root/);
});

test('CA rotation: a leaf of the new CA verifies against the OLD root through the cross-signed intermediate', async (t) => {
  const oldCa = await createRootCA({ clusterId: CLUSTER });
  const { newCa, crossSignedPem } = await startRootRotation(oldCa);
  const leaf = await nodeCert(newCa, 'node-5', 'manager');
  const oldLeaf = await nodeCert(oldCa, 'node-6', 'worker');

  t.like(await verifyChain(leaf, [crossSignedPem], [oldCa.certPem]), { nodeId: 'node-5', role: 'manager' }, 'peer that trusts only the old root');
  t.like(await verifyChain(leaf, [crossSignedPem], [newCa.certPem]), { nodeId: 'node-5' }, 'peer that already trusts the new root');
  t.like(await verifyChain(leaf, [], [oldCa.certPem, newCa.certPem]), { nodeId: 'node-5' }, 'peer that trusts both');
  t.like(await verifyChain(oldLeaf, [], [oldCa.certPem, newCa.certPem]), { nodeId: 'node-6' }, 'old leaves still verify during the transition');
  await rejects(t, verifyChain(leaf, [], [oldCa.certPem]), 'unknown-ca', /not a trusted root/);

  // OpenSSL's reading: the cross-signed certificate carries the new key and name, issued by the old root.
  const cross = new NodeX509(crossSignedPem);
  const oldRoot = new NodeX509(oldCa.certPem);
  const newRoot = new NodeX509(newCa.certPem);
  t.true(cross.ca);
  t.is(cross.subject, newRoot.subject);
  t.is(cross.issuer, oldRoot.subject);
  t.true(cross.verify(oldRoot.publicKey));
  t.true(new NodeX509(leaf).verify(cross.publicKey));
  t.not(oldRoot.subject, newRoot.subject);

  // Rotations do not stack: a cross-signed certificate cannot extend the path (pathLength 0), so a
  // peer still trusting only the first root refuses a leaf two rotations later.
  const second = await startRootRotation(newCa);
  const thirdLeaf = await nodeCert(second.newCa, 'node-8');
  await rejects(
    t,
    verifyChain(thirdLeaf, [second.crossSignedPem, crossSignedPem], [oldCa.certPem]),
    'path-too-long',
    /allows 0 intermediates below it, the path has 1/,
  );
  t.like(await verifyChain(thirdLeaf, [second.crossSignedPem], [newCa.certPem]), { nodeId: 'node-8' });
});

test('revocation set: serial spellings, pruning, JSON round trip and bad input', (t) => {
  const set = new RevocationSet();
  set.revoke('00AB12', new Date(1000), 'gone');
  set.revoke('cd34', new Date(5000), 'compromised');
  t.true(set.isRevoked('ab12'));
  t.true(set.isRevoked('00ab12'));
  t.false(set.isRevoked('ab13'));
  const copy = RevocationSet.fromJSON(JSON.parse(JSON.stringify(set)));
  t.true(copy.isRevoked('CD34'));
  t.is(copy.lookup('cd34')?.reason, 'compromised');
  t.is(set.prune(new Date(2000)), 1);
  t.false(set.isRevoked('ab12'));
  t.is(set.size, 1);
  t.throws(() => set.revoke('xyz', new Date(), 'r'), { message: /"xyz" is not 1-40 hex digits/ });
  t.throws(() => RevocationSet.fromJSON({}), { message: /expected an array/ });
  t.throws(() => RevocationSet.fromJSON([{ serial: 'ab', notAfter: 'soon', reason: 'r' }]), { message: /entry 0 has notAfter "soon"/ });
  t.throws(() => RevocationSet.fromJSON([{ serial: 'ab' }]), { message: /entry 0 is not/ });
});

test('node key and CSR: PKCS#8 P-256 key, CSR carries its public key and the hint', async (t) => {
  const keys = await generateKeyPair();
  const key = createPrivateKey(keys.keyPem);
  t.is(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const csr = new x509.Pkcs10CertificateRequest(await createCsr(keys, { commonNameHint: 'node-1' }));
  t.true(await csr.verify());
  t.is(csr.subject, 'CN=node-1');
  t.deepEqual(Buffer.from(csr.publicKey.rawData), Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)));
  t.deepEqual(EC_KEY_ALGORITHM, { name: 'ECDSA', namedCurve: 'P-256' });
});

test('join token: round trip, ≥128-bit secret in the fixed alphabet', async (t) => {
  const ca = await sharedCa();
  const { token, parsed } = newJoinToken(ca.certPem);
  t.regex(token, /^TSJT-1-[0-9a-f]{64}-[a-z2-7]{26}$/);
  t.deepEqual(parseJoinToken(`  ${token}\n`), parsed, 'whitespace from a token file is dropped');
  t.is(parsed.caDigest, caDigest(ca.certPem));
  t.is(formatJoinToken(parsed), token);
  t.true(JOIN_SECRET_LENGTH * Math.log2(JOIN_SECRET_ALPHABET.length) >= 128);
  const secrets = new Set(Array.from({ length: 200 }, () => generateJoinSecret()));
  t.is(secrets.size, 200);
  const used = new Set([...secrets].join(''));
  t.true([...used].every((c) => JOIN_SECRET_ALPHABET.includes(c)));
  t.is(used.size, 32, 'every alphabet character shows up over 5200 draws');
});

test('join token: every malformed piece is refused naming it, and the secret never appears in the error', (t) => {
  const digest = 'a'.repeat(64);
  const secret = generateJoinSecret();
  const cases: [string, RegExp][] = [
    [`SWMTKN-1-${digest}-${secret}`, /bad prefix/],
    [`TSJT-2-${digest}-${secret}`, /unsupported version "2"/],
    [`TSJT-1-${'a'.repeat(63)}-${secret}`, /CA digest has 63 characters, expected 64/],
    [`TSJT-1-${'A'.repeat(64)}-${secret}`, /CA digest has characters other than lowercase hex/],
    [`TSJT-1-${digest}-${secret.slice(1)}`, /secret has 25 characters, expected 26/],
    [`TSJT-1-${digest}-${secret.slice(1)}0`, /secret has a character outside the token alphabet/],
    [`TSJT-1-${digest}`, /expected 4 fields.*found 3/],
    [`TSJT-1-${digest}-${secret}-extra`, /found 5/],
    ['', /found 1/],
    ['x'.repeat(300), /300 characters is longer than any token/],
  ];
  for (const [token, message] of cases) {
    const err = t.throws(() => parseJoinToken(token), { message });
    t.true(err.message.startsWith('join token: '));
    t.false(err.message.includes(secret.slice(1, 20)), `the error for ${message} does not echo the secret`);
  }
  t.throws(() => formatJoinToken({ caDigest: digest, secret: 'short' }), { message: /secret has 5 characters/ });
});

test('join secret: hashed for storage, compared in constant time', (t) => {
  const secret = generateJoinSecret();
  const stored = hashJoinSecret(secret);
  t.regex(stored, /^sha256:[0-9a-f]{64}$/);
  t.false(stored.includes(secret));
  t.is(hashJoinSecret(secret), stored, 'deterministic, so the store can hold it');
  t.true(joinSecretMatches(secret, stored));
  t.false(joinSecretMatches(generateJoinSecret(), stored));
  t.false(joinSecretMatches('not a secret', stored));
  t.false(joinSecretMatches(secret, 'sha256:short'));
});

test('CA pin: the presented chain must end in the pinned root, every link signed by the next', async (t) => {
  const ca = await sharedCa();
  const other = await createRootCA({ clusterId: CLUSTER });
  const { token } = newJoinToken(ca.certPem);
  const leaf = await nodeCert(ca, 'manager-1', 'manager');
  t.deepEqual(await pinnedCaMatches(token, [leaf, ca.certPem]), { ok: true });

  const impostorLeaf = await nodeCert(other, 'manager-1', 'manager');
  const mismatch = await pinnedCaMatches(token, [impostorLeaf, other.certPem]);
  t.false(mismatch.ok);
  t.regex(mismatch.ok ? '' : mismatch.reason, new RegExp(`digest ${caDigest(other.certPem)}, the join token pins ${caDigest(ca.certPem)}`));
  // The real root is public: appending it to an impostor's leaf must not pass.
  const spliced = await pinnedCaMatches(token, [impostorLeaf, ca.certPem]);
  t.deepEqual(spliced, {
    ok: false,
    reason: `presented certificate #0 (CN=manager-1, OU=manager, O=cluster-a) is not signed by the next one (${new x509.X509Certificate(ca.certPem).subject})`,
  });
  t.deepEqual(await pinnedCaMatches(token, [leaf]), { ok: false, reason: 'the presented chain does not end in a self-signed root certificate' });
  t.deepEqual(await pinnedCaMatches(token, []), { ok: false, reason: 'the manager presented no certificate' });

  // During a rotation the manager presents leaf (new CA), the cross-signed root, then the old root.
  const { newCa, crossSignedPem } = await startRootRotation(ca);
  const rotatedLeaf = await nodeCert(newCa, 'manager-1', 'manager');
  t.deepEqual(await pinnedCaMatches(token, [rotatedLeaf, crossSignedPem, ca.certPem]), { ok: true });
});
