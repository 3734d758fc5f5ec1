// Root CA rotation: the pure decisions (control-plane/ca/rotation.ts) and the chain a node presents
// (node-ca-service.ts chainOf), with real roots, a real cross-signed certificate and real node
// certificates. Each chain is checked three ways: Tessera's verifier (verify.ts), the join-token pin
// (common/identity), and OpenSSL itself in a TLS handshake on 127.0.0.1, which is what production
// connections go through.
import test from 'ava';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';

import { caDigest } from '../../common/identity/certificate.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { generateJoinSecret, hashJoinSecret, pinnedCaMatches } from '../../common/identity/join-token.js';
import { IdentityError, splitPemCertificates } from '../../common/identity/x509.js';
import { type ClusterMeta, type IssuedRecord, parseClusterMeta } from '../../control-plane/ca/cluster-meta.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import { chainOf } from '../../control-plane/ca/node-ca-service.js';
import { type CaMaterial, createRootCA, startRootRotation } from '../../control-plane/ca/root-ca.js';
import { completedRotation, presentedRootPem, rotationProgress, signingRootPem, startedRotation } from '../../control-plane/ca/rotation.js';
import { verifyChain } from '../helpers/verify-chain.js';

const CLUSTER = 'cluster-r';
const HOUR = 60 * 60 * 1000;

interface Leaf {
  certPem: string;
  keyPem: string;
}

interface Fixture {
  oldCa: CaMaterial;
  newCa: CaMaterial;
  crossSignedPem: string;
  /** The cluster before the rotation, during it, and after it completed. */
  before: ClusterMeta;
  during: ClusterMeta;
  after: ClusterMeta;
  freshHashes: ClusterMeta['tokenHashes'];
  startedAt: Date;
  /** Node certificates from the old and from the new root. */
  oldLeaf: Leaf;
  newLeaf: Leaf;
  /** A second pair for the other end of a TLS handshake. */
  oldPeer: Leaf;
  newPeer: Leaf;
}

const hashes = (): ClusterMeta['tokenHashes'] => ({ worker: hashJoinSecret(generateJoinSecret()), manager: hashJoinSecret(generateJoinSecret()) });

async function leafFrom(ca: CaMaterial, nodeId: string): Promise<Leaf> {
  const keys = await generateKeyPair();
  const certPem = await issueNodeCertificate(ca, await createCsr(keys, { commonNameHint: nodeId }), { nodeId, role: 'manager', clusterId: CLUSTER });
  return { certPem, keyPem: keys.keyPem };
}

async function makeFixture(): Promise<Fixture> {
  const oldCa = await createRootCA({ clusterId: CLUSTER });
  const { newCa, crossSignedPem } = await startRootRotation(oldCa);
  const before: ClusterMeta = { clusterId: CLUSTER, trustedRootPems: [oldCa.certPem], tokenHashes: hashes(), nodeCertValidityMs: HOUR };
  const startedAt = new Date('2030-01-02T03:04:05.000Z');
  const during = startedRotation(before, newCa.certPem, crossSignedPem, startedAt);
  const freshHashes = hashes();
  const after = completedRotation(during, freshHashes);
  const [oldLeaf, newLeaf, oldPeer, newPeer] = await Promise.all([
    leafFrom(oldCa, 'node-old'),
    leafFrom(newCa, 'node-new'),
    leafFrom(oldCa, 'peer-old'),
    leafFrom(newCa, 'peer-new'),
  ]);
  return { oldCa, newCa, crossSignedPem, before, during, after, freshHashes, startedAt, oldLeaf, newLeaf, oldPeer, newPeer };
}

let fixture: Promise<Fixture> | undefined;
/** Made once for the file: key generation and signing are the slow part. */
const shared = (): Promise<Fixture> => (fixture ??= makeFixture());

const split = (chainPem: string): string[] => splitPemCertificates('chain', chainPem);

async function verifiesAgainst(chainPem: string, roots: readonly string[]): Promise<string> {
  const [leaf, ...rest] = split(chainPem);
  const identity = await verifyChain(leaf ?? '', rest, roots, new Date(), { clusterId: CLUSTER });
  if (identity.kind !== 'node') throw new Error(`expected a node identity, got ${identity.kind}`);
  return identity.nodeId;
}

test('signingRootPem and presentedRootPem before, during and after a rotation', async (t) => {
  const { oldCa, newCa, crossSignedPem, before, during, after, startedAt } = await shared();
  t.is(signingRootPem(before), oldCa.certPem);
  t.is(presentedRootPem(before), oldCa.certPem);

  t.deepEqual(during.trustedRootPems, [oldCa.certPem, newCa.certPem], 'both roots are trusted during the rotation, the old one first');
  t.deepEqual(during.rotation, { newRootPem: newCa.certPem, crossSignedPem, startedAt: startedAt.toISOString() });
  t.is(signingRootPem(during), newCa.certPem, 'new certificates come from the new root');
  t.is(presentedRootPem(during), oldCa.certPem, 'the chain still ends in the old root, which join tokens pin');
  t.deepEqual(during.tokenHashes, before.tokenHashes, 'starting a rotation keeps the join tokens');

  t.is(signingRootPem(after), newCa.certPem);
  t.is(presentedRootPem(after), newCa.certPem);
  // Every state is one the store accepts back.
  for (const meta of [before, during, after]) t.deepEqual(parseClusterMeta(JSON.stringify(meta)), meta);
});

test('startedRotation refuses a second rotation; completedRotation refuses when none runs; neither changes its input', async (t) => {
  const { oldCa, newCa, crossSignedPem, before, during } = await shared();
  const duringCopy = structuredClone(during);
  const beforeCopy = structuredClone(before);
  t.throws(() => startedRotation(during, oldCa.certPem, crossSignedPem, new Date()), { message: /already in progress/ });
  t.throws(() => completedRotation(before, hashes()), { message: /no root CA rotation is in progress/ });
  startedRotation(before, newCa.certPem, crossSignedPem, new Date());
  completedRotation(during, hashes());
  t.deepEqual(during, duringCopy);
  t.deepEqual(before, beforeCopy);
});

test('rotationProgress counts each node by the root digest of its newest issued record', async (t) => {
  const { oldCa, newCa, during } = await shared();
  const oldDigest = caDigest(oldCa.certPem);
  const newDigest = caDigest(newCa.certPem);
  const record = (serial: string, rootDigest?: string): IssuedRecord => ({
    serial,
    notAfter: new Date(Date.now() + HOUR).toISOString(),
    ...(rootDigest ? { rootDigest } : {}),
  });
  const issued = new Map<string, IssuedRecord[]>([
    ['node-c', [record('01', oldDigest), record('02', newDigest)]],
    ['node-a', [record('03', newDigest)]],
    ['node-b', [record('04', newDigest), record('05', oldDigest)]],
    ['node-e', []],
    ['node-d', [record('06')]],
    ['node-f', [record('07', oldDigest)]],
  ]);
  t.deepEqual(rotationProgress(during, issued), { done: ['node-a', 'node-c'], waiting: ['node-b', 'node-d', 'node-e', 'node-f'] });
  t.deepEqual(rotationProgress(during, new Map()), { done: [], waiting: [] });
});

test('completedRotation trusts only the new root, replaces the token hashes and ends the rotation', async (t) => {
  const { newCa, during, after, freshHashes } = await shared();
  t.deepEqual(after.trustedRootPems, [newCa.certPem]);
  t.deepEqual(after.tokenHashes, freshHashes);
  t.notDeepEqual(after.tokenHashes, during.tokenHashes);
  t.false('rotation' in after);
  t.is(after.clusterId, during.clusterId);
  t.is(after.nodeCertValidityMs, during.nodeCertValidityMs);
});

test('chainOf: leaf + root normally; during a rotation leaf + cross-signed + old root for the new root, leaf + old root for the old one', async (t) => {
  const { oldCa, newCa, crossSignedPem, before, during, after, oldLeaf, newLeaf } = await shared();
  t.deepEqual(split(chainOf(before, oldLeaf.certPem, oldCa.certPem)), [oldLeaf.certPem, oldCa.certPem]);
  t.deepEqual(split(chainOf(during, newLeaf.certPem, newCa.certPem)), [newLeaf.certPem, crossSignedPem, oldCa.certPem]);
  t.deepEqual(split(chainOf(during, oldLeaf.certPem, oldCa.certPem)), [oldLeaf.certPem, oldCa.certPem]);
  t.deepEqual(split(chainOf(after, newLeaf.certPem, newCa.certPem)), [newLeaf.certPem, newCa.certPem]);
});

test('verifyChain: each rotation chain verifies against [old] alone and against [old, new]; after completion a new-root leaf against [new]', async (t) => {
  const { oldCa, newCa, before, during, after, oldLeaf, newLeaf } = await shared();
  const chains = {
    'old leaf before the rotation': chainOf(before, oldLeaf.certPem, oldCa.certPem),
    'new leaf during the rotation': chainOf(during, newLeaf.certPem, newCa.certPem),
    'old leaf during the rotation': chainOf(during, oldLeaf.certPem, oldCa.certPem),
  };
  for (const [what, chain] of Object.entries(chains)) {
    const nodeId = what.startsWith('new') ? 'node-new' : 'node-old';
    t.is(await verifiesAgainst(chain, [oldCa.certPem]), nodeId, `${what} against [old]`);
    t.is(await verifiesAgainst(chain, [oldCa.certPem, newCa.certPem]), nodeId, `${what} against [old, new]`);
  }
  const completed = chainOf(after, newLeaf.certPem, newCa.certPem);
  t.is(await verifiesAgainst(completed, [newCa.certPem]), 'node-new');

  // The controls: without the cross-signed certificate a new leaf is unknown to a node trusting
  // only the old root, and once the rotation completed an old leaf is refused.
  await t.throwsAsync(verifiesAgainst(completed, [oldCa.certPem]), { instanceOf: IdentityError, message: /not a trusted root/ });
  await t.throwsAsync(verifiesAgainst(chains['old leaf during the rotation'], after.trustedRootPems), {
    instanceOf: IdentityError,
    message: /not a trusted root/,
  });
});

test('the join-token pin (common/identity) accepts every chain a manager presents during the rotation: it ends in the old root', async (t) => {
  const { oldCa, newCa, during, after, oldLeaf, newLeaf } = await shared();
  const oldPin = { caDigest: caDigest(oldCa.certPem), secret: generateJoinSecret() };
  t.deepEqual(await pinnedCaMatches(oldPin, split(chainOf(during, newLeaf.certPem, newCa.certPem))), { ok: true });
  t.deepEqual(await pinnedCaMatches(oldPin, split(chainOf(during, oldLeaf.certPem, oldCa.certPem))), { ok: true });
  // After completion the chain ends in the new root: a token of the old root no longer matches.
  const stale = await pinnedCaMatches(oldPin, split(chainOf(after, newLeaf.certPem, newCa.certPem)));
  t.false(stale.ok);
  t.deepEqual(await pinnedCaMatches({ ...oldPin, caDigest: caDigest(newCa.certPem) }, split(chainOf(after, newLeaf.certPem, newCa.certPem))), { ok: true });
});

interface EndOfHandshake {
  authorized: boolean;
  error: string | undefined;
}

function outcome(socket: TLSSocket): EndOfHandshake {
  // Node's types say Error; at run time it is OpenSSL's code as a string (UNABLE_TO_GET_ISSUER_CERT...).
  const error: unknown = socket.authorizationError;
  const reason =
    typeof error === 'string' ? error : error instanceof Error ? error.message : error === undefined || error === null ? undefined : JSON.stringify(error);
  return { authorized: socket.authorized, error: reason };
}

/**
 * One real mutual-TLS handshake on 127.0.0.1. Neither end aborts on a chain it does not accept
 * (rejectUnauthorized: false): each reports what OpenSSL decided about the other's chain.
 */
async function handshake(
  server: { chainPem: string; keyPem: string; trusts: readonly string[] },
  client: { chainPem: string; keyPem: string; trusts: readonly string[] },
): Promise<{ serverSaw: EndOfHandshake; clientSaw: EndOfHandshake }> {
  const tlsServer = createTlsServer({ key: server.keyPem, cert: server.chainPem, ca: [...server.trusts], requestCert: true, rejectUnauthorized: false });
  try {
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
    const { port } = tlsServer.address() as AddressInfo;
    const accepted = once(tlsServer, 'secureConnection') as Promise<[TLSSocket]>;
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      key: client.keyPem,
      cert: client.chainPem,
      ca: [...client.trusts],
      rejectUnauthorized: false,
      // Cluster nodes are checked by subject, not by host name; this test is about the chain.
      checkServerIdentity: () => undefined,
    });
    try {
      await once(socket, 'secureConnect');
      const [serverSide] = await accepted;
      const result = { serverSaw: outcome(serverSide), clientSaw: outcome(socket) };
      serverSide.destroy();
      return result;
    } finally {
      socket.destroy();
    }
  } finally {
    tlsServer.close();
  }
}

test('OpenSSL: a server presenting leaf + cross-signed + old root is accepted by a client trusting only the old root, and by one trusting only the new root', async (t) => {
  const { oldCa, newCa, during, newLeaf, newPeer } = await shared();
  const server = { chainPem: chainOf(during, newLeaf.certPem, newCa.certPem), keyPem: newLeaf.keyPem, trusts: during.trustedRootPems };
  for (const [what, trusts] of [
    ['only the old root', [oldCa.certPem]],
    ['only the new root', [newCa.certPem]],
    ['both roots', [oldCa.certPem, newCa.certPem]],
  ] as const) {
    const client = { chainPem: chainOf(during, newPeer.certPem, newCa.certPem), keyPem: newPeer.keyPem, trusts };
    const { clientSaw, serverSaw } = await handshake(server, client);
    t.deepEqual(clientSaw, { authorized: true, error: undefined }, `client trusting ${what}`);
    t.deepEqual(serverSaw, { authorized: true, error: undefined }, `server trusting both roots, client trusting ${what}`);
  }
});

test('OpenSSL: a client presenting the rotation chain is accepted by a server trusting only the old root', async (t) => {
  const { oldCa, newCa, before, during, oldLeaf, newPeer } = await shared();
  // A node that has not heard of the rotation yet: it serves its old-root chain and trusts the old root alone.
  const server = { chainPem: chainOf(before, oldLeaf.certPem, oldCa.certPem), keyPem: oldLeaf.keyPem, trusts: [oldCa.certPem] };
  const client = { chainPem: chainOf(during, newPeer.certPem, newCa.certPem), keyPem: newPeer.keyPem, trusts: during.trustedRootPems };
  const { clientSaw, serverSaw } = await handshake(server, client);
  t.deepEqual(serverSaw, { authorized: true, error: undefined });
  t.deepEqual(clientSaw, { authorized: true, error: undefined });
});

test('OpenSSL controls: without the cross-signed certificate the old-root-only end refuses; after completion new-root chains pass', async (t) => {
  const { oldCa, newCa, during, after, newLeaf, newPeer, oldLeaf } = await shared();
  const bare = { chainPem: chainOf(after, newLeaf.certPem, newCa.certPem), keyPem: newLeaf.keyPem, trusts: [newCa.certPem] };
  const oldOnly = { chainPem: chainOf(during, oldLeaf.certPem, oldCa.certPem), keyPem: oldLeaf.keyPem, trusts: [oldCa.certPem] };
  const refused = await handshake(bare, oldOnly);
  t.false(refused.clientSaw.authorized, 'a client trusting only the old root refuses leaf + new root');
  t.regex(refused.clientSaw.error ?? '', /^[A-Z_]+$/, 'with the OpenSSL reason');
  t.false(refused.serverSaw.authorized, 'a server trusting only the new root refuses an old-root leaf');

  const completed = await handshake(bare, { chainPem: chainOf(after, newPeer.certPem, newCa.certPem), keyPem: newPeer.keyPem, trusts: after.trustedRootPems });
  t.deepEqual(completed.clientSaw, { authorized: true, error: undefined });
  t.deepEqual(completed.serverSaw, { authorized: true, error: undefined });
});
