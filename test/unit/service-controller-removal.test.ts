// The service controller against a real memory store and real informers: a task removal that
// fails is reported and retried by a later pass, not dropped. The failure is injected (a store
// that refuses one task delete): a real store failing on cue cannot be arranged here.
import test from 'ava';

import { FAILED_REMOVAL_RETRY_MS, ServiceController } from '../../control-plane/controllers/service-controller.js';
import { Informer } from '../../control-plane/controllers/informer.js';
import { newTask } from '../../control-plane/controllers/service-reconcile.js';
import { kindPrefix } from '../../control-plane/store/keys.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { ObjectStore } from '../../control-plane/store/object-store.js';
import type { TxnRequest, TxnResponse } from '../../control-plane/store/store.js';
import { API_VERSION, type Node, type Service, type Task } from '../../common/resources/types.js';
import { until } from '../helpers/eventually.js';

/** A memory store whose first transaction deleting a task fails, as an unavailable store would. */
class FirstTaskDeleteFails extends MemoryStore {
  taskDeletes = 0;

  override async txn(request: TxnRequest): Promise<TxnResponse> {
    if (request.success.some((op) => op.type === 'delete' && op.key.startsWith(kindPrefix('Task')))) {
      this.taskDeletes++;
      if (this.taskDeletes === 1) throw new Error('injected fault: the store is unavailable');
    }
    return super.txn(request);
  }
}

test('a failed task removal is logged and retried until the task is gone', async (t) => {
  const store = new FirstTaskDeleteFails();
  const objects = new ObjectStore(store);
  const services = new Informer<Service>(store, 'Service', kindPrefix('Service'));
  const tasks = new Informer<Task>(store, 'Task', kindPrefix('Task'));
  const nodes = new Informer<Node>(store, 'Node', kindPrefix('Node'));
  for (const informer of [services, tasks, nodes]) await informer.start();
  const logged: string[] = [];
  const controller = new ServiceController(objects, services, tasks, nodes, { log: (line) => logged.push(line) });
  t.teardown(async () => {
    controller.stop();
    for (const informer of [services, tasks, nodes]) informer.stop();
    await store.close();
  });

  // A finished task of a service that no longer exists: the controller's decision is to delete it.
  const gone: Service = { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'gone' }, spec: { image: 'busybox' } };
  const task = newTask(gone, { stack: '', name: 'gone' }, 1, 'abc', Date.now());
  await objects.create<Task>({ ...task, desiredState: 'shutdown', status: { state: 'complete', timestamp: new Date().toISOString() } });
  controller.start();

  await until('the finished task removed', () => store.taskDeletes >= 2 && tasks.list().length === 0, 10 * FAILED_REMOVAL_RETRY_MS + 5_000);
  t.is(await objects.get('Task', '', task.metadata.name), undefined, 'the task is gone from the store');
  t.is(store.taskDeletes, 2, 'one failed delete, then one that worked');
  const report = logged.find((line) => line.includes('removing tasks failed'));
  t.truthy(report, logged.join('\n'));
  t.true(report?.includes(task.metadata.name) && report.includes('injected fault'), report);
  t.log(report);
});
