// Attacks on the manager's TLS port of a real 3-node cluster (1 manager, 2 workers), each replayed
// as the attacker would and expected to FAIL with a named refusal, leaving the store as it was:
// plaintext, another CA's certificates, a worker's certificate on Raft, forged Raft senders, an
// expired certificate, registration as another node, and a removed (revoked) node coming back.
import test from 'ava';
import { randomUUID, type UUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

import type { Service, Task } from '../../common/resources/types.js';
import { createCsr, generateKeyPair } from '../../common/identity/csr.js';
import { parseJoinToken } from '../../common/identity/join-token.js';
import { clientCredentials } from '../../common/transport/credentials.js';
import { checkExpectedServer } from '../../common/transport/mutual-tls.js';
import { TlsIdentity } from '../../common/transport/tls-identity.js';
import { RaftPeerClient } from '../../control-plane/raft/transport/peer-client.js';
import { CA_KEY, parseCaRecord } from '../../control-plane/ca/ca-record.js';
import type { CaMaterial } from '../../control-plane/ca/root-ca.js';
import { toWire, type WireBatch, type WireMessage } from '../../control-plane/raft/transport/wire.js';
import { encodeCommand } from '../../control-plane/store/mvcc/commands.js';
import { objectKey } from '../../control-plane/store/keys.js';
import type { TesseraClient } from '../../proto/gen/tessera/api/v1/Tessera.js';
import type { JoinTokenResponse__Output } from '../../proto/gen/tessera/api/v1/JoinTokenResponse.js';
import type { ListResponse__Output } from '../../proto/gen/tessera/api/v1/ListResponse.js';
import type { NodeRemoveResponse__Output } from '../../proto/gen/tessera/api/v1/NodeRemoveResponse.js';
import { loadApiPackage } from '../../proto/load.js';
import { testPki } from '../helpers/test-pki.js';
import { eventually } from '../helpers/eventually.js';
import { apiClient, dispatcherClient, dispatcherSession, nodeCaClient, plaintextApiClient, refusalOf, statusName, unary, type Refusal } from './grpc-calls.js';
import { mintNodeIdentity, nodeIdentityFromDisk, type Identity } from './identities.js';
import { auditEntries, nodeObject, readTsdLog, startSecurityCluster, storeFingerprint, type SecurityCluster } from './security-cluster.js';

let cluster: SecurityCluster;
let managerTls: string;
/** node-1's own certificate: a real manager, for reading what the attacks must not have changed. */
let manager: Identity;
let clusterId: string;
let clusterRootPem: string;
const clients: Array<{ close(): void }> = [];

function track<T extends { close(): void }>(client: T): T {
  clients.push(client);
  return client;
}

function service(name: string, spec: Partial<Service['spec']> = {}): string {
  const object: Service = { apiVersion: 'tessera/v1', kind: 'Service', metadata: { name, stack: 'sec' }, spec: { image: 'busybox', replicas: 0, ...spec } };
  return JSON.stringify(object);
}

function applyWith(client: TesseraClient, objectJson: string): Promise<unknown> {
  return unary((options, callback) => client.apply({ objectsJson: [objectJson], dryRun: false, pruneStacks: [] }, options, callback));
}

async function raftRange(prefix: string): Promise<Array<{ key: string; value: string }>> {
  const raft = track(new RaftPeerClient(managerTls, manager.security));
  const { resultJson } = await raft.range(prefix);
  return (JSON.parse(resultJson) as { kvs: Array<{ key: string; value: string }> }).kvs;
}

/** The cluster CA as the store holds it, read over Raft's Range with node-1's manager certificate (a compromised manager). */
async function clusterCaFromStore(): Promise<CaMaterial> {
  const [record] = await raftRange(CA_KEY);
  if (!record) throw new Error(`the store holds no ${CA_KEY}`);
  return parseCaRecord(record.value).current;
}

async function raftTerm(): Promise<number> {
  return (await track(new RaftPeerClient(managerTls, manager.security)).status()).term;
}

/** A heartbeat that, if node-1 took it, would move it to a far higher term (it would step down). */
function disruptiveHeartbeat(from: string, term: number): WireMessage {
  return toWire({ type: 'heartbeat', from, to: 'node-1', term: term + 100, commit: 0, context: '' });
}

test.before(async () => {
  cluster = await startSecurityCluster({ slot: 0, registry: true });
  managerTls = await cluster.tlsAddress();
  manager = await nodeIdentityFromDisk(cluster.node('node-1').dataRoot);
  clusterId = manager.subject.o;
  clusterRootPem = manager.security.identity.material.trustedRootPems[0]!;
});

test.after.always(async () => {
  for (const client of clients) client.close();
  await (cluster as SecurityCluster | undefined)?.destroy();
});

test.serial('1. a plaintext gRPC client on the TLS port is cut off at the handshake; nothing is written', async (t) => {
  const before = await storeFingerprint(cluster.root);
  const plain = track(plaintextApiClient(managerTls));
  const refused = await refusalOf('plaintext Apply', applyWith(plain, service('plain')));
  t.is(refused.codeName, 'UNAVAILABLE', refused.details);
  t.regex(refused.details, /Failed to connect|handshake|Connection dropped/i);
  const list = await refusalOf(
    'plaintext List',
    unary((options, callback) => plain.list({ kind: 'Node', allStacks: true }, options, callback)),
  );
  t.is(list.codeName, 'UNAVAILABLE', list.details);
  t.deepEqual(await storeFingerprint(cluster.root), before);
});

test.serial("2. a client certificate from another CA (or none) is UNAUTHENTICATED, even one that copies the cluster's id and claims admin", async (t) => {
  const before = await storeFingerprint(cluster.root);
  // The attacker trusts the real root (it is public: any handshake shows it) so that the call reaches the server.
  const foreign = async (pkiClusterId: string): Promise<TesseraClient> => {
    const pki = await testPki(pkiClusterId as UUID);
    const admin = await pki.user('mallory', 'admin');
    const identity = new TlsIdentity({ ...admin.identity.material, trustedRootPems: [clusterRootPem] });
    return track(apiClient(managerTls, { mode: 'mtls', identity, expected: { kind: 'cluster-node', clusterId, role: 'manager' } }));
  };
  for (const [label, client] of [
    ['another cluster', await foreign(randomUUID())],
    ['same cluster id', await foreign(clusterId)],
  ] as const) {
    const refused = await refusalOf(`Apply with an admin certificate of another CA (${label})`, applyWith(client, service('foreign')));
    t.is(refused.codeName, 'UNAUTHENTICATED', `${label}: ${refused.details}`);
    t.regex(refused.details, /needs a client certificate from this cluster's CA/, label);
    const list = await refusalOf(
      `List with another CA (${label})`,
      unary((options, callback) => client.list({ kind: 'Secret', allStacks: true }, options, callback)),
    );
    t.is(list.codeName, 'UNAUTHENTICATED', `${label}: ${list.details}`);
  }
  // No certificate at all, over TLS that trusts the real root: only NodeCA.Join is open to it.
  const anonymous = grpc.credentials.createSsl(Buffer.from(clusterRootPem), null, null, {
    checkServerIdentity: (_host, cert) => checkExpectedServer(cert, { kind: 'cluster-node', clusterId, role: 'manager' }),
  });
  const anonymousApply = await refusalOf(
    'Apply without a client certificate',
    applyWith(track(new (loadApiPackage().tessera.api.v1.Tessera)(managerTls, anonymous)), service('anonymous')),
  );
  t.is(anonymousApply.codeName, 'UNAUTHENTICATED', anonymousApply.details);
  const storeKey = await refusalOf(
    'NodeCA.StoreKey without a client certificate',
    unary((options, callback) => track(nodeCaClient(managerTls, anonymous)).storeKey({}, options, callback)),
  );
  t.is(storeKey.codeName, 'UNAUTHENTICATED', storeKey.details);
  t.regex(storeKey.details, /none was presented/);
  t.deepEqual(await storeFingerprint(cluster.root), before);
});

test.serial("3. a worker's certificate (from its certs directory) is refused by Raft, the store key and the API", async (t) => {
  const worker = await nodeIdentityFromDisk(cluster.node('node-2').dataRoot);
  t.is(worker.subject.ou, 'worker');
  const before = await storeFingerprint(cluster.root);
  const raft = track(new RaftPeerClient(managerTls, worker.security));
  const planted = objectKey('Node', '', 'planted-by-worker');
  const put = encodeCommand({
    op: 'txn',
    txn: {
      compare: [],
      success: [{ type: 'put', key: planted, value: JSON.stringify({ kind: 'Node', metadata: { name: 'planted-by-worker' } }) }],
      failure: [],
    },
  });
  const attempts: Array<[string, Promise<unknown>]> = [
    ['Raft Range', raft.range('/tessera/')],
    ['Raft Propose', raft.propose(put)],
    ['Raft Status', raft.status()],
    ['Raft ChangeMembers', raft.changeMembers({ type: 'add-voter', id: 'node-2', address: `${cluster.node('node-2').underlayAddress}:7420` })],
  ];
  for (const [what, call] of attempts) {
    const refused = await refusalOf(`${what} with a worker certificate`, call);
    t.is(refused.codeName, 'PERMISSION_DENIED', `${what}: ${refused.details}`);
    t.regex(refused.details, /node node-2 \(worker\) is not a manager certificate/, what);
  }
  const caClient = track(nodeCaClient(managerTls, clientCredentials(worker.security)));
  const caKey = await refusalOf(
    'NodeCA.StoreKey with a worker certificate',
    unary((options, callback) => caClient.storeKey({}, options, callback)),
  );
  t.is(caKey.codeName, 'PERMISSION_DENIED', caKey.details);
  const api = track(apiClient(managerTls, worker.security));
  const apply = await refusalOf('Apply with a worker certificate', applyWith(api, service('by-worker')));
  t.is(apply.codeName, 'PERMISSION_DENIED', apply.details);
  t.regex(apply.details, /worker node's certificate has no access to the API/);
  t.deepEqual(await storeFingerprint(cluster.root), before);
  t.deepEqual(await raftRange(planted), [], 'the proposed key was not written');
});

/** The forgeries of test 4, made once: both its tests read them. */
let forgeries:
  Promise<{ batch: Refusal; message: Refusal; stream: Refusal | undefined; nonMember: Refusal; termBefore: number; termAfter: number }> | undefined;

function forgeRaftSenders(): NonNullable<typeof forgeries> {
  forgeries ??= (async () => {
    // Manager certificates minted with the CA key a compromised manager's certificate reads from
    // the store: one of the Raft member node-1 (speaking for node-2), one of node-9, which is in no Raft group.
    const ca = await clusterCaFromStore();
    const member = await mintNodeIdentity(ca, { clusterId, nodeId: 'node-1', role: 'manager' });
    const outsider = await mintNodeIdentity(ca, { clusterId, nodeId: 'node-9', role: 'manager' });
    const raft = track(new RaftPeerClient(managerTls, member.security));
    const outsiderRaft = track(new RaftPeerClient(managerTls, outsider.security));
    const termBefore = await raftTerm();
    const batch = (from: string, messageFrom: string): WireBatch => ({
      group: 'tessera',
      from,
      fromAddress: `${cluster.node('node-1').underlayAddress}:7420`,
      messages: [disruptiveHeartbeat(messageFrom, termBefore)],
    });
    const forgedBatch = await refusalOf('Raft Send with from = node-2 under node-1 certificate', raft.send(batch('node-2', 'node-2')));
    const forgedMessage = await refusalOf('Raft Send with a message from node-2 in node-1 batch', raft.send(batch('node-1', 'node-2')));
    const nonMember = await refusalOf('Raft Send from node-9, a manager certificate outside the group', outsiderRaft.send(batch('node-9', 'node-9')));
    // The long-lived stream checks every batch the same way and ends with the reason.
    const streamed = await new Promise<grpc.ServiceError | null>((resolve) => {
      const stream = raft.openStream(resolve);
      stream.write(batch('node-2', 'node-2'));
    });
    const stream = streamed ? { code: streamed.code, codeName: statusName(streamed.code), details: streamed.details } : undefined;
    return { batch: forgedBatch, message: forgedMessage, stream, nonMember, termBefore, termAfter: await raftTerm() };
  })();
  return forgeries;
}

test.serial('4. a manager certificate cannot speak for another Raft member, nor outside the group: forgeries never reach Raft', async (t) => {
  const { batch, message, stream, nonMember, termBefore, termAfter } = await forgeRaftSenders();
  t.regex(batch.details, /raft batch claims to be from node-2, but the caller's certificate is node-1's/);
  t.regex(message.details, /raft message claims to be from node-2, but the caller's certificate is node-1's/);
  t.truthy(stream, 'the stream carrying a forged batch was ended with an error');
  t.regex(stream?.details ?? '', /raft batch claims to be from node-2/);
  t.regex(nonMember.details, /node node-9 is not a member of the Raft group/);
  t.is(termAfter, termBefore, "node-1's term did not move: the forged heartbeats (term +100) never reached Raft");
});

test.serial('4. (code) a forged or outside Raft sender is refused with PERMISSION_DENIED', async (t) => {
  const { batch, message, stream, nonMember } = await forgeRaftSenders();
  t.deepEqual(
    { sendForgedBatch: batch.codeName, sendForgedMessage: message.codeName, streamForgedBatch: stream?.codeName, outsider: nonMember.codeName },
    { sendForgedBatch: 'PERMISSION_DENIED', sendForgedMessage: 'PERMISSION_DENIED', streamForgedBatch: 'PERMISSION_DENIED', outsider: 'PERMISSION_DENIED' },
  );
});

test.serial('10. an expired node certificate from the cluster CA is UNAUTHENTICATED everywhere', async (t) => {
  const ca = await clusterCaFromStore();
  const expired = await mintNodeIdentity(ca, { clusterId, nodeId: 'node-1', role: 'manager', validityMs: 60_000, now: new Date(Date.now() - 2 * 3600_000) });
  t.true(expired.subject.notAfter.getTime() < Date.now(), 'the certificate has expired');
  const before = await storeFingerprint(cluster.root);
  const api = track(apiClient(managerTls, expired.security));
  const list = await refusalOf(
    'List with an expired certificate',
    unary((options, callback) => api.list({ kind: 'Node', allStacks: true }, options, callback)),
  );
  t.is(list.codeName, 'UNAUTHENTICATED', list.details);
  // grpc-js shows the server no certificate that failed to verify, so the refusal cannot say it
  // expired; it must at least not claim that none was presented.
  t.regex(list.details, /needs a client certificate from this cluster's CA \(none was presented, or it did not verify\)/);
  const raft = await refusalOf('Raft Status with an expired certificate', track(new RaftPeerClient(managerTls, expired.security)).status());
  t.is(raft.codeName, 'UNAUTHENTICATED', raft.details);
  const session = await dispatcherSession(track(dispatcherClient(managerTls, expired.security)), [
    { register: { nodeName: 'node-1', description: { hostname: 'node-1' } } },
  ]);
  t.is(session.error?.codeName, 'UNAUTHENTICATED', session.error?.details);
  t.deepEqual(await storeFingerprint(cluster.root), before);
});

test.serial('5a. NodeCA.Join with a valid worker token as an existing node name is ALREADY_EXISTS, and no certificate is issued', async (t) => {
  const { token } = await unary<JoinTokenResponse__Output>((options, callback) => cluster.root.joinToken({ role: 'worker', rotate: true }, options, callback));
  const issuedBefore = await raftRange('/tessera/cluster/issued/node-2');
  const nodeBefore = await nodeObject(cluster.root, 'node-2');
  const credentials = grpc.credentials.createSsl(Buffer.from(clusterRootPem), null, null, {
    checkServerIdentity: (_host, cert) => checkExpectedServer(cert, { kind: 'cluster-node', clusterId, role: 'manager' }),
  });
  const joiner = track(nodeCaClient(managerTls, credentials));
  const keys = await generateKeyPair();
  const csrPem = await createCsr(keys, { commonNameHint: 'node-2' });
  const refused = await refusalOf(
    'Join as node-2',
    unary((options, callback) =>
      joiner.join({ nodeName: 'node-2', tokenSecret: parseJoinToken(token).secret, csrPem, address: `172.31.${cluster.octet}.77` }, options, callback),
    ),
  );
  t.is(refused.codeName, 'ALREADY_EXISTS', refused.details);
  t.regex(refused.details, /a node named node-2 is already a member/);
  t.deepEqual(await raftRange('/tessera/cluster/issued/node-2'), issuedBefore, 'no certificate was recorded for node-2');
  t.deepEqual(await nodeObject(cluster.root, 'node-2'), nodeBefore);
});

test.serial('5b. a Dispatcher session with node-3 certificate registering as node-2 is PERMISSION_DENIED; node-2 is untouched', async (t) => {
  const node3 = await nodeIdentityFromDisk(cluster.node('node-3').dataRoot);
  const before = await nodeObject(cluster.root, 'node-2');
  t.truthy(before);
  const session = await dispatcherSession(track(dispatcherClient(managerTls, node3.security)), [
    {
      register: {
        nodeName: 'node-2',
        description: { hostname: 'node-2', address: `172.31.${cluster.octet}.66`, memoryBytes: 1, nanoCpus: 1, engineLabels: {}, localSubnet: '' },
      },
    },
  ]);
  t.is(session.error?.codeName, 'PERMISSION_DENIED', session.error?.details);
  t.regex(session.error?.details ?? '', /register as node "node-2" refused: the session's certificate is node node-3's/);
  t.deepEqual(session.received, [], 'the manager sent no session info or assignments');
  const after = await nodeObject(cluster.root, 'node-2');
  t.deepEqual(after, before);
  t.is(after?.status.address, cluster.node('node-2').underlayAddress);
});

test.serial('9. a removed node is cut off, its reconnects and calls are refused as revoked, its tasks move', async (t) => {
  const victim = cluster.node('node-3');
  const victimIdentity = await nodeIdentityFromDisk(victim.dataRoot);
  const registry = cluster.registry;
  if (!registry) throw new Error('this file starts its cluster with a registry');
  await applyWith(cluster.root, service('spread', { image: registry.image, command: ['sleep', '100000'], replicas: 3, stopGracePeriodMs: 300 }));
  const tasks = async (): Promise<Task[]> =>
    (
      await unary<ListResponse__Output>((options, callback) => cluster.root.list({ kind: 'Task', stack: 'sec', service: 'spread' }, options, callback))
    ).objectsJson.map((json) => JSON.parse(json) as Task);
  const running = async () => (await tasks()).filter((x) => x.desiredState === 'running' && x.status.state === 'running');
  await eventually('a task of spread running on node-3', async () => (await running()).some((x) => x.nodeName === victim.name), 90_000);

  const removed = await unary<NodeRemoveResponse__Output>((options, callback) =>
    cluster.root.removeNode({ name: victim.name, force: true }, options, callback),
  );
  t.true(removed.revokedSerials.includes(victimIdentity.subject.serial), `node-3's serial ${victimIdentity.subject.serial} is revoked`);

  const victimLog = await eventually(
    "node-3's log: removed, then revoked",
    async () => {
      const log = await readTsdLog(victim);
      return /refused this node: node node-3 was removed from the cluster/.test(log) && /refused this node: .*has been revoked/.test(log) ? log : undefined;
    },
    20_000,
  );
  t.regex(victimLog, new RegExp(`certificate node-3 \\(serial ${victimIdentity.subject.serial}\\) has been revoked`));
  t.regex(await readTsdLog(cluster.node('node-1')), /dispatcher: session refused: certificate node-3 .* has been revoked/);

  const session = await dispatcherSession(track(dispatcherClient(managerTls, victimIdentity.security)), [
    { register: { nodeName: victim.name, description: { hostname: victim.name, address: victim.underlayAddress } } },
  ]);
  t.is(session.error?.codeName, 'UNAUTHENTICATED', session.error?.details);
  t.regex(session.error?.details ?? '', /has been revoked/);
  const caClient = track(nodeCaClient(managerTls, clientCredentials(victimIdentity.security)));
  const keys = await generateKeyPair();
  const renew = await refusalOf(
    'NodeCA.Renew with a revoked certificate',
    unary(async (options, callback) => caClient.renew({ csrPem: await createCsr(keys, { commonNameHint: victim.name }) }, options, callback)),
  );
  t.is(renew.codeName, 'UNAUTHENTICATED', renew.details);
  t.regex(renew.details, /revoked/);

  const revokedApply = await refusalOf(
    'Apply with a revoked certificate',
    applyWith(track(apiClient(managerTls, victimIdentity.security)), service('by-revoked')),
  );
  t.is(revokedApply.codeName, 'UNAUTHENTICATED', revokedApply.details);
  t.regex(revokedApply.details, /certificate node-3 \(serial [0-9a-f]+\) has been revoked/);

  const moved = await eventually(
    '3 spread tasks running on node-1 and node-2',
    async () => {
      const live = await running();
      return live.length === 3 && live.every((x) => x.nodeName !== victim.name) ? live : undefined;
    },
    60_000,
  );
  t.deepEqual(
    [...new Set(moved.map((x) => x.nodeName ?? '-'))].sort((a, b) => a.localeCompare(b)),
    ['node-1', 'node-2'],
  );
  t.is(await nodeObject(cluster.root, victim.name), undefined, 'the Node object is gone');
});

test.serial('audit: the refused and the admitted changes of this file are in the audit log, with who and the result', async (t) => {
  const entries = await auditEntries(cluster.root);
  const workerApply = entries.find((e) => e.entry.method === 'Apply' && e.entry.caller === 'node:node-2 (worker)');
  t.truthy(workerApply, "the worker certificate's Apply is audited");
  t.like(workerApply?.entry, { objects: [{ kind: 'Service', stack: 'sec', name: 'by-worker' }], result: { ok: false, code: 'PERMISSION_DENIED' } });
  t.regex(workerApply?.entry.certificateSerial ?? '', /^[0-9a-f]+$/);
  t.like(entries.find((e) => e.entry.method === 'RemoveNode')?.entry, {
    caller: 'local:root',
    objects: [{ kind: 'Node', name: 'node-3' }],
    result: { ok: true },
  });
  t.true(
    entries.some((e) => e.entry.method === 'JoinToken' && e.entry.caller === 'local:root' && e.entry.result.ok),
    'the token rotation is audited',
  );
});

// Changes refused at authentication are audited as unauthenticated: with another CA's certificate
// the call is stopped at its headers (control-plane/auth/door.ts), so the entry names the method and
// the peer but no objects (the request is never read); with a revoked certificate the API guard
// has the request and the certificate's subject.
test.serial('audit: changes refused at authentication (another CA, revoked) are recorded too', async (t) => {
  const unauthenticated = (await auditEntries(cluster.root)).filter((e) => e.entry.result.ok === false && e.entry.result.code === 'UNAUTHENTICATED');
  t.true(
    unauthenticated.some((e) => e.entry.method === 'Apply' && e.entry.caller.startsWith('unauthenticated: no verified certificate')),
    "the Apply with another CA's admin certificate (test 2) is audited",
  );
  t.true(
    unauthenticated.some((e) => e.entry.method === 'Apply' && e.entry.objects.some((o) => o.name === 'by-revoked')),
    "the Apply with node-3's revoked certificate (test 9) is audited",
  );
  t.true(
    unauthenticated.some((e) => e.entry.caller.startsWith('unauthenticated: CN=node-3') && e.entry.certificateSerial !== undefined),
    'the revoked certificate is named by subject and serial',
  );
});
