// tsctl follows the cluster (issue 20): which calls may be repeated on another manager, how the
// context's list of managers is kept, and failover between real gRPC servers on unix sockets in a
// scratch directory (each a stand-in manager answering a few methods the way the test needs:
// down, "no leader", or answering).
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { API_METHOD_RETRY, retryClassOf, safeToRepeat } from '../../cli/api-methods.js';
import { ApiClient } from '../../cli/client.js';
import { readContext, writeContext, type CliContext } from '../../cli/context.js';
import { contextServers, serversForManagers, updatedContext } from '../../cli/context-servers.js';
import { failureReason, ManagerRotation, mayRetry, noManagerMessage } from '../../cli/failover.js';
import { EventResume, WatchResume } from '../../cli/watch-resume.js';
import { LogResume } from '../../common/logs/log-resume.js';
import { keepContextCurrent } from '../../cli/with-client.js';
import { loadApiPackage } from '../../proto/load.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { testPki } from '../helpers/test-pki.js';
import type { NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import type { WatchEvent__Output } from '../../proto/gen/tessera/api/v1/WatchEvent.js';

async function scratch(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-failover-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// --- the table ----------------------------------------------------------------------------------

test('every rpc of the Tessera service is classified, and nothing else', (t) => {
  const rpcs = Object.keys(loadApiPackage().tessera.api.v1.Tessera.service).sort();
  t.deepEqual(Object.keys(API_METHOD_RETRY).sort(), rpcs);
});

test('reads, watches and idempotent writes may be repeated; calls that do something new may not', (t) => {
  for (const m of ['List', 'list', 'Get', 'ClusterInfo', 'ClusterMembers']) t.is(retryClassOf(m), 'read', m);
  t.is(retryClassOf('watch'), 'watch');
  for (const m of ['Apply', 'Delete', 'Scale', 'UpdateNode']) t.is(retryClassOf(m), 'idempotent', m);
  for (const m of ['Logs', 'Events']) t.is(retryClassOf(m), 'watch', m);
  for (const m of ['IssueUserCertificate', 'JoinToken', 'RemoveNode', 'RotateCa', 'Exec', 'ImageLoad', 'ImageSave']) t.is(retryClassOf(m), 'once', m);
  t.is(retryClassOf('SomethingNew'), 'once', 'an rpc added without a class is not repeated');
  t.true(safeToRepeat(['list', 'apply', 'watch']));
  t.false(safeToRepeat(['list', 'joinToken']));
});

test('a failed call is repeated elsewhere only when the manager is down or does not lead, and the method allows it', (t) => {
  const refused = { code: grpc.status.UNAVAILABLE, details: 'No connection established. Last error: connect ECONNREFUSED /x.sock' };
  const dropped = { code: grpc.status.UNAVAILABLE, details: 'Connection dropped' };
  const noLeader = { code: grpc.status.INTERNAL, details: 'no leader is known yet' };
  const denied = { code: grpc.status.PERMISSION_DENIED, details: 'permission denied' };
  t.true(mayRetry('list', dropped));
  t.true(mayRetry('apply', noLeader));
  t.false(mayRetry('list', denied));
  t.true(mayRetry('joinToken', refused), 'never sent: even a call that does something new');
  t.false(mayRetry('joinToken', dropped), 'may have been received: not repeated');
  t.is(failureReason(refused), 'connection refused');
  t.is(failureReason({ code: grpc.status.UNAVAILABLE, details: 'No connection established. Last error: connect ENOENT /x.sock' }), 'no socket');
  t.is(failureReason({ code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), 'timeout');
  t.is(failureReason(noLeader), 'no leader yet');
});

test('the rotation tries every manager in order, pauses between rounds and gives up with one line after the wait', (t) => {
  let now = 0;
  const closed: string[] = [];
  const rotation = new ManagerRotation(
    ['a', 'b', 'c'],
    (address) => address,
    (c) => closed.push(c),
    1000,
    () => now,
  );
  t.is(rotation.current(), 'a');
  t.is(rotation.advance('connection refused'), 0);
  t.is(rotation.current(), 'b');
  t.is(rotation.advance('timeout'), 0);
  t.is(rotation.advance('no leader yet'), 250, 'a full round: a pause before the next');
  t.is(rotation.currentAddress, 'a');
  now = 1000;
  const gaveUp = rotation.advance('connection refused');
  t.true(gaveUp instanceof Error);
  t.is(
    (gaveUp as Error).message,
    'no manager answered: a (connection refused), b (timeout), c (no leader yet) — check `tsctl cluster members` from a manager host or pass --server',
  );
  t.deepEqual(closed, ['a', 'b'], 'the channel of a failed manager (each one opened) is dropped');
  rotation.answered();
  now = 5000;
  t.is(rotation.advance('connection refused'), 0, 'an answer starts a new wait');
  t.is(noManagerMessage(new Map([['x', 'y']])).split('\n').length, 1);
});

// --- the context's list -------------------------------------------------------------------------

const netns = {
  nodes: [
    { name: 'node-1', underlayAddress: '172.31.9.1', apiSocket: 'unix:/c/node-1/api.sock', role: 'manager' },
    { name: 'node-2', underlayAddress: '172.31.9.2', apiSocket: 'unix:/c/node-2/api.sock', role: 'manager' },
    { name: 'node-3', underlayAddress: '172.31.9.3', role: 'worker' },
  ],
} as unknown as NetnsClusterState;

test('the cluster’s managers become the context’s list: as they are with a certificate, as sockets for a local netns cluster', (t) => {
  const remote = { server: '10.0.0.1:7420', tls: {} } as unknown as CliContext;
  t.deepEqual(serversForManagers(remote, ['10.0.0.2:7420', 'bad address', '10.0.0.1:7420']), ['10.0.0.2:7420', '10.0.0.1:7420']);
  const local: CliContext = { server: 'unix:/c/node-1/api.sock', netns };
  t.deepEqual(serversForManagers(local, ['172.31.9.2:7420', '172.31.9.1:7420', '172.31.9.7:7420']), ['unix:/c/node-2/api.sock', 'unix:/c/node-1/api.sock']);
  t.is(serversForManagers({ server: 'unix:/var/lib/tessera/tsd.sock' }, ['127.0.0.1:7420']), undefined, 'a single-node context has one socket');
  t.is(serversForManagers(remote, []), undefined, 'an empty answer leaves the list alone');
});

test('the manager that answered goes first; a removed one is forgotten; nothing changed means nothing to write', (t) => {
  const context: CliContext = { server: 'm1:7420', servers: ['m1:7420', 'm2:7420', 'm3:7420'] };
  t.is(updatedContext(context, 'm1:7420', ['m1:7420', 'm2:7420', 'm3:7420']), undefined);
  t.deepEqual(updatedContext(context, 'm2:7420', undefined), { server: 'm2:7420', servers: ['m1:7420', 'm2:7420', 'm3:7420'] });
  t.deepEqual(
    updatedContext(context, 'm2:7420', ['m2:7420', 'm4:7420']),
    { server: 'm2:7420', servers: ['m2:7420', 'm4:7420'] },
    'm1 and m3 were removed, m4 added',
  );
  t.deepEqual(
    updatedContext(context, 'lb:7420', ['m2:7420']),
    { server: 'lb:7420', servers: ['m2:7420', 'lb:7420'] },
    'an address that answered but is not listed (NAT, a load balancer) is kept',
  );
  t.deepEqual(contextServers({ server: 'a', servers: ['b', 'a'] }), ['a', 'b']);
});

// --- real gRPC servers --------------------------------------------------------------------------

interface FakeManager {
  address: string;
  calls: string[];
  watchFrom: number[];
  /** What each Logs / Events call asked to resume after. */
  logsAsked: Array<{ tail: number; after: Record<string, number>; reportCaughtUp: boolean }>;
  eventsAsked: Array<{ afterRevision: number; afterIndex: number }>;
  stop(): void;
}

type Behaviour = {
  list?: 'answer' | 'no-leader';
  managers?: string[];
  /** Events the watch sends, then it fails as a dying manager would (UNAVAILABLE) unless `watchEnds`. */
  events?: Array<{ revision: number; name: string }>;
  watchFails?: boolean;
  /** The whole server goes away mid-watch, its connections cut (as when its tsd is killed). */
  watchDies?: boolean;
  /** Log lines the Logs call sends (all of them: this stand-in ignores the resume point, so the client's own check is tested), caught_up after `caughtUpAfter` of them. */
  logLines?: Array<{ task: string; sequence: number }>;
  caughtUpAfter?: number;
  /** Events the Events call sends (all of them, as above). */
  clusterEvents?: Array<{ revision: number; index: number; name: string }>;
  /** The Logs / Events stream then goes away: the whole server is shut down (as when its tsd is killed). */
  streamDies?: boolean;
};

async function fakeManager(t: { teardown(fn: () => void): void }, dir: string, name: string, behaviour: Behaviour): Promise<FakeManager> {
  const server = new grpc.Server();
  const calls: string[] = [];
  const watchFrom: number[] = [];
  const logsAsked: FakeManager['logsAsked'] = [];
  const eventsAsked: FakeManager['eventsAsked'] = [];
  const noLeader = (): grpc.ServiceError =>
    Object.assign(new Error('no leader is known yet'), { code: grpc.status.UNAVAILABLE, details: 'no leader is known yet', metadata: new grpc.Metadata() });
  server.addService(loadApiPackage().tessera.api.v1.Tessera.service, {
    List: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      calls.push('List');
      if (behaviour.list === 'no-leader') cb(noLeader());
      else cb(null, { objectsJson: [JSON.stringify({ from: name })], revision: 7 });
    },
    ClusterInfo: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      calls.push('ClusterInfo');
      cb(null, { clusterId: 'c', managers: behaviour.managers ?? [] });
    },
    JoinToken: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      calls.push('JoinToken');
      // Received, then the manager "dies" before answering.
      cb(Object.assign(new Error('Connection dropped'), { code: grpc.status.UNAVAILABLE, details: 'Connection dropped', metadata: new grpc.Metadata() }));
    },
    Watch: (call: grpc.ServerWritableStream<{ fromRevision: number }, unknown>) => {
      calls.push('Watch');
      watchFrom.push(Number(call.request.fromRevision));
      for (const e of behaviour.events ?? []) {
        if (e.revision >= Number(call.request.fromRevision))
          call.write({ type: 'added', objectJson: JSON.stringify({ metadata: { name: e.name } }), revision: e.revision });
      }
      if (behaviour.watchFails) setTimeout(() => call.emit('error', noLeader()), 50);
      if (behaviour.watchDies) setTimeout(() => server.forceShutdown(), 50);
    },
    Logs: (call: grpc.ServerWritableStream<{ tail: number; afterSequence: Record<string, number>; reportCaughtUp: boolean }, unknown>) => {
      calls.push('Logs');
      logsAsked.push({ tail: call.request.tail, after: { ...call.request.afterSequence }, reportCaughtUp: call.request.reportCaughtUp });
      (behaviour.logLines ?? []).forEach((l, i) => {
        call.write({ task: l.task, line: `${l.task}#${l.sequence}`, sequence: l.sequence });
        if (i + 1 === behaviour.caughtUpAfter && call.request.reportCaughtUp) call.write({ caughtUp: true });
      });
      if (behaviour.streamDies) setTimeout(() => server.forceShutdown(), 50);
    },
    Events: (call: grpc.ServerWritableStream<{ afterRevision: number; afterIndex: number }, unknown>) => {
      calls.push('Events');
      eventsAsked.push({ afterRevision: Number(call.request.afterRevision), afterIndex: call.request.afterIndex });
      call.write({ notice: 'this manager keeps events from when it started' });
      for (const e of behaviour.clusterEvents ?? []) call.write({ type: 'task', action: 'running', name: e.name, revision: e.revision, index: e.index });
      if (behaviour.streamDies) setTimeout(() => server.forceShutdown(), 50);
    },
  });
  const address = `unix:${join(dir, `${name}.sock`)}`;
  await new Promise<void>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const stop = () => server.forceShutdown();
  t.teardown(stop);
  return { address, calls, watchFrom, logsAsked, eventsAsked, stop };
}

function failoverClient(first: string, others: string[], waitMs = 2000): ApiClient {
  return new ApiClient(first, { timeoutMs: 3000, failover: { addresses: others, securityFor: () => LOCAL_INSECURE, waitMs } });
}

test('a read goes to the next manager when the first is down or has no leader, and the one that answered is remembered', async (t) => {
  const dir = await scratch(t);
  const down = `unix:${join(dir, 'down.sock')}`;
  const noLeader = await fakeManager(t, dir, 'm2', { list: 'no-leader' });
  const good = await fakeManager(t, dir, 'm3', {});
  const client = failoverClient(down, [noLeader.address, good.address]);
  t.teardown(() => client.close());
  const res = await client.list({ kind: 'Service', allStacks: true });
  t.deepEqual(res.objectsJson, [JSON.stringify({ from: 'm3' })]);
  t.deepEqual(noLeader.calls, ['List']);
  t.is(client.answeringAddress(), good.address);
  await client.list({ kind: 'Service', allStacks: true });
  t.deepEqual(good.calls, ['List', 'List'], 'later calls stay with the manager that answered');
});

test('a manager whose connection never comes up (a powered-off host) is left after the connect wait, not the call deadline', async (t) => {
  const dir = await scratch(t);
  // A stand-in for a host that takes the TCP connection and never answers TLS: the channel stays
  // connecting, as it does (in SYN_SENT) for a host that is off. No connect timeout in grpc-js.
  const held: Socket[] = [];
  const silent = createServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });
  const silentAddress = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const good = await fakeManager(t, dir, 'good', { events: [{ revision: 3, name: 'web' }] });
  const user = await (await testPki()).user('alice', 'viewer');
  const viaSilent = (): ApiClient => {
    const client = new ApiClient(silentAddress, {
      timeoutMs: 60_000,
      security: user,
      failover: { addresses: [good.address], securityFor: () => LOCAL_INSECURE, waitMs: 2000 },
    });
    t.teardown(() => client.close());
    return client;
  };
  const client = viaSilent();
  const res = await client.list({ kind: 'Service', allStacks: true });
  t.deepEqual(res.objectsJson, [JSON.stringify({ from: 'good' })]);
  t.is(client.answeringAddress(), good.address);
  t.true(held.length >= 1, 'the silent manager was dialled first');

  // A watch too (a stream has no deadline at all).
  const watcher = viaSilent();
  const stop = new AbortController();
  const seen: string[] = [];
  await watcher.watch(
    { kind: 'Service', allStacks: true, fromRevision: 1 },
    (event) => {
      seen.push(String(event.revision));
      stop.abort();
    },
    stop.signal,
  );
  t.deepEqual(seen, ['3']);
  t.is(watcher.answeringAddress(), good.address);
});

test('a call that does something new is not repeated once a manager may have received it, but is when none did', async (t) => {
  const dir = await scratch(t);
  const received = await fakeManager(t, dir, 'm1', {});
  const other = await fakeManager(t, dir, 'm2', {});
  const client = failoverClient(received.address, [other.address]);
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.joinToken('worker', false));
  t.regex(err.message, /Connection dropped/);
  t.deepEqual(received.calls, ['JoinToken']);
  t.deepEqual(other.calls, [], 'not sent again');

  const down = `unix:${join(dir, 'down.sock')}`;
  const viaDown = failoverClient(down, [other.address]);
  t.teardown(() => viaDown.close());
  await t.throwsAsync(viaDown.joinToken('worker', false));
  t.deepEqual(other.calls, ['JoinToken'], 'the down manager never got it, so the next one did');
});

test('when no manager answers within the wait, the error is one line naming each and what to do', async (t) => {
  const dir = await scratch(t);
  const a = `unix:${join(dir, 'a.sock')}`;
  const b = await fakeManager(t, dir, 'b', { list: 'no-leader' });
  const client = failoverClient(a, [b.address], 2000);
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.list({ kind: 'Service', allStacks: true }));
  t.is(
    err.message,
    `no manager answered: ${a} (no socket), ${b.address} (no leader yet) — check \`tsctl cluster members\` from a manager host or pass --server`,
  );
  t.true(b.calls.length >= 2, 'asked again during the wait for an election');
});

test('a watch goes on at the next manager from its last revision, without a gap or a repeat', async (t) => {
  const dir = await scratch(t);
  // m1 sends revision 5 half (x of x, y), then 4 and 5 again would be repeats; it then fails.
  const m1 = await fakeManager(t, dir, 'm1', {
    events: [
      { revision: 4, name: 'w' },
      { revision: 5, name: 'x' },
    ],
    watchFails: true,
  });
  const m2 = await fakeManager(t, dir, 'm2', {
    events: [
      { revision: 4, name: 'w' },
      { revision: 5, name: 'x' },
      { revision: 5, name: 'y' },
      { revision: 6, name: 'z' },
    ],
  });
  const client = failoverClient(m1.address, [m2.address]);
  t.teardown(() => client.close());
  const seen: string[] = [];
  const abort = new AbortController();
  const done = client.watch(
    { kind: 'Task', allStacks: true, fromRevision: 4 },
    (e: WatchEvent__Output) => {
      seen.push(`${e.revision}:${(JSON.parse(e.objectJson) as { metadata: { name: string } }).metadata.name}`);
      if (seen.length === 4) abort.abort();
    },
    abort.signal,
  );
  await done;
  t.deepEqual(seen, ['4:w', '5:x', '5:y', '6:z']);
  t.deepEqual(m1.watchFrom, [4]);
  t.deepEqual(m2.watchFrom, [5], 'resumed at the last revision delivered (it may have had more changes)');
});

test('WatchResume drops what was delivered and keeps the rest of a revision cut off half way', (t) => {
  const e = (revision: number, name: string, type = 'modified'): WatchEvent__Output => ({ type, objectJson: JSON.stringify({ metadata: { name } }), revision });
  const resume = new WatchResume(10);
  t.is(resume.fromRevision(), 10);
  t.true(resume.deliver(e(10, 'a')));
  t.true(resume.deliver(e(11, 'a')));
  t.true(resume.deliver(e(11, 'b')));
  t.is(resume.fromRevision(), 11);
  t.false(resume.deliver(e(10, 'a')));
  t.false(resume.deliver(e(11, 'b')));
  t.true(resume.deliver(e(11, 'c')));
  t.true(resume.deliver(e(11, 'a', 'deleted')), 'another change of the same object in that revision');
});

test.serial('after a call, the context learns the cluster’s managers, atomically and 0600; an unchanged list is not rewritten', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'context.json');
  const old = process.env.TESSERA_CONTEXT;
  process.env.TESSERA_CONTEXT = path;
  t.teardown(() => {
    if (old === undefined) delete process.env.TESSERA_CONTEXT;
    else process.env.TESSERA_CONTEXT = old;
  });
  const m2 = await fakeManager(t, dir, 'm2', {});
  const m1Address = `unix:${join(dir, 'm1.sock')}`;
  // A local netns cluster's context: the cluster names its managers by underlay address.
  const state = {
    nodes: [
      { name: 'node-1', underlayAddress: '172.31.9.1', apiSocket: m1Address, role: 'manager' },
      { name: 'node-2', underlayAddress: '172.31.9.2', apiSocket: m2.address, role: 'manager' },
      { name: 'node-3', underlayAddress: '172.31.9.3', apiSocket: `unix:${join(dir, 'm3.sock')}`, role: 'manager' },
    ],
  } as unknown as NetnsClusterState;
  const m2Again = await fakeManager(t, dir, 'm2b', { managers: ['172.31.9.2:7420', '172.31.9.1:7420'] });
  m2.stop();
  const context: CliContext = { server: m1Address, servers: [m1Address, m2Again.address], netns: state };
  // m2b stands at node-2's socket for this test.
  state.nodes[1]!.apiSocket = m2Again.address;
  await writeFile(path, '{}', { mode: 0o644 });
  await writeContext(context);
  await utimes(path, new Date(0), new Date(0)); // last checked long ago
  const client = failoverClient(m1Address, [m2Again.address]);
  t.teardown(() => client.close());
  await client.list({ kind: 'Node', allStacks: true });
  await keepContextCurrent(client, context);
  const written = await readContext(path);
  t.is(written?.server, m2Again.address, 'the manager that answered goes first');
  t.deepEqual(written?.servers, [m2Again.address, m1Address], 'node-3 is no manager any more');
  t.is((await stat(path)).mode & 0o777, 0o600);
  const before = (await stat(path)).mtimeMs;
  await keepContextCurrent(client, written!);
  t.is((await stat(path)).mtimeMs, before, 'checked within the minute: not asked again, not rewritten');
  t.deepEqual(
    m2Again.calls.filter((c) => c === 'ClusterInfo'),
    ['ClusterInfo'],
  );
});

test('a watch whose manager goes away with its connection cut goes on at the next one', async (t) => {
  const dir = await scratch(t);
  const m1 = await fakeManager(t, dir, 'm1', { events: [{ revision: 4, name: 'w' }], watchDies: true });
  const m2 = await fakeManager(t, dir, 'm2', {
    events: [
      { revision: 4, name: 'w' },
      { revision: 5, name: 'x' },
    ],
  });
  const client = failoverClient(m1.address, [m2.address]);
  t.teardown(() => client.close());
  const seen: number[] = [];
  const abort = new AbortController();
  await client.watch(
    { kind: 'Task', allStacks: true, fromRevision: 4 },
    (e) => {
      seen.push(Number(e.revision));
      if (seen.length === 2) abort.abort();
    },
    abort.signal,
  );
  t.deepEqual(seen, [4, 5]);
  t.deepEqual(m2.watchFrom, [4]);
});

test('get -w prints one line per change: what happened, to which object, its state', async (t) => {
  const { changeLine, isWatchable } = await import('../../cli/commands/get-watch.js');
  const task = { kind: 'Task', metadata: { name: 'web.1', stack: 'app' }, spec: {}, status: { state: 'running' } };
  t.is(changeLine({ type: 'modified', objectJson: JSON.stringify(task), revision: 9 }), 'modified  task/app/web.1  running');
  t.is(changeLine({ type: 'deleted', objectJson: '{', revision: 9 }), 'deleted (revision 9): the server sent an object that is not JSON');
  t.true(isWatchable('Task'));
  t.false(isWatchable('Secret'));
});

test.serial('a long command does not write back the context it started with over a newer one, nor bring back a removed one', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'context.json');
  const old = process.env.TESSERA_CONTEXT;
  process.env.TESSERA_CONTEXT = path;
  t.teardown(() => {
    if (old === undefined) delete process.env.TESSERA_CONTEXT;
    else process.env.TESSERA_CONTEXT = old;
  });
  const m2 = await fakeManager(t, dir, 'm2', { managers: [] });
  const m1Address = `unix:${join(dir, 'm1.sock')}`;
  const started: CliContext = { server: m1Address, servers: [m1Address, m2.address] };
  const client = failoverClient(m1Address, [m2.address]);
  t.teardown(() => client.close());
  await client.list({ kind: 'Node', allStacks: true }); // answered by m2

  // `cluster down` removed the file meanwhile: it stays removed.
  await keepContextCurrent(client, started);
  await t.throwsAsync(stat(path), { code: 'ENOENT' });

  // Another tsctl changed the list meanwhile: its list stays.
  const newer: CliContext = { server: m2.address, servers: [m2.address] };
  await writeContext(newer);
  await keepContextCurrent(client, started);
  t.deepEqual(await readContext(path), newer);

  // The same list, with other fields changed since (a node's new PID): those are kept, m2 goes first.
  const withState = { ...started, local: { pid: 4242, config: {} } } as unknown as CliContext;
  await writeContext(withState);
  await keepContextCurrent(client, started);
  t.deepEqual(await readContext(path), { ...withState, server: m2.address });
});

test("logs -f goes on at the next manager after each task's last line, every line once, in order", async (t) => {
  const dir = await scratch(t);
  const m1 = await fakeManager(t, dir, 'm1', {
    logLines: [
      { task: 'a', sequence: 1 },
      { task: 'b', sequence: 1 },
      { task: 'a', sequence: 2 },
    ],
    caughtUpAfter: 2,
    streamDies: true,
  });
  // m2 sends what it has from the start: the client drops what it already printed.
  const m2 = await fakeManager(t, dir, 'm2', {
    logLines: [
      { task: 'a', sequence: 1 },
      { task: 'a', sequence: 2 },
      { task: 'b', sequence: 1 },
      { task: 'a', sequence: 3 },
      { task: 'c', sequence: 1 },
      { task: 'b', sequence: 2 },
    ],
  });
  const client = failoverClient(m1.address, [m2.address]);
  t.teardown(() => client.close());
  const printed: string[] = [];
  const abort = new AbortController();
  await client.logs(
    { stack: '', service: 'web', follow: true, tail: 5 },
    (line) => {
      printed.push(line.line);
      if (printed.length === 6) abort.abort();
    },
    abort.signal,
  );
  t.deepEqual(printed, ['a#1', 'b#1', 'a#2', 'a#3', 'c#1', 'b#2']);
  t.deepEqual(m1.logsAsked, [{ tail: 5, after: {}, reportCaughtUp: true }]);
  t.deepEqual(m2.logsAsked, [{ tail: 0, after: { a: 2, b: 1 }, reportCaughtUp: true }], 'caught up before: the tail no longer applies');
});

test('LogResume: per task, lines at or below the last delivered are dropped; the tail applies until caught up', (t) => {
  const resume = new LogResume(10, new Map([['a', 4]]));
  t.deepEqual(resume.next(), { tail: 10, afterSequence: new Map([['a', 4]]) });
  t.false(resume.deliver('a', 4));
  t.true(resume.deliver('a', 5));
  t.true(resume.deliver('b', 1));
  t.false(resume.deliver('b', 1));
  t.true(resume.deliver('b', 0), 'a line without a sequence cannot be checked and goes on');
  resume.markCaughtUp();
  t.deepEqual(resume.next(), {
    tail: 0,
    afterSequence: new Map([
      ['a', 5],
      ['b', 1],
    ]),
  });
});

test('events -f goes on at the next manager after the last event delivered, by revision and place', async (t) => {
  const dir = await scratch(t);
  const m1 = await fakeManager(t, dir, 'm1', {
    clusterEvents: [
      { revision: 7, index: 0, name: 'x' },
      { revision: 7, index: 1, name: 'y' },
    ],
    streamDies: true,
  });
  const m2 = await fakeManager(t, dir, 'm2', {
    clusterEvents: [
      { revision: 7, index: 0, name: 'x' },
      { revision: 7, index: 1, name: 'y' },
      { revision: 7, index: 2, name: 'z' },
      { revision: 9, index: 0, name: 'w' },
    ],
  });
  const client = failoverClient(m1.address, [m2.address]);
  t.teardown(() => client.close());
  const seen: string[] = [];
  const abort = new AbortController();
  await client.events(
    { follow: true, filters: [] },
    (e) => {
      seen.push(e.notice ? 'notice' : e.name);
      if (seen.filter((x) => x !== 'notice').length === 4) abort.abort();
    },
    abort.signal,
  );
  t.deepEqual(seen, ['notice', 'x', 'y', 'notice', 'z', 'w'], 'notices are passed on; events once');
  t.deepEqual(m2.eventsAsked, [{ afterRevision: 7, afterIndex: 1 }]);
  const resume = new EventResume();
  t.true(resume.deliver({ revision: 3, index: 2 }));
  t.false(resume.deliver({ revision: 3, index: 1 }));
  t.false(resume.deliver({ revision: 2, index: 9 }));
  t.true(resume.deliver({ revision: 0, index: 0 }), 'an event without a revision (an older manager) is not checked');
  t.deepEqual(resume.position(), { afterRevision: 3, afterIndex: 2 });
});
