// Mutual TLS between real grpc-js servers and clients on 127.0.0.1, with certificates from our CA:
// who gets through, who does not, and what identity the server reads from the peer certificate.
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import type { AddressInfo } from 'node:net';
import { connect, createServer as createTlsServer } from 'node:tls';
import type { CertificateSubject } from '../../common/identity/certificate.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { joinPem } from '../../common/identity/x509.js';
import { type ExpectedServer, peerIdentity } from '../../common/transport/mutual-tls.js';
import type { TlsMaterial } from '../../common/transport/tls-identity.js';
import { mutualTlsClientCredentials, mutualTlsServerCredentials } from '../helpers/handshake-tls.js';
import { issueNodeCertificate, issueUserCertificate } from '../../control-plane/ca/issue.js';
import { type CaMaterial, createRootCA, startRootRotation } from '../../control-plane/ca/root-ca.js';

const CLUSTER = 'cluster-a';
const DAY = 24 * 60 * 60 * 1000;
const WHO_AM_I = '/tessera.test.Identity/WhoAmI';
const MANAGER: ExpectedServer = { kind: 'cluster-node', clusterId: CLUSTER, role: 'manager' };

/** One unary method that answers with the caller's certificate subject, as the server read it. */
const identityService: grpc.ServiceDefinition = {
  whoAmI: {
    path: WHO_AM_I,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: string) => Buffer.from(value),
    responseDeserialize: (bytes: Buffer) => bytes.toString(),
  },
};

interface Identity extends TlsMaterial {
  caCertPem: string;
}

async function nodeIdentity(
  ca: CaMaterial,
  nodeId: string,
  role: 'manager' | 'worker',
  options: { now?: Date; validityMs?: number; ips?: string[] } = {},
): Promise<Identity> {
  const keys = await generateKeyPair();
  const certPem = await issueNodeCertificate(ca, await createCsr(keys, { commonNameHint: nodeId }), { nodeId, role, clusterId: CLUSTER, ...options });
  return { trustedRootPems: [ca.certPem], certChainPem: certPem, keyPem: keys.keyPem, caCertPem: ca.certPem };
}

interface RunningServer {
  address: string;
  /** How many calls reached the handler: a refused client must leave this unchanged. */
  calls: number;
}

async function startServer(t: ExecutionContext, material: TlsMaterial): Promise<RunningServer> {
  const server = new grpc.Server();
  const running: RunningServer = { address: '', calls: 0 };
  server.addService(identityService, {
    whoAmI: (call: grpc.ServerUnaryCall<Buffer, string>, callback: grpc.sendUnaryData<string>) => {
      running.calls++;
      try {
        callback(null, JSON.stringify(peerIdentity(call)));
      } catch (err) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: (err as Error).message });
      }
    },
  });
  t.teardown(() => server.forceShutdown());
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', mutualTlsServerCredentials(material), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  running.address = `127.0.0.1:${port}`;
  return running;
}

function callWhoAmI(t: ExecutionContext, address: string, credentials: grpc.ChannelCredentials): Promise<CertificateSubject> {
  const client = new grpc.Client(address, credentials);
  t.teardown(() => client.close());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      WHO_AM_I,
      (value: Buffer) => value,
      (bytes: Buffer) => bytes.toString(),
      Buffer.alloc(0),
      { deadline: Date.now() + 10_000 },
      (err, reply) => {
        if (err) reject(err);
        else if (reply === undefined) reject(new Error('no reply'));
        else resolve(JSON.parse(reply) as CertificateSubject);
      },
    );
  });
}

async function refused(t: ExecutionContext, server: RunningServer, credentials: grpc.ChannelCredentials, why: string): Promise<grpc.ServiceError> {
  const before = server.calls;
  const err = (await t.throwsAsync(callWhoAmI(t, server.address, credentials))) as grpc.ServiceError;
  t.is(err.code, grpc.status.UNAVAILABLE, `${why}: ${err.message}`);
  t.is(server.calls, before, `${why}: the handler was never reached`);
  t.log(`${why}: ${err.details}`);
  return err;
}

/**
 * Why OpenSSL refuses a client certificate. grpc-js reports only "Failed to connect" to the client,
 * and a Node TLS server that rejects a certificate hangs up without saying why, so this probe
 * verifies the certificate against the same roots as the grpc-js server but keeps the connection
 * open (rejectUnauthorized false) to read OpenSSL's verification result from the socket.
 */
async function serverVerdict(t: ExecutionContext, serverMaterial: TlsMaterial, client: TlsMaterial): Promise<string> {
  const server = createTlsServer({
    ca: joinPem(serverMaterial.trustedRootPems),
    cert: serverMaterial.certChainPem,
    key: serverMaterial.keyPem,
    requestCert: true,
    rejectUnauthorized: false,
  });
  t.teardown(() => server.close());
  const verdict = new Promise<string>((resolve) => {
    server.once('secureConnection', (socket) => {
      socket.destroy();
      resolve(socket.authorized ? 'authorized' : String(socket.authorizationError));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  // The probe client accepts any server: only the server's judgement of the client is wanted here.
  const socket = connect({ host: '127.0.0.1', port, cert: client.certChainPem, key: client.keyPem, rejectUnauthorized: false });
  t.teardown(() => socket.destroy());
  socket.resume();
  // The connection ends either way; the client-side error is the server hanging up, not the reason.
  socket.on('error', () => undefined);
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('no verdict within 5 s'), 5000).unref());
  return Promise.race([verdict, timeout]);
}

let caPromise: Promise<CaMaterial> | undefined;
const sharedCa = (): Promise<CaMaterial> => (caPromise ??= createRootCA({ clusterId: CLUSTER }));

test('a node certificate from our CA gets through, and the server reads CN/OU/O from the peer certificate', async (t) => {
  const ca = await sharedCa();
  const server = await startServer(t, await nodeIdentity(ca, 'manager-1', 'manager'));
  const worker = await nodeIdentity(ca, 'worker-2', 'worker');
  const seen = await callWhoAmI(t, server.address, mutualTlsClientCredentials(worker, MANAGER));
  t.like(seen, { cn: 'worker-2', ou: 'worker', o: CLUSTER });
  t.is(server.calls, 1);
});

test('a user certificate authenticates as the user; the host-name check works with an IP SAN', async (t) => {
  const ca = await sharedCa();
  const server = await startServer(t, await nodeIdentity(ca, 'manager-1', 'manager', { ips: ['127.0.0.1'] }));
  const keys = await generateKeyPair();
  const certPem = await issueUserCertificate(ca, await createCsr(keys, { commonNameHint: 'alice' }), { name: 'alice', role: 'admin', clusterId: CLUSTER });
  const alice: TlsMaterial = { trustedRootPems: [ca.certPem], certChainPem: certPem, keyPem: keys.keyPem };
  t.like(await callWhoAmI(t, server.address, mutualTlsClientCredentials(alice, { kind: 'hostname' })), { cn: 'alice', ou: 'admin', o: CLUSTER });
});

test('refused before the handler: plaintext, TLS without a client certificate, a certificate of another CA, an expired certificate', async (t) => {
  const ca = await sharedCa();
  const serverMaterial = await nodeIdentity(ca, 'manager-1', 'manager');
  const server = await startServer(t, serverMaterial);

  await refused(t, server, grpc.credentials.createInsecure(), 'plaintext client');
  // This client accepts the server (no host-name check), so only the server can refuse it.
  await refused(
    t,
    server,
    grpc.credentials.createSsl(Buffer.from(ca.certPem), null, null, { checkServerIdentity: () => undefined }),
    'TLS client without a certificate',
  );

  // Same cluster id, same node name, but a different root: the impostor case.
  const otherCa = await createRootCA({ clusterId: CLUSTER });
  const impostor = await nodeIdentity(otherCa, 'worker-2', 'worker');
  await refused(t, server, mutualTlsClientCredentials({ ...impostor, trustedRootPems: [ca.certPem] }, MANAGER), 'client certificate from another CA');
  t.is(await serverVerdict(t, serverMaterial, impostor), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'OpenSSL finds no trusted issuer for it');

  // Issued two days ago for one day: expired a day ago by the CA's own clock.
  const expired = await nodeIdentity(ca, 'worker-3', 'worker', { now: new Date(Date.now() - 2 * DAY), validityMs: DAY });
  await refused(t, server, mutualTlsClientCredentials(expired, MANAGER), 'expired client certificate');
  t.is(await serverVerdict(t, serverMaterial, expired), 'CERT_HAS_EXPIRED');

  const good = await nodeIdentity(ca, 'worker-4', 'worker');
  t.like(await callWhoAmI(t, server.address, mutualTlsClientCredentials(good, MANAGER)), { cn: 'worker-4' }, 'the server still serves good clients');
  t.is(await serverVerdict(t, serverMaterial, good), 'authorized', 'the probe tells acceptance from refusal');
});

test('the client refuses a server that is not the node it expects, or that a CA it does not trust signed', async (t) => {
  const ca = await sharedCa();
  const worker = await nodeIdentity(ca, 'worker-5', 'worker');
  const server = await startServer(t, worker);
  const client = await nodeIdentity(ca, 'worker-6', 'worker');
  const asManager = await refused(t, server, mutualTlsClientCredentials(client, MANAGER), 'server is a worker, client expects a manager');
  t.regex(asManager.details, /server worker-5 is a worker, expected a manager/);
  const otherCluster = await refused(
    t,
    server,
    mutualTlsClientCredentials(client, { kind: 'cluster-node', clusterId: 'cluster-b' }),
    'server of another cluster',
  );
  t.regex(otherCluster.details, /belongs to cluster cluster-a, expected cluster-b/);
  t.like(await callWhoAmI(t, server.address, mutualTlsClientCredentials(client, { kind: 'cluster-node', clusterId: CLUSTER, nodeId: 'worker-5' })), {
    cn: 'worker-6',
  });

  const otherCa = await createRootCA({ clusterId: CLUSTER });
  await refused(
    t,
    server,
    mutualTlsClientCredentials({ ...client, trustedRootPems: [otherCa.certPem] }, { kind: 'cluster-node', clusterId: CLUSTER }),
    'server of an untrusted CA',
  );
});

test('CA rotation over real TLS: OpenSSL accepts leaf + cross-signed root against the OLD root, both ways', async (t) => {
  const oldCa = await createRootCA({ clusterId: CLUSTER });
  const { newCa, crossSignedPem } = await startRootRotation(oldCa);
  const oldOnly = await nodeIdentity(oldCa, 'manager-1', 'manager');
  const rotated = await nodeIdentity(newCa, 'worker-7', 'worker');
  const rotatedWithCross: TlsMaterial = {
    ...rotated,
    certChainPem: joinPem([rotated.certChainPem, crossSignedPem]),
    trustedRootPems: [oldCa.certPem, newCa.certPem],
  };

  // A server that still trusts only the old root, and a client already on the new CA.
  const oldServer = await startServer(t, oldOnly);
  t.like(await callWhoAmI(t, oldServer.address, mutualTlsClientCredentials(rotatedWithCross, MANAGER)), { cn: 'worker-7', ou: 'worker' });
  await refused(
    t,
    oldServer,
    mutualTlsClientCredentials({ ...rotated, trustedRootPems: [oldCa.certPem, newCa.certPem] }, MANAGER),
    'new-CA leaf without the cross-signed root',
  );

  // A server already on the new CA, and a client that trusts only the old root.
  const newManager = await nodeIdentity(newCa, 'manager-2', 'manager');
  const newServer = await startServer(t, {
    ...newManager,
    certChainPem: joinPem([newManager.certChainPem, crossSignedPem]),
    trustedRootPems: [oldCa.certPem, newCa.certPem],
  });
  t.like(await callWhoAmI(t, newServer.address, mutualTlsClientCredentials(oldOnly, MANAGER)), { cn: 'manager-1', ou: 'manager' });
});
