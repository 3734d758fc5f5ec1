import test from 'ava';
import { API_VERSION, type Service, type ServiceSpec, type Task, type TaskState } from '../../common/resources/types.js';
import { restartDelayMs } from '../../control-plane/controllers/restart-backoff.js';
import { MAX_TASK_WRITES_PER_PASS, reconcileService, type ReconcileServiceInput } from '../../control-plane/controllers/service-reconcile.js';
import { MAX_REPLICAS } from '../../common/resources/limits.js';
import { taskName } from '../../control-plane/controllers/task-naming.js';

const T0 = Date.parse('2024-01-01T00:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function svc(spec: Partial<ServiceSpec> = {}, generation = 1, stack?: string): Service {
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'web', generation, ...(stack ? { stack } : {}) },
    spec: { image: 'busybox', ...spec },
  };
}

interface TaskOptions {
  slot: number;
  state?: TaskState;
  desired?: Task['desiredState'];
  /** ms after T0 */
  created?: number;
  /** ms after T0 of the last state change (the end, for terminal tasks) */
  changed?: number;
  exitCode?: number;
  spec?: ServiceSpec;
}

let counter = 0;
/** Tasks made without an explicit spec get the spec of the service they are reconciled with. */
const specFromService = new WeakSet<Task>();

function tk(o: TaskOptions): Task {
  const name = `web.${o.slot}.t${String(++counter).padStart(4, '0')}`;
  const task: Task = {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name, createdAt: iso(T0 + (o.created ?? 0)) },
    spec: { serviceName: 'web', serviceStack: '', serviceGeneration: 1, slot: o.slot, spec: o.spec ?? { image: 'busybox' } },
    nodeName: 'n1',
    desiredState: o.desired ?? 'running',
    status: {
      state: o.state ?? 'running',
      timestamp: iso(T0 + (o.changed ?? o.created ?? 0)),
      ...(o.exitCode !== undefined ? { exitCode: o.exitCode } : {}),
    },
  };
  if (!o.spec) specFromService.add(task);
  return task;
}

function run(service: Service | undefined, tasks: Task[], nowOffset = 60_000, stack = '') {
  let id = 0;
  for (const t of tasks) if (service && specFromService.has(t)) t.spec.spec = structuredClone(service.spec);
  const input: ReconcileServiceInput = { service, serviceKey: { stack, name: 'web' }, tasks, now: T0 + nowOffset };
  // The rollout status the decision also writes has tests of its own (rollout.test.ts).
  const { service: _statusWrite, ...decision } = reconcileService(input, () => `id${String(++id).padStart(6, '0')}`);
  return decision;
}

const slotsOf = (tasks: Task[]): number[] => tasks.map((t) => t.spec.slot);
const names = (tasks: Task[]): string[] => tasks.map((t) => t.metadata.name);

test('task names', (t) => {
  t.is(taskName('', 'web', 3, 'abcd1234'), 'web.3.abcd1234');
  t.is(taskName('shop', 'web', 1, 'abcd1234'), 'shop_web.1.abcd1234');
});

test('a new service gets one task per slot, fully formed', (t) => {
  const d = run(svc({ replicas: 3 }, 4), []);
  t.deepEqual(slotsOf(d.create), [1, 2, 3]);
  t.deepEqual(d.shutdown, []);
  t.deepEqual(d.remove, []);
  t.is(d.requeueAfterMs, undefined);
  t.deepEqual(d.create[0], {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: 'web.1.id000001' },
    spec: { serviceName: 'web', serviceStack: '', serviceGeneration: 4, slot: 1, spec: { image: 'busybox', replicas: 3 } },
    desiredState: 'running',
    status: { state: 'new', timestamp: iso(T0 + 60_000) },
  });
});

test('tasks of a stacked service carry the stack', (t) => {
  const d = run(svc({}, 1, 'shop'), [], 0, 'shop');
  t.is(d.create[0]?.metadata.name, 'shop_web.1.id000001');
  t.is(d.create[0]?.metadata.stack, 'shop');
  t.is(d.create[0]?.spec.serviceStack, 'shop');
});

test('replicas default to 1', (t) => {
  t.deepEqual(slotsOf(run(svc(), []).create), [1]);
});

test('the created spec is a copy, not the service object', (t) => {
  const service = svc({ env: { A: '1' } });
  const d = run(service, []);
  d.create[0]!.spec.spec.env!.A = 'changed';
  t.is(service.spec.env?.A, '1');
});

test('steady state: nothing to do', (t) => {
  const tasks = [1, 2, 3].map((slot) => tk({ slot }));
  t.deepEqual(run(svc({ replicas: 3 }), tasks), { create: [], shutdown: [], remove: [] });
});

test('tasks still starting count as live', (t) => {
  const tasks = (['new', 'pending', 'assigned', 'starting'] as const).map((state, i) => tk({ slot: i + 1, state }));
  t.deepEqual(run(svc({ replicas: 4 }), tasks).create, []);
});

test('scale up creates only the missing slots', (t) => {
  const d = run(svc({ replicas: 4 }), [tk({ slot: 1 }), tk({ slot: 2 })]);
  t.deepEqual(slotsOf(d.create), [3, 4]);
  t.deepEqual(d.shutdown, []);
});

test('scale down shuts down the highest slots first', (t) => {
  const tasks = [1, 2, 3, 4].map((slot) => tk({ slot }));
  const d = run(svc({ replicas: 2 }), tasks);
  t.deepEqual(d.create, []);
  t.deepEqual(d.shutdown, [tasks[3]!.metadata.name, tasks[2]!.metadata.name]);
});

test('scale to zero shuts everything down', (t) => {
  const tasks = [1, 2].map((slot) => tk({ slot }));
  const d = run(svc({ replicas: 0 }), tasks);
  t.deepEqual(d.shutdown.sort(), names(tasks).sort());
  t.deepEqual(d.create, []);
});

test('scaled-away slots lose their history once their tasks have stopped', (t) => {
  const stopped = tk({ slot: 2, state: 'shutdown', desired: 'shutdown' });
  const stopping = tk({ slot: 3, state: 'running', desired: 'shutdown' });
  const d = run(svc({ replicas: 1 }), [tk({ slot: 1 }), stopped, stopping]);
  t.deepEqual(d.remove, [stopped.metadata.name]);
  t.deepEqual(d.shutdown, [], 'a task already told to stop is not told again');
});

test('scaling back up does not wait for back-off: the old task was stopped by us', (t) => {
  const stopped = tk({ slot: 2, state: 'shutdown', desired: 'shutdown', changed: 59_999, exitCode: 143 });
  const d = run(svc({ replicas: 2, restart: { condition: 'none' } }), [tk({ slot: 1 }), stopped]);
  t.deepEqual(slotsOf(d.create), [2]);
});

test('restart any: a failed task is replaced', (t) => {
  const failed = tk({ slot: 1, state: 'failed', exitCode: 1, changed: 1000 });
  t.deepEqual(slotsOf(run(svc(), [failed]).create), [1]);
});

test('restart any: a task that completed is replaced too', (t) => {
  const done = tk({ slot: 1, state: 'complete', exitCode: 0, changed: 1000 });
  t.deepEqual(slotsOf(run(svc({ restart: { condition: 'any' } }), [done]).create), [1]);
});

test('restart on-failure: replaced only if it failed', (t) => {
  const service = svc({ restart: { condition: 'on-failure' } });
  t.deepEqual(run(service, [tk({ slot: 1, state: 'complete', exitCode: 0 })]).create, []);
  t.deepEqual(run(service, [tk({ slot: 1, state: 'complete' })]).create, [], 'no exit code recorded means success');
  t.is(run(service, [tk({ slot: 1, state: 'complete', exitCode: 3 })]).create.length, 1);
  t.is(run(service, [tk({ slot: 1, state: 'failed', exitCode: 137 })]).create.length, 1);
  t.is(run(service, [tk({ slot: 1, state: 'rejected' })]).create.length, 1);
});

test('restart none: an exited task stays exited', (t) => {
  const service = svc({ restart: { condition: 'none' } });
  for (const ended of [tk({ slot: 1, state: 'complete', exitCode: 0 }), tk({ slot: 1, state: 'failed', exitCode: 1 })]) {
    t.deepEqual(run(service, [ended]), { create: [], shutdown: [], remove: [] });
  }
});

test('an orphaned task (its node went down) is replaced whatever the condition', (t) => {
  const lost = tk({ slot: 1, state: 'orphaned' });
  t.is(run(svc({ restart: { condition: 'none' } }), [lost]).create.length, 1);
  t.is(run(svc({ restart: { condition: 'on-failure' } }), [lost]).create.length, 1);
});

test('a replacement of a task that ended on its own is marked a restart; a lost node, a new slot or an update is not', (t) => {
  const service = svc();
  const failed = run(service, [tk({ slot: 1, state: 'failed', exitCode: 1 })]);
  t.deepEqual(failed.restarts, [failed.create[0]!.metadata.name]);
  const orphaned = run(service, [tk({ slot: 1, state: 'orphaned' })]);
  t.is(orphaned.create.length, 1);
  t.is(orphaned.restarts, undefined);
  const fresh = run(svc({ replicas: 2 }), []);
  t.is(fresh.create.length, 2);
  t.is(fresh.restarts, undefined);
});

test('back-off: the first restart waits the base delay', (t) => {
  const failed = tk({ slot: 1, state: 'failed', exitCode: 1, changed: 10_000 });
  const service = svc({ restart: { delayMs: 100 } });
  const early = run(service, [failed], 10_040);
  t.deepEqual(early.create, []);
  t.is(early.requeueAfterMs, 60);
  const later = run(service, [failed], 10_100);
  t.is(later.create.length, 1);
  t.is(later.requeueAfterMs, undefined);
});

test('back-off doubles with each consecutive failure of the slot', (t) => {
  // Three short-lived failures in a row: delay 100 × 2² = 400 ms after the newest.
  const tasks = [
    tk({ slot: 1, state: 'failed', created: 0, changed: 50 }),
    tk({ slot: 1, state: 'failed', created: 200, changed: 250 }),
    tk({ slot: 1, state: 'failed', created: 600, changed: 650 }),
  ];
  const d = run(svc(), tasks, 650 + 300);
  t.deepEqual(d.create, []);
  t.is(d.requeueAfterMs, 100);
  t.is(run(svc(), tasks, 650 + 400).create.length, 1);
});

test('back-off is capped by maxDelayMs', (t) => {
  const tasks = Array.from({ length: 5 }, (_, i) => tk({ slot: 1, state: 'failed', created: i * 10, changed: i * 10 + 1 }));
  const service = svc({ restart: { delayMs: 1000, maxDelayMs: 3000 } });
  const d = run(service, tasks, 41 + 10);
  t.is(d.requeueAfterMs, 3000 - 10);
});

test('back-off restarts from the base delay after a task that ran long enough', (t) => {
  const tasks = [
    tk({ slot: 1, state: 'failed', created: 0, changed: 10 }),
    tk({ slot: 1, state: 'failed', created: 20, changed: 30 }),
    // Ran 30 s (more than twice the 10 s maximum delay) before failing.
    tk({ slot: 1, state: 'failed', created: 100, changed: 30_100 }),
  ];
  const d = run(svc(), tasks, 30_100 + 50);
  t.is(d.requeueAfterMs, 50, 'base delay of 100 ms, 50 ms already passed');
});

test('the requeue time is the shortest wait over all slots', (t) => {
  const tasks = [tk({ slot: 1, state: 'failed', changed: 1000 }), tk({ slot: 2, state: 'failed', changed: 1030 })];
  const d = run(svc({ replicas: 2 }), tasks, 1050);
  t.is(d.requeueAfterMs, 50);
});

test('restartDelayMs', (t) => {
  t.is(restartDelayMs(undefined, 1), 100);
  t.is(restartDelayMs(undefined, 2), 200);
  t.is(restartDelayMs(undefined, 7), 6400);
  t.is(restartDelayMs(undefined, 8), 10_000);
  t.is(restartDelayMs(undefined, 10_000), 10_000);
  t.is(restartDelayMs({ delayMs: 0 }, 5), 0);
  t.is(restartDelayMs({ delayMs: 500, maxDelayMs: 200 }, 1), 200);
});

test('maxAttempts caps restarts of the current spec', (t) => {
  const service = svc({ restart: { maxAttempts: 2 } });
  const ended = (i: number, spec?: ServiceSpec) =>
    tk({ slot: 1, state: 'failed', created: i * 100_000, changed: i * 100_000 + 50_000, ...(spec ? { spec } : {}) });
  // Original + 1 restart ended: one restart left.
  t.is(run(service, [ended(0), ended(1)], 1_000_000).create.length, 1);
  // Original + 2 restarts ended: give up.
  t.deepEqual(run(service, [ended(0), ended(1), ended(2)], 1_000_000).create, []);
  // Tasks of an earlier spec do not use up attempts (their spec differs).
  const old = { image: 'busybox:old', restart: { maxAttempts: 2 } };
  t.is(run(service, [ended(0, old), ended(1, old), ended(2)], 1_000_000).create.length, 1);
});

test('a spec change replaces live tasks with tasks of the new spec (all at once, start-first)', (t) => {
  const oldSpec: ServiceSpec = { image: 'busybox:1', replicas: 2 };
  const tasks = [tk({ slot: 1, spec: oldSpec }), tk({ slot: 2, spec: oldSpec })];
  const d = run(svc({ image: 'busybox:2', replicas: 2, updateConfig: { parallelism: 0, order: 'start-first' } }, 2), tasks);
  t.deepEqual(d.shutdown, [], 'the old tasks serve until the new ones are ready');
  t.deepEqual(slotsOf(d.create), [1, 2]);
  t.true(d.create.every((c) => c.spec.spec.image === 'busybox:2' && c.spec.serviceGeneration === 2));
});

test('by default a spec change updates one slot at a time, stopping its old task first', (t) => {
  const oldSpec: ServiceSpec = { image: 'busybox:1', replicas: 2 };
  const tasks = [tk({ slot: 1, spec: oldSpec }), tk({ slot: 2, spec: oldSpec })];
  const d = run(svc({ image: 'busybox:2', replicas: 2 }, 2), tasks);
  t.deepEqual(d.shutdown, [tasks[0]!.metadata.name]);
  t.deepEqual(d.create, [], 'the new task waits until the old one has stopped');
});

test('once replaced, the old task stopping does not cause another replacement', (t) => {
  const oldSpec: ServiceSpec = { image: 'busybox:1' };
  const stopping = tk({ slot: 1, spec: oldSpec, desired: 'shutdown', created: 0 });
  const replacement = tk({ slot: 1, spec: { image: 'busybox:2' }, state: 'starting', created: 10 });
  t.deepEqual(run(svc({ image: 'busybox:2' }, 2), [stopping, replacement]), { create: [], shutdown: [], remove: [] });
});

test('changing only the replica count is a scale, not an update', (t) => {
  const tasks = [tk({ slot: 1, spec: { image: 'busybox', replicas: 1 } })];
  const d = run(svc({ image: 'busybox', replicas: 2 }, 2), tasks);
  t.deepEqual(d.shutdown, []);
  t.deepEqual(slotsOf(d.create), [2]);
});

test('key order in the spec is not a change', (t) => {
  const tasks = [tk({ slot: 1, spec: { image: 'busybox', env: { A: '1', B: '2' } } })];
  const d = run(svc({ env: { B: '2', A: '1' } }), tasks);
  t.deepEqual(d, { create: [], shutdown: [], remove: [] });
});

test('a spec change runs the new spec even in a slot whose task exited under restart none', (t) => {
  const exited = tk({ slot: 1, state: 'complete', exitCode: 0, spec: { image: 'busybox:1', restart: { condition: 'none' } } });
  const d = run(svc({ image: 'busybox:2', restart: { condition: 'none' } }, 2), [exited]);
  t.is(d.create.length, 1);
});

test('duplicate live tasks in a slot: the one furthest along stays', (t) => {
  const running = tk({ slot: 1, state: 'running', created: 0 });
  const starting = tk({ slot: 1, state: 'starting', created: 10 });
  const d = run(svc(), [starting, running]);
  t.deepEqual(d.shutdown, [starting.metadata.name]);
  t.deepEqual(d.create, []);
});

test('deleted service: live tasks shut down, stopped ones removed, stopping ones waited for', (t) => {
  const live = tk({ slot: 1 });
  const pending = tk({ slot: 2, state: 'pending' });
  const stopping = tk({ slot: 3, desired: 'shutdown' });
  const done = tk({ slot: 4, state: 'complete', desired: 'shutdown' });
  const failed = tk({ slot: 5, state: 'failed' });
  const d = run(undefined, [live, pending, stopping, done, failed]);
  t.deepEqual(d.create, []);
  t.deepEqual(d.shutdown.sort(), [live.metadata.name, pending.metadata.name].sort());
  t.deepEqual(d.remove.sort(), [done.metadata.name, failed.metadata.name].sort());
});

test('GC keeps the 5 newest terminal tasks per slot', (t) => {
  const history = Array.from({ length: 8 }, (_, i) => tk({ slot: 1, state: 'failed', created: i * 1000, changed: i * 1000 + 500 }));
  const current = tk({ slot: 1, created: 9000 });
  const d = run(svc(), [current, ...history], 20_000);
  t.deepEqual(d.remove.sort(), names(history.slice(0, 3)).sort());
  t.deepEqual(d.create, []);
});

test('GC keeps enough history to count maxAttempts', (t) => {
  const history = Array.from({ length: 8 }, (_, i) => tk({ slot: 1, state: 'failed', created: i * 1000, changed: i * 1000 + 500 }));
  const d = run(svc({ restart: { maxAttempts: 6 } }), [tk({ slot: 1, created: 9000 }), ...history], 20_000);
  t.deepEqual(d.remove.sort(), names(history.slice(0, 1)).sort());
});

// ---- health (issue 6): an unhealthy task is shut down and replaced by the restart policy ----

function unhealthy(o: TaskOptions): Task {
  const task = tk(o);
  task.status = { ...task.status, health: 'unhealthy', healthChangedAt: task.status.timestamp };
  return task;
}

test('an unhealthy task is shut down and replaced (restart any)', (t) => {
  const sick = unhealthy({ slot: 1, created: 0, changed: 10_000 });
  const d = run(svc({ replicas: 2 }), [sick, tk({ slot: 2 })]);
  t.deepEqual(d.shutdown, [sick.metadata.name]);
  t.deepEqual(slotsOf(d.create), [1]);
});

test('healthy and starting tasks are left alone', (t) => {
  const a = tk({ slot: 1 });
  a.status.health = 'healthy';
  const b = tk({ slot: 2 });
  b.status.health = 'starting';
  t.deepEqual(run(svc({ replicas: 2 }), [a, b]), { create: [], shutdown: [], remove: [] });
});

test('restart none: an unhealthy task is shut down and not replaced; on-failure replaces it', (t) => {
  const sick = unhealthy({ slot: 1, changed: 10_000 });
  const none = run(svc({ restart: { condition: 'none' } }), [sick]);
  t.deepEqual(none.shutdown, [sick.metadata.name]);
  t.deepEqual(none.create, []);
  t.is(run(svc({ restart: { condition: 'on-failure' } }), [unhealthy({ slot: 1, changed: 10_000 })]).create.length, 1);
});

test('an unhealthy task the controller shut down counts as a failure: back-off and maxAttempts apply, not an immediate replacement', (t) => {
  const service = svc({ restart: { delayMs: 1_000, maxAttempts: 1 } });
  const stopping = unhealthy({ slot: 1, desired: 'shutdown', created: 0, changed: 10_000 });
  const early = run(service, [stopping], 10_400);
  t.deepEqual(early.create, [], 'within the back-off');
  t.is(early.requeueAfterMs, 600);
  t.is(run(service, [stopping], 11_000).create.length, 1);
  const stopped = unhealthy({ slot: 1, desired: 'shutdown', state: 'shutdown', created: 0, changed: 10_000 });
  const second = unhealthy({ slot: 1, desired: 'shutdown', state: 'shutdown', created: 20_000, changed: 30_000 });
  t.deepEqual(run(service, [stopped, second], 100_000).create, [], 'maxAttempts 1: the original and one restart have failed');
});

test('a duplicate live task of the slot is kept when the other one turns unhealthy', (t) => {
  const sick = unhealthy({ slot: 1, created: 0, changed: 10_000 });
  const fine = tk({ slot: 1, created: 5_000 });
  const d = run(svc(), [sick, fine]);
  t.deepEqual(d.shutdown, [sick.metadata.name]);
  t.deepEqual(d.create, []);
});

test('replicated-job: a task that completes is done; a failed one is retried (on-failure by default)', (t) => {
  const job = svc({ mode: 'replicated-job', replicas: 3 });
  t.deepEqual(slotsOf(run(job, []).create), [1, 2, 3], 'every completion gets its slot');
  const done = (slot: number) => tk({ slot, state: 'complete', exitCode: 0, changed: 1000 });
  t.deepEqual(run(job, [done(1), done(2), done(3)]).create, [], 'all done: nothing runs again');
  t.deepEqual(slotsOf(run(job, [done(1), done(2), tk({ slot: 3, state: 'failed', exitCode: 2, changed: 1000 })]).create), [3]);
  // restart none: a failed completion is not retried either.
  const once = svc({ mode: 'replicated-job', replicas: 1, restart: { condition: 'none' } });
  t.deepEqual(run(once, [tk({ slot: 1, state: 'failed', exitCode: 2, changed: 1000 })]).create, []);
});

test('restart window: maxAttempts counts only the ends inside the window, and restarts resume once they age out', (t) => {
  const service = svc({ restart: { maxAttempts: 1, windowMs: 60_000, delayMs: 0 } });
  const ended = (at: number) => tk({ slot: 1, state: 'failed', created: at - 1_000, changed: at });
  // Two ends within the last minute: the one allowed restart is used up; wait until the older leaves the window.
  const both = run(service, [ended(100_000), ended(130_000)], 140_000);
  t.deepEqual(both.create, []);
  t.is(both.requeueAfterMs, 100_000 + 60_000 - 140_000);
  // Later, the older end is outside the window: one restart is allowed again.
  t.is(run(service, [ended(100_000), ended(130_000)], 170_000).create.length, 1);
  // Without a window the same history gives up for good.
  t.deepEqual(run(svc({ restart: { maxAttempts: 1, delayMs: 0 } }), [ended(100_000), ended(130_000)], 1_000_000).create, []);
});

// ---- bounded passes (issue 12 §5: replicas 1e6 ran one 34 s pass; 2^53-1 threw RangeError after 35 s) ----

test('one pass creates at most MAX_TASK_WRITES_PER_PASS tasks, lowest free slots first, and asks to run again at once', (t) => {
  const have = Array.from({ length: 500 }, (_, i) => tk({ slot: i + 1 }));
  const d = run(svc({ replicas: 3000 }), have);
  t.is(d.create.length, MAX_TASK_WRITES_PER_PASS);
  t.deepEqual(
    slotsOf(d.create),
    Array.from({ length: MAX_TASK_WRITES_PER_PASS }, (_, i) => 501 + i),
  );
  t.is(d.requeueAfterMs, 0, 'the rest is created by the next passes');
  const done = run(svc({ replicas: 600 }), have);
  t.is(done.create.length, 100);
  t.is(done.requeueAfterMs, undefined, 'nothing left over: no extra pass');
});

test('a stored service beyond the replica limit (2^53-1, 1e6) is treated as MAX_REPLICAS, one bounded pass at a time', (t) => {
  for (const replicas of [Number.MAX_SAFE_INTEGER, 1_000_000]) {
    const d = run(svc({ replicas }), []);
    t.is(d.create.length, MAX_TASK_WRITES_PER_PASS);
    t.is(d.requeueAfterMs, 0);
  }
  // At the limit, every task present: nothing to do; one over it (a slot the limit cuts off) is scaled away.
  const full = Array.from({ length: MAX_REPLICAS + 1 }, (_, i) => tk({ slot: i + 1 }));
  const d = run(svc({ replicas: 1_000_000 }), full);
  t.deepEqual(d.create, []);
  t.deepEqual(d.shutdown, [full.at(-1)!.metadata.name]);
});

test('scaling away more tasks than one pass may write: the decision lists them all, highest slot first', (t) => {
  // The controller writes at most MAX_TASK_WRITES_PER_PASS of them per pass (service-controller-bounds.test.ts).
  const have = Array.from({ length: 1500 }, (_, i) => tk({ slot: i + 1 }));
  const d = run(svc({ replicas: 10 }), have);
  t.is(d.shutdown.length, 1490);
  t.is(d.shutdown[0], have[1499]!.metadata.name);
});
