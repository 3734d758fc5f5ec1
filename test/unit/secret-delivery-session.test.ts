// The real dispatcher and two real agent sessions over gRPC with mutual TLS on loopback (memory
// store, no containers): each node receives only the secrets and configs of its own tasks,
// together with the tasks, and loses them when no task there uses them any more.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AgentSession } from '../../agent/session/agent-session.js';
import { bindServer, shutdownServer } from '../../control-plane/api/grpc-server.js';
import { certificateAuthenticator } from '../../control-plane/auth/authenticate.js';
import { testPki } from '../helpers/test-pki.js';
import { Informer } from '../../control-plane/controllers/informer.js';
import { NodeHealth } from '../../control-plane/dispatcher/node-health.js';
import type { DeliveredFiles } from '../../common/dispatcher/stack-files.js';
import { DispatcherServer } from '../../control-plane/dispatcher/server.js';
import type { Config, Node, Secret, ServiceSpec, Task } from '../../common/resources/types.js';
import { kindPrefix } from '../../control-plane/store/keys.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { until } from '../helpers/eventually.js';
import { ObjectStore } from '../../control-plane/store/object-store.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

function task(name: string, node: string, spec: Partial<ServiceSpec>): Task {
  return {
    apiVersion: 'tessera/v1',
    kind: 'Task',
    metadata: { name, stack: 'app' },
    spec: { serviceName: 'svc', serviceStack: 'app', serviceGeneration: 1, slot: 1, spec: { image: 'busybox', ...spec } },
    nodeName: node,
    desiredState: 'running',
    status: { state: 'assigned', timestamp: new Date().toISOString() },
  };
}

test("each node gets only its own tasks' secrets and configs, and loses them when unused", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-delivery-'));
  const pki = await testPki();
  const store = new MemoryStore();
  const objects = new ObjectStore(store);
  const tasks = new Informer<Task>(store, 'Task', kindPrefix('Task'));
  const nodes = new Informer<Node>(store, 'Node', kindPrefix('Node'));
  await tasks.start();
  await nodes.start();
  const health = new NodeHealth(objects, nodes, tasks, { timeoutMs: 60_000, checkEveryMs: 60_000 });
  const dispatcher = new DispatcherServer({
    objects,
    tasks,
    nodes,
    health,
    heartbeatPeriodMs: 1000,
    authenticate: certificateAuthenticator({ clusterId: () => pki.clusterId, isRevoked: () => false }),
    managers: () => [],
    log: () => {},
  });
  const server = new grpc.Server();
  dispatcher.addTo(server);
  const port = await bindServer(server, '127.0.0.1:0', await pki.node('m1', 'manager'));
  const address = `127.0.0.1:${port}`;
  const sessions: AgentSession[] = [];
  t.teardown(async () => {
    for (const s of sessions) s.stop();
    dispatcher.closeAll();
    await shutdownServer(server);
    tasks.stop();
    nodes.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  await objects.create<Secret>({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 'pw', stack: 'app' }, spec: { data: b64('for n1 only') } });
  await objects.create<Secret>({ apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 'shared', stack: '' }, spec: { data: b64('external') } });
  await objects.create<Config>({ apiVersion: 'tessera/v1', kind: 'Config', metadata: { name: 'conf', stack: 'app' }, spec: { data: b64('n2 config') } });
  await objects.create(
    task('t1', 'n1', {
      secrets: [
        { source: 'pw', target: 'pw' },
        { source: 'shared', target: 'shared' },
      ],
    }),
  );
  await objects.create(task('t2', 'n2', { configs: [{ source: 'conf', target: '/conf' }] }));

  const seen = new Map<string, { tasks: string[]; files: DeliveredFiles }>();
  for (const name of ['n1', 'n2']) {
    // As NodeCA.Join does: the Node exists before its first session.
    await objects.create<Node>({
      apiVersion: 'tessera/v1',
      kind: 'Node',
      metadata: { name, stack: '' },
      spec: { availability: 'active', role: 'worker' },
      status: { state: 'unknown', hostname: name, resources: { memoryBytes: 0, nanoCpus: 0 } },
    });
    const session = new AgentSession({
      managers: [address],
      nodeName: name,
      security: await pki.node(name, 'worker'),
      log: () => {},
      description: { hostname: name, address: '127.0.0.1', memoryBytes: 1 << 30, nanoCpus: 1e9 },
      onAssignments: (assigned, files) => seen.set(name, { tasks: assigned.map((x) => x.metadata.name), files }),
    });
    sessions.push(session);
    session.start();
  }

  const n1 = await until('n1 assignments', () => seen.get('n1'));
  const n2 = await until('n2 assignments', () => seen.get('n2'));
  t.deepEqual(n1.tasks, ['t1']);
  t.deepEqual(n1.files.keys(), ['Secret//shared', 'Secret/app/pw'], "n1 has its task's secrets (one external), nothing else");
  t.is(n1.files.resolve('Secret', 'app', 'pw')?.data.toString(), 'for n1 only');
  t.deepEqual(n2.files.keys(), ['Config/app/conf'], "n2 never receives n1's secrets");

  // t1 ends: n1 no longer needs its secrets and forgets them; n2 is untouched.
  const held = n1.files.resolve('Secret', 'app', 'pw')!;
  await objects.updateWithRetry('Task', 'app', 't1', (x) => ({ ...x, status: { ...x.status, state: 'complete' } }));
  await until('n1 files withdrawn', () => (seen.get('n1')!.files.keys().length === 0 ? true : undefined));
  t.true(
    held.data.every((byte) => byte === 0),
    'withdrawn secret bytes are overwritten in memory',
  );
  t.deepEqual(seen.get('n2')!.files.keys(), ['Config/app/conf']);

  // A new task on n2 that uses pw: now (and only now) n2 gets it, with the task.
  await objects.create(task('t3', 'n2', { secrets: [{ source: 'pw', target: 'pw' }] }));
  const after = await until('n2 gets t3', () => (seen.get('n2')!.tasks.includes('t3') ? seen.get('n2')! : undefined));
  t.deepEqual(after.files.keys(), ['Config/app/conf', 'Secret/app/pw'], 'the secret arrives in the same message as the task');
});
