// The scheduling controller writes its placements a batch per store transaction (one Raft entry on
// the raft store), against the versions its informer holds; a batch in which some task changed
// meanwhile writes nothing and each of its tasks is then read and placed alone, keeping the change.
// Real memory store and informers; the store's txn is wrapped only to count transactions and to
// make one concurrent change at the right moment.
import test, { type ExecutionContext } from 'ava';

import { PLACEMENTS_PER_WRITE, SchedulingController } from '../../control-plane/controllers/scheduling-controller.js';
import { API_VERSION, type Node, type Task } from '../../common/resources/types.js';
import type { TxnRequest, TxnResponse } from '../../control-plane/store/store.js';
import { startControllerStore, type ControllerStore } from '../helpers/informers.js';
import { until } from '../helpers/eventually.js';

const COUNT = 250;

function pendingTask(i: number): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `web.${i}.x${i}`, stack: 's' },
    spec: { serviceName: 'web', serviceStack: 's', serviceGeneration: 1, slot: i, spec: { image: 'busybox' } },
    desiredState: 'running',
    status: { state: 'new', timestamp: new Date().toISOString() },
  };
}

async function withScheduler(t: ExecutionContext, onBatch?: (request: TxnRequest, store: ControllerStore) => Promise<void>) {
  const store = await startControllerStore();
  const batches: number[] = [];
  const txn = store.store.txn.bind(store.store);
  store.store.txn = async (request: TxnRequest): Promise<TxnResponse> => {
    const puts = request.success.filter((op) => op.type === 'put').length;
    if (puts > 1) {
      batches.push(puts);
      await onBatch?.(request, store);
    }
    return txn(request);
  };
  await store.objects.create<Node>({
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name: 'n1' },
    spec: { availability: 'active', role: 'worker' },
    status: { state: 'ready', hostname: 'n1', resources: { memoryBytes: 2 ** 40, nanoCpus: 2 ** 40 } },
  });
  for (let i = 1; i <= COUNT; i++) await store.objects.create(pendingTask(i));
  await until('the informer to hold every task', () => store.tasks.list().length === COUNT, 10_000, 10);
  const scheduler = new SchedulingController(store.objects, store.nodes, store.tasks, (m) => t.log(m));
  t.teardown(() => {
    scheduler.stop();
    store.stop();
    return store.store.close();
  });
  scheduler.start();
  await until(
    `${COUNT} tasks assigned`,
    () => store.tasks.list().filter((task) => task.nodeName === 'n1' && task.status.state === 'assigned').length === COUNT,
    30_000,
    20,
  );
  return { store, batches };
}

test('placements are written a batch per transaction', async (t) => {
  const { batches } = await withScheduler(t);
  t.deepEqual(batches, [PLACEMENTS_PER_WRITE, PLACEMENTS_PER_WRITE, COUNT - 2 * PLACEMENTS_PER_WRITE]);
});

test('a batch with a task changed since the informer read it writes nothing; its tasks are then placed one by one, the change kept', async (t) => {
  let changed = false;
  const { store, batches } = await withScheduler(t, async (request, s) => {
    if (changed) return;
    changed = true;
    // Another writer touches the batch's first task between the decision and the write.
    const key = request.compare[0]!.key;
    const name = key.slice(key.lastIndexOf('/') + 1);
    await s.objects.updateWithRetry('Task', 's', name, (task) => ({ ...task, metadata: { ...task.metadata, labels: { touched: 'yes' } } }));
  });
  t.true(batches.length >= 3, 'the failed batch and the later ones');
  const touched = store.tasks.list().filter((task) => task.metadata.labels?.['touched'] === 'yes');
  t.is(touched.length, 1);
  t.is(touched[0]!.status.state, 'assigned', 'placed alone after the batch failed, with the other writer’s change');
});
