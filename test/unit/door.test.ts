// The first check on tsd's TLS port (control-plane/auth/door.ts): a real grpc-js server on
// 127.0.0.1 with mutual-TLS credentials from a test CA, the door as its interceptor, and the real
// NodeCA and Dispatcher service definitions with handlers that only record that they were reached.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';

import { channelOptions, clientCredentials, serverCredentials, type TransportSecurity } from '../../common/transport/credentials.js';
import { checkExpectedServer, type HasAuthContext, peerIdentity } from '../../common/transport/mutual-tls.js';
import { TlsIdentity } from '../../common/transport/tls-identity.js';
import { shutdownServer } from '../../control-plane/api/grpc-server.js';
import { certificateRequiredAtTheDoor, JOIN_METHOD } from '../../control-plane/auth/door.js';
import type { NodeCAClient, NodeCAHandlers } from '../../proto/gen/tessera/dispatcher/v1/NodeCA.js';
import type { DispatcherClient, DispatcherHandlers } from '../../proto/gen/tessera/dispatcher/v1/Dispatcher.js';
import type { IssuedCertificate__Output } from '../../proto/gen/tessera/dispatcher/v1/IssuedCertificate.js';
import { loadDispatcherPackage } from '../../proto/load.js';
import { testPki, type TestPki } from '../helpers/test-pki.js';
import { dispatcherSession, refusalOf, unary } from '../security/grpc-calls.js';

const RENEW_METHOD = '/tessera.dispatcher.v1.NodeCA/Renew';
const SESSION_METHOD = '/tessera.dispatcher.v1.Dispatcher/Session';

interface Refused {
  path: string;
  peer: string;
  reason: string;
}

interface Door {
  address: string;
  pki: TestPki;
  /** Method paths whose handler ran, with the caller's certificate CN when it had one. */
  reached: Array<{ path: string; caller: string }>;
  refused: Refused[];
}

function callerOf(call: HasAuthContext): string {
  try {
    return peerIdentity(call).cn;
  } catch {
    // No certificate: the join path; recorded as such.
    return '(none)';
  }
}

async function startDoor(t: { teardown(fn: () => Promise<void>): void }): Promise<Door> {
  const pki = await testPki();
  const manager = await pki.node('manager-1', 'manager');
  const reached: Door['reached'] = [];
  const refused: Refused[] = [];
  const answer = (caller: string): IssuedCertificate__Output => ({
    certChainPem: '',
    trustedRootPems: [],
    clusterId: pki.clusterId,
    role: 'worker',
    nodeId: caller,
  });
  const nodeCa: NodeCAHandlers = {
    Join: (call, callback) => {
      reached.push({ path: JOIN_METHOD, caller: callerOf(call) });
      callback(null, answer(callerOf(call)));
    },
    Renew: (call, callback) => {
      reached.push({ path: RENEW_METHOD, caller: callerOf(call) });
      callback(null, answer(callerOf(call)));
    },
    StoreKey: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'not in this test' }),
  };
  const dispatcher: DispatcherHandlers = {
    Session: (call) => {
      reached.push({ path: SESSION_METHOD, caller: callerOf(call) });
      call.end();
    },
  };
  const server = new grpc.Server({ interceptors: [certificateRequiredAtTheDoor((path, peer, reason) => refused.push({ path, peer, reason }))] });
  const pkg = loadDispatcherPackage().tessera.dispatcher.v1;
  server.addService(pkg.NodeCA.service, nodeCa);
  server.addService(pkg.Dispatcher.service, dispatcher);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(manager), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  t.teardown(() => shutdownServer(server));
  return { address: `127.0.0.1:${port}`, pki, reached, refused };
}

interface Clients {
  nodeCa: NodeCAClient;
  dispatcher: DispatcherClient;
}

function clientsOf(t: { teardown(fn: () => void): void }, door: Door, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): Clients {
  const pkg = loadDispatcherPackage().tessera.dispatcher.v1;
  const clients = { nodeCa: new pkg.NodeCA(door.address, credentials, options), dispatcher: new pkg.Dispatcher(door.address, credentials, options) };
  t.teardown(() => {
    clients.nodeCa.close();
    clients.dispatcher.close();
  });
  return clients;
}

/** A joining node: TLS that checks the manager, and no client certificate. */
function withoutCertificate(t: { teardown(fn: () => void): void }, door: Door): Clients {
  const credentials = grpc.credentials.createSsl(Buffer.from(door.pki.ca.certPem), null, null, {
    checkServerIdentity: (_host, cert) => checkExpectedServer(cert, { kind: 'cluster-node', clusterId: door.pki.clusterId, role: 'manager' }),
  });
  return clientsOf(t, door, credentials, { 'grpc.ssl_target_name_override': 'tessera-manager' });
}

function withSecurity(t: { teardown(fn: () => void): void }, door: Door, security: TransportSecurity): Clients {
  return clientsOf(t, door, clientCredentials(security), channelOptions(security));
}

const renew = (clients: Clients) => unary<IssuedCertificate__Output>((options, callback) => clients.nodeCa.renew({ csrPem: 'unused' }, options, callback));
const join = (clients: Clients) =>
  unary<IssuedCertificate__Output>((options, callback) =>
    clients.nodeCa.join({ nodeName: 'node-9', tokenSecret: '', csrPem: '', address: '' }, options, callback),
  );

test('a call with a valid client certificate of the cluster reaches its handler', async (t) => {
  const door = await startDoor(t);
  const clients = withSecurity(t, door, await door.pki.node('worker-1', 'worker'));
  t.is((await renew(clients)).nodeId, 'worker-1');
  const session = await dispatcherSession(clients.dispatcher, [], 5000);
  t.is(session.error, undefined);
  t.deepEqual(door.reached, [
    { path: RENEW_METHOD, caller: 'worker-1' },
    { path: SESSION_METHOD, caller: 'worker-1' },
  ]);
  t.deepEqual(door.refused, []);
});

test('a call without a client certificate is UNAUTHENTICATED without reaching its handler; onRefused hears the path and the peer', async (t) => {
  const door = await startDoor(t);
  const clients = withoutCertificate(t, door);
  const refusal = await refusalOf('Renew without a certificate', renew(clients));
  t.is(refusal.codeName, 'UNAUTHENTICATED');
  t.regex(refusal.details, new RegExp(`^${RENEW_METHOD} needs a client certificate`));

  const session = await dispatcherSession(clients.dispatcher, [], 5000);
  t.is(session.error?.codeName, 'UNAUTHENTICATED', 'a streaming call is stopped at the door too');

  t.deepEqual(door.reached, [], 'no handler ran');
  t.deepEqual(
    door.refused.map((r) => r.path),
    [RENEW_METHOD, SESSION_METHOD],
  );
  for (const refused of door.refused) {
    t.regex(refused.peer, /^(ipv4:)?127\.0\.0\.1:\d+$/, 'the peer is the caller address');
    t.true(refused.reason.startsWith(`${refused.path} needs a client certificate`), refused.reason);
  }
});

test("a certificate of another cluster's CA does not verify and is refused the same way", async (t) => {
  const door = await startDoor(t);
  const intruder = await (await testPki()).node('worker-1', 'worker');
  // The intruder trusts the real manager (so its side of the handshake succeeds) and presents its own CA's certificate.
  const identity = new TlsIdentity({ ...intruder.identity.material, trustedRootPems: [door.pki.ca.certPem] });
  const clients = withSecurity(t, door, { mode: 'mtls', identity, expected: { kind: 'cluster-node', clusterId: door.pki.clusterId, role: 'manager' } });
  const refusal = await refusalOf('Renew with a foreign certificate', renew(clients));
  t.is(refusal.codeName, 'UNAUTHENTICATED');
  t.deepEqual(door.reached, []);
  t.deepEqual(
    door.refused.map((r) => r.path),
    [RENEW_METHOD],
  );
});

test('the open method (NodeCA.Join) reaches its handler without a certificate, and with one', async (t) => {
  const door = await startDoor(t);
  t.is((await join(withoutCertificate(t, door))).nodeId, '(none)');
  t.is((await join(withSecurity(t, door, await door.pki.node('worker-2', 'worker')))).nodeId, 'worker-2');
  t.deepEqual(door.reached, [
    { path: JOIN_METHOD, caller: '(none)' },
    { path: JOIN_METHOD, caller: 'worker-2' },
  ]);
  t.deepEqual(door.refused, []);
});

test('the open methods are the ones given: with none open, Join is refused too', async (t) => {
  const pki = await testPki();
  const manager = await pki.node('manager-1', 'manager');
  let joined = 0;
  const refused: string[] = [];
  const server = new grpc.Server({ interceptors: [certificateRequiredAtTheDoor((path) => refused.push(path), new Set())] });
  const pkg = loadDispatcherPackage().tessera.dispatcher.v1;
  server.addService(pkg.NodeCA.service, {
    Join: (_call, callback) => {
      joined++;
      callback({ code: grpc.status.INTERNAL, details: 'must not run' });
    },
    Renew: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
    StoreKey: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
  } satisfies NodeCAHandlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(manager), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  t.teardown(() => shutdownServer(server));
  const door: Door = { address: `127.0.0.1:${port}`, pki, reached: [], refused: [] };
  const refusal = await refusalOf('Join with no open method', join(withoutCertificate(t, door)));
  t.is(refusal.codeName, 'UNAUTHENTICATED');
  t.is(joined, 0);
  t.deepEqual(refused, [JOIN_METHOD]);
});
