// What the cluster CA and mutual TLS cost (issue 14's foundation), medians over ROUNDS samples:
// - creating a root CA; a node key pair + CSR; issuing a node certificate from a CSR (with the CA
//   material as stored, which imports the key each time, and with the CA loaded once); verifyChain;
// - one mutual-TLS handshake over loopback with a bare Node TLS socket (connect to secureConnect);
// - a new grpc-js channel and its first unary call, over mutual TLS and over plaintext, whose
//   difference is what TLS adds to a node's first call.
// Run: npx tsx test/bench/ca.ts (BENCH_ROUNDS=N to change the sample count). Loopback only; the
// machine is shared and noisy, so compare only numbers of one run.
import * as grpc from '@grpc/grpc-js';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect, createServer as createTlsServer } from 'node:tls';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { joinPem } from '../../common/identity/x509.js';
import type { TlsMaterial } from '../../common/transport/tls-identity.js';
import { mutualTlsClientCredentials, mutualTlsServerCredentials } from '../helpers/handshake-tls.js';
import { issueNodeCertificate } from '../../control-plane/ca/issue.js';
import { createRootCA, loadCa, type CaMaterial } from '../../control-plane/ca/root-ca.js';
import { verifyChain } from '../helpers/verify-chain.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 50);
const CLUSTER = 'bench';
const PATH = '/tessera.bench.Echo/Echo';

async function timeMs(rounds: number, step: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await step();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

async function nodeMaterial(ca: CaMaterial, nodeId: string): Promise<TlsMaterial> {
  const keys = await generateKeyPair();
  const certChainPem = await issueNodeCertificate(ca, await createCsr(keys, { commonNameHint: nodeId }), { nodeId, role: 'manager', clusterId: CLUSTER });
  return { trustedRootPems: [ca.certPem], certChainPem, keyPem: keys.keyPem };
}

async function bareHandshakeMs(server: TlsMaterial, client: TlsMaterial): Promise<number> {
  const tlsServer = createTlsServer({
    ca: joinPem(server.trustedRootPems),
    cert: server.certChainPem,
    key: server.keyPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  tlsServer.on('secureConnection', (socket) => socket.end());
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const { port } = tlsServer.address() as AddressInfo;
  const ms = await timeMs(ROUNDS, () => {
    return new Promise<void>((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca: joinPem(client.trustedRootPems),
        cert: client.certChainPem,
        key: client.keyPem,
        checkServerIdentity: () => undefined,
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', reject);
    });
  });
  await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
  return ms;
}

async function firstCallMs(serverCredentials: grpc.ServerCredentials, clientCredentials: () => grpc.ChannelCredentials): Promise<number> {
  const server = new grpc.Server();
  server.addService(
    {
      echo: {
        path: PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (v: Buffer) => v,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (v: Buffer) => v,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    { echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  const ms = await timeMs(ROUNDS, () => {
    // A fresh channel each round, so each sample includes TCP connect, the handshake and HTTP/2 setup.
    const client = new grpc.Client(`127.0.0.1:${port}`, clientCredentials());
    return new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest(
        PATH,
        (v: Buffer) => v,
        (b: Buffer) => b,
        Buffer.from('x'),
        (err) => {
          client.close();
          if (err) reject(err);
          else resolve();
        },
      );
    });
  });
  server.forceShutdown();
  return ms;
}

const ca = await createRootCA({ clusterId: CLUSTER });
const loaded = await loadCa(ca);
const keys = await generateKeyPair();
const csr = await createCsr(keys, { commonNameHint: 'n' });
const leaf = await issueNodeCertificate(loaded, csr, { nodeId: 'node-1', role: 'worker', clusterId: CLUSTER });
const serverMaterial = await nodeMaterial(ca, 'manager-1');
const clientMaterial = await nodeMaterial(ca, 'worker-1');

const rows: [string, number][] = [
  ['create root CA', await timeMs(Math.min(ROUNDS, 20), () => createRootCA({ clusterId: CLUSTER }))],
  ['node key pair + CSR', await timeMs(ROUNDS, async () => createCsr(await generateKeyPair(), { commonNameHint: 'n' }))],
  [
    'issue node cert (CA material, key imported per call)',
    await timeMs(ROUNDS, () => issueNodeCertificate(ca, csr, { nodeId: 'node-1', role: 'worker', clusterId: CLUSTER })),
  ],
  ['issue node cert (CA loaded once)', await timeMs(ROUNDS, () => issueNodeCertificate(loaded, csr, { nodeId: 'node-1', role: 'worker', clusterId: CLUSTER }))],
  ['verifyChain (leaf -> root)', await timeMs(ROUNDS, () => verifyChain(leaf, [], [ca.certPem]))],
  ['mutual TLS handshake, bare Node socket', await bareHandshakeMs(serverMaterial, clientMaterial)],
  [
    'new grpc channel + first call, mutual TLS',
    await firstCallMs(mutualTlsServerCredentials(serverMaterial), () =>
      mutualTlsClientCredentials(clientMaterial, { kind: 'cluster-node', clusterId: CLUSTER }),
    ),
  ],
  ['new grpc channel + first call, plaintext', await firstCallMs(grpc.ServerCredentials.createInsecure(), () => grpc.credentials.createInsecure())],
];
console.log(`cluster CA and mutual TLS, median of ${ROUNDS} (root CA: of ${Math.min(ROUNDS, 20)}), node ${process.version}`);
for (const [name, ms] of rows) console.log(`  ${name.padEnd(56)} ${ms.toFixed(2).padStart(8)} ms`);
