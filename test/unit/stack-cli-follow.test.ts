// followUntilConverged and stack removal against a real API server (gRPC on a unix socket, memory
// store). No controllers or agents run here: the test writes the service status and the tasks into
// the store itself, standing in for them, so each outcome (converged, failing, timed out) is exact.
// test/e2e/stack-cli.test.ts covers the same paths with a real tsd.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';

import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
// Loopback only, as root: these tests exercise the API itself; authentication has its own tests (test/security/).
import { authenticateLocalRoot } from '../../control-plane/auth/authenticate.js';
import { API_VERSION, type Service, type Task, type TaskState } from '../../common/resources/types.js';
import { objectKey, kindPrefix } from '../../control-plane/store/keys.js';
import { followUntilConverged } from '../../cli/output/follow-services.js';
import { removeStacks } from '../../cli/commands/stack-objects.js';
import { eventually } from '../helpers/eventually.js';
import { apiServerOn, serveMemoryApi, stopMemoryApi, type ServedMemoryApi } from '../helpers/memory-api.js';

type Fixture = ServedMemoryApi;

function startFixture(): Promise<Fixture> {
  return serveMemoryApi('tessera-stack-cli-');
}

function stopFixture(f: Fixture): Promise<void> {
  return stopMemoryApi(f);
}

class FakeStream {
  text = '';
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

const manifest = (name: string, replicas: number) =>
  JSON.stringify({ apiVersion: API_VERSION, kind: 'Service', metadata: { name, stack: 'shop' }, spec: { image: `${name}:1`, replicas } });

/** The service controller's part: it has taken up the current spec. */
async function noticeSpec(f: Fixture, name: string): Promise<Service> {
  const kv = await f.store.get(objectKey('Service', 'shop', name));
  const service = JSON.parse(kv!.value) as Service;
  service.status = { ...service.status, currentSpec: service.spec, observedGeneration: service.metadata.generation ?? 1 };
  await f.store.put(objectKey('Service', 'shop', name), JSON.stringify(service));
  return service;
}

/** The controller's and agent's part: a task of the service in a given state. */
async function putTask(f: Fixture, service: Service, slot: number, state: TaskState, message?: string): Promise<void> {
  const name = `shop_${service.metadata.name}.${slot}.t${slot}`;
  const task: Task = {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, stack: 'shop' },
    spec: { serviceName: service.metadata.name, serviceStack: 'shop', serviceGeneration: 1, slot, spec: service.spec },
    nodeName: 'node1',
    desiredState: state === 'rejected' ? 'shutdown' : 'running',
    status: { state, timestamp: new Date().toISOString(), ...(message ? { message } : {}) },
  };
  await f.store.put(objectKey('Task', 'shop', name), JSON.stringify(task));
}

test('follows a service through the watch until its tasks run, printing change lines', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [manifest('web', 2)] });
  const out = new FakeStream();
  const following = followUntilConverged(f.client, res.results, { timeoutMs: 10_000, out, isTTY: false });
  // The follower's first line before the controller's part, however slowly the machine runs it.
  await eventually('the first follow line', async () => (out.text.includes('\n') ? true : undefined), 10_000);
  const service = await noticeSpec(f, 'web');
  await putTask(f, service, 1, 'starting');
  await sleep(200);
  await putTask(f, service, 1, 'running');
  await putTask(f, service, 2, 'running');
  const result = await following;
  t.is(result.services[0]!.state.phase, 'converged');
  const lines = out.text.trim().split('\n');
  t.is(lines[0], 'web: 0/2 running (waiting for the controller)');
  t.is(lines.at(-1), 'web: converged (2/2 running)');
});

test('a broken watch (the API server restarts) is re-established from a fresh list', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [manifest('web', 1)] });
  const out = new FakeStream();
  const following = followUntilConverged(f.client, res.results, { timeoutMs: 15_000, out, isTTY: false });
  await sleep(300);
  // A new server on the same socket and store, as after a manager restart.
  await f.server.close();
  f.server = apiServerOn(f.store, f.dir);
  await f.server.listen(f.address, LOCAL_INSECURE, authenticateLocalRoot);
  // Changes made while no watch runs are picked up by the fresh list.
  await putTask(f, await noticeSpec(f, 'web'), 1, 'running');
  const result = await following;
  t.is(result.services[0]!.state.phase, 'converged');
  t.regex(out.text, /^web: converged \(1\/1 running\)$/m);
});

test('tasks that keep failing end the follow with an error naming the service and the task error', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [manifest('web', 1), manifest('api', 1)] });
  const following = followUntilConverged(f.client, res.results, { timeoutMs: 10_000, out: new FakeStream(), isTTY: false });
  const web = await noticeSpec(f, 'web');
  await putTask(f, web, 1, 'running');
  const api = await noticeSpec(f, 'api');
  for (const slot of [1, 2, 3]) await putTask(f, api, slot, 'rejected', 'image api:1: manifest unknown');
  const err = await t.throwsAsync(following);
  t.is(err.message, 'service did not converge: api (3 tasks failed: image api:1: manifest unknown)');
});

test('a timeout names every service that has not converged, with what it waits for', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [manifest('web', 1), manifest('api', 2)] });
  await putTask(f, await noticeSpec(f, 'api'), 1, 'running');
  const err = await t.throwsAsync(followUntilConverged(f.client, res.results, { timeoutMs: 1500, out: new FakeStream(), isTTY: false }));
  t.is(err.message, 'services not converged after 1500ms: web (0/1 running, waiting for the controller); api (1/2 running, starting)');
});

test("a service deleted while it is followed fails with a clear reason (the watch's delete event)", async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [manifest('web', 1)] });
  const following = followUntilConverged(f.client, res.results, { timeoutMs: 10_000, out: new FakeStream(), isTTY: false });
  await sleep(300);
  await f.client.delete({ refs: [{ kind: 'Service', stack: 'shop', name: 'web' }] });
  const err = await t.throwsAsync(following);
  t.is(err.message, 'service did not converge: web (the service was removed)');
});

test('detach returns at once without following', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  const res = await f.client.apply({ objectsJson: [manifest('web', 1)] });
  const out = new FakeStream();
  const started = Date.now();
  t.deepEqual(await followUntilConverged(f.client, res.results, { detach: true, out }), { services: [] });
  t.true(Date.now() - started < 500);
  t.is(out.text, '');
});

test('stack rm removes services first, waits for their tasks, then the rest; an unknown stack is an error', async (t) => {
  const f = await startFixture();
  t.teardown(() => stopFixture(f));
  await f.client.apply({
    objectsJson: [manifest('web', 1), JSON.stringify({ apiVersion: API_VERSION, kind: 'Network', metadata: { name: 'default', stack: 'shop' }, spec: {} })],
  });
  const service = await noticeSpec(f, 'web');
  await putTask(f, service, 1, 'running');
  // Stand-in for the service controller: once the service is gone, its task goes shortly after.
  const controller = (async () => {
    for (let i = 0; i < 100; i++) {
      if (!(await f.store.get(objectKey('Service', 'shop', 'web')))) {
        await sleep(300);
        t.truthy(await f.store.get(objectKey('Network', 'shop', 'default')), 'the network stays while tasks remain');
        await f.store.delete(objectKey('Task', 'shop', 'shop_web.1.t1'));
        return;
      }
      await sleep(50);
    }
  })();
  const lines: string[] = [];
  await removeStacks(f.client, ['shop'], { detach: false, timeoutMs: 10_000, out: (l) => lines.push(l), pollMs: 50 });
  await controller;
  t.deepEqual(lines, ['Removing service shop_web', 'Removing network shop_default']);
  for (const kind of ['Service', 'Task', 'Network'] as const) t.is((await f.store.range(kindPrefix(kind, 'shop'))).kvs.length, 0, kind);

  await t.throwsAsync(removeStacks(f.client, ['nosuch'], { detach: false, timeoutMs: 1000, out: () => {} }), {
    message: 'nothing found in stack "nosuch" (no services, networks, volumes, secrets or configs)',
  });
});
