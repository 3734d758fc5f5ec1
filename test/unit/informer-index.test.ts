// An informer's index follows its cache through adds, moves between groups and deletions, on a real
// memory store, so a reader of one group (the dispatcher: one node's tasks) sees what a full walk would.
import test from 'ava';

import { Informer } from '../../control-plane/controllers/informer.js';
import { API_VERSION, type Task } from '../../common/resources/types.js';
import { kindPrefix } from '../../control-plane/store/keys.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { ObjectStore } from '../../control-plane/store/object-store.js';
import { until } from '../helpers/eventually.js';

function task(name: string, nodeName?: string): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, stack: 's' },
    spec: { serviceName: 'web', serviceStack: 's', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
    ...(nodeName ? { nodeName } : {}),
    desiredState: 'running',
    status: { state: 'new', timestamp: new Date().toISOString() },
  };
}

test('an index groups objects by a derived value and follows adds, moves and deletions', async (t) => {
  const store = new MemoryStore();
  const objects = new ObjectStore(store);
  await objects.create(task('a', 'n1'));
  await objects.create(task('b'));
  const tasks = new Informer<Task>(store, 'Task', kindPrefix('Task'));
  await tasks.start();
  t.teardown(() => tasks.stop());
  // Made after the cache filled: it starts from what is there.
  tasks.addIndex('node', (x) => x.nodeName);
  const names = (node: string) =>
    tasks
      .listBy('node', node)
      .map((x) => x.metadata.name)
      .sort();
  t.deepEqual(names('n1'), ['a']);
  await objects.create(task('c', 'n1'));
  await objects.updateWithRetry('Task', 's', 'b', (x) => ({ ...x, nodeName: 'n2' }));
  await objects.updateWithRetry('Task', 's', 'a', (x) => ({ ...x, nodeName: 'n2' }));
  await until('the informer to see the writes', () => tasks.get('/tessera/objects/task/s/a')?.nodeName === 'n2' && tasks.list().length === 3, 5000, 10);
  t.deepEqual(names('n1'), ['c']);
  t.deepEqual(names('n2'), ['a', 'b']);
  await objects.delete('Task', 's', 'c');
  await until('the deletion', () => tasks.list().length === 2, 5000, 10);
  t.deepEqual(names('n1'), []);
  t.deepEqual(tasks.listBy('unknown index', 'n2'), []);
});
