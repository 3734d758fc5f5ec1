// A restarted node agent takes over the containers its predecessor left running. Only the
// runtime's definite "no such container" may make it report a task's container lost: a read of
// the container's state that fails (an I/O error) says nothing about whether it runs, and
// reporting it lost would let the managers start a second copy of the slot beside it.
//
// The containers are real (NativeRuntime, busybox). Two things are stand-ins, said here:
// - the I/O error: a real transient EIO on the state dir cannot be produced on demand, so the
//   runtime is wrapped and its first state() read throws an EIO error (every other call, and the
//   reads after it, go to the real runtime);
// - the node network and image store: the worker only detaches (no-op here) and looks up the
//   image's health check (none) for an adopted container; attaching needs a bridge the test does
//   not need.
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';

import { API_VERSION, type Task, type TaskState, type TaskStatus } from '../../common/resources/types.js';
import type { ImageStore } from '../../common/images/types.js';
import type { NodeNetwork } from '../../agent/network/types.js';
import type { ContainerRuntime, ContainerState } from '../../agent/runtime/types.js';
import { containerIdFor } from '../../agent/worker/task-runner.js';
import { Worker } from '../../agent/worker/worker.js';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';
import { eventually } from '../helpers/eventually.js';

interface Reported {
  state: TaskState;
  message?: string;
}

function runningTask(name: string): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name },
    spec: { serviceName: 'web', serviceStack: '', serviceGeneration: 1, slot: 1, spec: { image: 'busybox' } },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state: 'running', timestamp: new Date().toISOString() },
  };
}

function notUsed(what: string): never {
  throw new Error(`${what} is not used by adoption`);
}

/** The node network: adoption only detaches the container at its end (nothing was attached here). */
const network: NodeNetwork = {
  setup: () => notUsed('network.setup'),
  attach: () => notUsed('network.attach'),
  detach: () => Promise.resolve(),
  publish: () => Promise.resolve(),
  teardown: () => notUsed('network.teardown'),
};

/** The image store: adoption only asks for the image's health check; the image has none. */
const images = {
  get: () => Promise.resolve(undefined),
} as unknown as ImageStore;

/** The real runtime, except that the first `failures` state() reads throw an I/O error. */
function withFailingStateReads(real: ContainerRuntime, failures: number): ContainerRuntime & { stateReads: number } {
  const wrapped = {
    stateReads: 0,
    create: real.create.bind(real),
    start: real.start.bind(real),
    kill: real.kill.bind(real),
    wait: real.wait.bind(real),
    delete: real.delete.bind(real),
    async state(id: string): Promise<ContainerState | undefined> {
      wrapped.stateReads += 1;
      if (wrapped.stateReads <= failures) {
        throw Object.assign(new Error(`EIO: i/o error, read (injected) for ${id}`), { code: 'EIO' });
      }
      return real.state(id);
    },
  };
  return wrapped;
}

async function world(t: ExecutionContext) {
  const fx = await RuntimeFixture.create();
  const reports: Reported[] = [];
  const logs: string[] = [];
  let worker: Worker | undefined;
  t.teardown(async () => {
    await worker?.stopAll();
    const left = await fx.cleanup();
    if (left.cgroups.length > 0 || left.mounts.length > 0) t.log(`removed by force: ${JSON.stringify(left)}`);
  });
  const makeWorker = (runtime: ContainerRuntime): Worker => {
    worker = new Worker({
      runtime,
      images,
      network,
      containersDir: path.join(fx.dir, 'containers'),
      logsDir: path.join(fx.dir, 'task-logs'),
      cgroupParent: fx.cgroupParent,
      insecureRegistries: [],
      report: (_task: Task, status: Partial<TaskStatus> & { state: TaskState }) => {
        reports.push({ state: status.state, ...(status.message !== undefined ? { message: status.message } : {}) });
        return Promise.resolve();
      },
      log: (message) => {
        logs.push(message);
        t.log(message);
      },
    });
    return worker;
  };
  return { fx, reports, logs, makeWorker };
}

test('a state read that fails transiently does not get a running container reported lost: it is retried and the container adopted', async (t) => {
  const { fx, reports, logs, makeWorker } = await world(t);
  const task = runningTask('web.1.adopt1');
  const id = containerIdFor(task);
  // The container an earlier agent started for the task; it runs on (and ends at SIGTERM).
  await fx.create({ args: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done'] }, id);
  await fx.runtime.start(id);

  const runtime = withFailingStateReads(fx.runtime, 1);
  const worker = makeWorker(runtime);
  worker.reconcile([task]);

  await eventually('the container to be adopted', () => Promise.resolve(worker.running().find((r) => r.name === task.metadata.name)), 15_000, 50);
  t.true(runtime.stateReads >= 2, 'the failed read was retried');
  t.true(
    logs.some((l) => l.includes('EIO') && l.includes('attempt 1')),
    'the failed read is logged',
  );
  t.deepEqual(reports, [], 'nothing reported: the task was neither reported lost nor restarted');
  t.is((await fx.runtime.state(id))?.status, 'running', 'the container still runs');

  // The adopted container is the worker's: stopping the worker stops it and reports it.
  await withTimeout(worker.stopAll(), 20_000);
  t.is(await fx.runtime.state(id), undefined, 'stopped and deleted by the worker');
  t.deepEqual(await fx.leftoverCgroups(), [], "the container's cgroup went with it");
  t.deepEqual(
    reports.map((r) => r.state),
    ['shutdown'],
  );
});

test('a container the runtime definitely does not have is reported lost', async (t) => {
  const { fx, reports, makeWorker } = await world(t);
  const task = runningTask('web.1.gone1');
  t.is(await fx.runtime.state(containerIdFor(task)), undefined, 'no such container');

  const worker = makeWorker(fx.runtime);
  worker.reconcile([task]);

  await eventually('the task to be reported', () => Promise.resolve(reports[0]), 15_000, 50);
  t.deepEqual(reports, [{ state: 'failed', message: 'container lost: it was gone when the node agent restarted' }]);
  t.deepEqual(worker.running(), []);
});
