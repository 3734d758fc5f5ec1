// The rolling update rules, driven through the real service decision (reconcileService and
// reconcileGlobalService) by a small deterministic simulation: the "agent" here is a function that
// moves tasks along (new → running, or → failed for a spec marked to crash), and time is a number.
// Nothing is mocked but the agent and the clock, which are what the decision is pure of.
import test from 'ava';

import { reconcileService } from '../../control-plane/controllers/service-reconcile.js';
import { reconcileGlobalService, GLOBAL_SLOT } from '../../control-plane/controllers/global-reconcile.js';
import { DEFAULT_UPDATE_POLICY, policyFor, rollbackSpec, templateKey } from '../../control-plane/controllers/rollout.js';
import { describeSpecChange } from '../../control-plane/controllers/rollout-change.js';
import { API_VERSION, isTerminal, type Node, type Service, type ServiceSpec, type Task, type UpdatePolicy } from '../../common/resources/types.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Specs whose command is ["crash"] fail at once; ["unhealthy"] run but report unhealthy; ["starting"] run with health checks still starting;
 * ["never-healthy"] stay starting for 20 s (a long start period), then turn unhealthy;
 * ["crash-later"] fail 1 s after they started running; ["sickens"] are healthy, then unhealthy 2 s after they started running.
 * Like the manager (task-status.ts), the sim records startedAt, healthChangedAt and healthyAt, and a report keeps the fields it does not set.
 */
interface SimOptions {
  /** How long a new task takes to reach running, in ms. */
  startMs?: number;
  /** How long a shut-down task takes to stop, in ms. */
  stopMs?: number;
  nodes?: string[];
}

class Sim {
  now = T0;
  tasks = new Map<string, Task>();
  ids = 0;
  /** The fewest ready tasks of the service seen after each step, once the first rollout began. */
  readyLow = Infinity;
  deleted = false;
  private readonly shutdownAt = new Map<string, number>();

  constructor(
    public service: Service,
    private readonly options: SimOptions = {},
  ) {}

  get ready(): Task[] {
    return [...this.tasks.values()].filter((t) => t.desiredState === 'running' && t.status.state === 'running' && t.status.health !== 'unhealthy');
  }

  get live(): Task[] {
    return [...this.tasks.values()].filter((t) => !isTerminal(t.status.state));
  }

  /** One controller pass. */
  reconcile(): ReturnType<typeof reconcileService> {
    const input = {
      service: this.deleted ? undefined : this.service,
      serviceKey: { stack: '', name: 'web' },
      tasks: [...this.tasks.values()].map((t) => structuredClone(t)),
      now: this.now,
    };
    const newId = () => `i${++this.ids}`;
    const d =
      this.service.spec.mode === 'global'
        ? reconcileGlobalService({ ...input, nodes: (this.options.nodes ?? []).map(node) }, newId)
        : reconcileService(input, newId);
    if (d.service) {
      // As the controller does: the service write first, then the task writes of the same pass.
      if (templateKey(d.service.spec) !== templateKey(this.service.spec)) this.service.metadata.generation = (this.service.metadata.generation ?? 1) + 1;
      this.service = { ...this.service, spec: d.service.spec, status: d.service.status };
    }
    for (const t of d.create) this.tasks.set(t.metadata.name, { ...t, metadata: { ...t.metadata, createdAt: iso(this.now) }, nodeName: t.nodeName ?? 'n1' });
    for (const name of d.shutdown) {
      const t = this.tasks.get(name)!;
      if (t.desiredState !== 'shutdown') this.shutdownAt.set(name, this.now);
      this.tasks.set(name, { ...t, desiredState: 'shutdown' });
    }
    for (const name of d.remove) this.tasks.delete(name);
    return d;
  }

  /** The agent: tasks move on once their time has come. */
  agent(): void {
    const startMs = this.options.startMs ?? 1_000;
    const stopMs = this.options.stopMs ?? 500;
    for (const t of this.tasks.values()) {
      if (isTerminal(t.status.state)) continue;
      if (t.desiredState === 'shutdown') {
        if (this.now - (this.shutdownAt.get(t.metadata.name) ?? 0) >= stopMs) t.status = { ...t.status, state: 'shutdown', timestamp: iso(this.now) };
        continue;
      }
      const cmd = t.spec.spec.command?.[0];
      const at = iso(this.now);
      if (t.status.state !== 'running' && this.now - Date.parse(t.metadata.createdAt!) >= startMs) {
        if (cmd === 'crash') t.status = { state: 'failed', exitCode: 1, timestamp: at };
        else if (cmd === 'unhealthy' || cmd === 'starting' || cmd === 'never-healthy')
          t.status = { state: 'running', timestamp: at, startedAt: at, health: cmd === 'unhealthy' ? 'unhealthy' : 'starting', healthChangedAt: at };
        else if (cmd === 'sickens') t.status = { state: 'running', timestamp: at, startedAt: at, health: 'healthy', healthChangedAt: at, healthyAt: at };
        else t.status = { state: 'running', timestamp: at, startedAt: at };
      } else if (t.status.state === 'running') {
        const ranFor = this.now - Date.parse(t.status.startedAt ?? at);
        if (cmd === 'crash-later' && ranFor >= 1_000) t.status = { ...t.status, state: 'failed', exitCode: 1, timestamp: at };
        if (cmd === 'never-healthy' && ranFor >= 20_000 && t.status.health === 'starting')
          t.status = { ...t.status, health: 'unhealthy', healthChangedAt: at, timestamp: at };
        if (cmd === 'sickens' && ranFor >= 2_000 && t.status.health === 'healthy')
          t.status = { ...t.status, health: 'unhealthy', healthChangedAt: at, timestamp: at };
      }
    }
  }

  /** Runs controller and agent in 100 ms steps for `ms`. */
  run(ms: number, watchFloor = false): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.reconcile();
      this.reconcile();
      if (watchFloor) this.readyLow = Math.min(this.readyLow, this.ready.length);
      this.now += 100;
      this.agent();
      if (watchFloor) this.readyLow = Math.min(this.readyLow, this.ready.length);
    }
  }

  apply(spec: Partial<ServiceSpec>): void {
    this.service = {
      ...this.service,
      spec: { ...this.service.spec, ...spec },
      metadata: { ...this.service.metadata, generation: (this.service.metadata.generation ?? 1) + 1 },
    };
  }

  /** Replaces the spec wholesale, as `apply` of a whole manifest does. */
  setSpec(spec: ServiceSpec): void {
    this.service = {
      ...this.service,
      spec: structuredClone(spec),
      metadata: { ...this.service.metadata, generation: (this.service.metadata.generation ?? 1) + 1 },
    };
  }

  images(): string[] {
    return this.ready.map((t) => t.spec.spec.image).sort();
  }

  get update() {
    return this.service.status?.update;
  }
}

function node(name: string): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { availability: 'active', role: 'worker' },
    status: { state: 'ready', hostname: name, resources: { memoryBytes: 1e9, nanoCpus: 1e9 } },
  };
}

function service(spec: Partial<ServiceSpec> & { updateConfig?: UpdatePolicy } = {}): Service {
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: 'web', generation: 1, createdAt: iso(T0) },
    spec: { image: 'app:1', replicas: 4, ...spec },
  };
}

/** A service of `replicas` tasks, all running app:1. */
function steady(spec: Partial<ServiceSpec> = {}, options: SimOptions = {}): Sim {
  const sim = new Sim(service(spec), options);
  sim.run(3_000);
  return sim;
}

/** The most tasks of the new image that were not ready at once, sampled every step. */
function maxInFlight(sim: Sim, image: string, ms: number): number {
  let most = 0;
  const end = sim.now + ms;
  while (sim.now < end) {
    sim.run(100);
    const starting = [...sim.tasks.values()].filter((t) => t.spec.spec.image === image && !isTerminal(t.status.state) && t.status.state !== 'running').length;
    most = Math.max(most, starting);
  }
  return most;
}

test('creation is not a rollout: every slot starts at once and the status records generation 1', (t) => {
  const sim = new Sim(service({ replicas: 5 }));
  const d = sim.reconcile();
  t.truthy(d.service, 'the status is written in the same pass');
  t.is(d.create.length, 5);
  t.is(sim.update, undefined);
  t.deepEqual(
    sim.service.status?.history?.map((h) => [h.generation, h.kind]),
    [[1, 'create']],
  );
  t.is(templateKey(sim.service.status!.currentSpec!), templateKey(sim.service.spec));
});

test('a scale is not a rollout', (t) => {
  const sim = steady();
  sim.service.spec.replicas = 6;
  sim.run(2_000);
  t.is(sim.update, undefined);
  t.is(sim.ready.length, 6);
});

test("defaults are Swarm's: parallelism 1, stop-first, pause, monitor 5 s, ratio 0", (t) => {
  t.deepEqual(policyFor({ image: 'x' }, undefined), DEFAULT_UPDATE_POLICY);
  t.deepEqual(DEFAULT_UPDATE_POLICY, { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5_000, maxFailureRatio: 0, order: 'stop-first' });
  t.is(
    policyFor({ image: 'x', updateConfig: { order: 'start-first' }, rollbackConfig: { parallelism: 3 } }, { state: 'rollback_started', startedAt: iso(T0) })
      .parallelism,
    3,
  );
});

test('parallelism 1: one slot at a time, the update completes after the monitor period', (t) => {
  const sim = steady({ updateConfig: { parallelism: 1, monitorMs: 2_000 } });
  sim.apply({ image: 'app:2' });
  t.is(maxInFlight(sim, 'app:2', 8_000), 1);
  t.deepEqual(sim.images(), ['app:2', 'app:2', 'app:2', 'app:2']);
  t.is(sim.update?.state, 'updating', 'still inside the monitor period of the last task');
  sim.run(3_000);
  t.is(sim.update?.state, 'completed');
  t.is(sim.update?.message, 'update completed');
  t.truthy(sim.update?.completedAt);
});

test('parallelism 2 updates two slots at a time; parallelism 0 all of them', (t) => {
  const two = steady({ updateConfig: { parallelism: 2 } });
  two.apply({ image: 'app:2' });
  t.is(maxInFlight(two, 'app:2', 10_000), 2);
  t.deepEqual(two.images(), ['app:2', 'app:2', 'app:2', 'app:2']);

  const all = steady({ updateConfig: { parallelism: 0 } });
  all.apply({ image: 'app:2' });
  t.is(maxInFlight(all, 'app:2', 5_000), 4);
});

test('delay: the next slot starts only delayMs after the previous one became ready', (t) => {
  const sim = steady({ updateConfig: { parallelism: 1, delayMs: 3_000 } });
  sim.apply({ image: 'app:2' });
  sim.run(2_000); // slot 1: stop 0.5 s, start 1 s → ready at about 1.6 s
  t.is(sim.images().filter((i) => i === 'app:2').length, 1);
  sim.run(2_000); // 4 s: still inside the 3 s delay
  t.is([...sim.tasks.values()].filter((x) => x.spec.spec.image === 'app:2').length, 1, 'no second new task during the delay');
  sim.run(2_000);
  t.is([...sim.tasks.values()].filter((x) => x.spec.spec.image === 'app:2').length, 2);
});

test('delay: the decision asks to be called again when the delay ends', (t) => {
  const sim = steady({ updateConfig: { parallelism: 1, delayMs: 3_000 } });
  sim.apply({ image: 'app:2' });
  sim.run(2_000);
  const d = sim.reconcile();
  t.true(d.requeueAfterMs !== undefined && d.requeueAfterMs > 0 && d.requeueAfterMs <= 3_000);
});

test('stop-first: the old task has stopped before its replacement exists', (t) => {
  const sim = steady({ replicas: 1 });
  sim.apply({ image: 'app:2' });
  sim.reconcile();
  sim.reconcile();
  const old = [...sim.tasks.values()].find((x) => x.spec.spec.image === 'app:1')!;
  t.is(old.desiredState, 'shutdown');
  t.false(
    [...sim.tasks.values()].some((x) => x.spec.spec.image === 'app:2'),
    'no new task while the old one stops',
  );
  sim.run(400); // stopMs 500: still stopping
  t.false([...sim.tasks.values()].some((x) => x.spec.spec.image === 'app:2'));
  sim.run(400);
  t.true([...sim.tasks.values()].some((x) => x.spec.spec.image === 'app:2'));
});

test('start-first never goes below the desired number of ready tasks', (t) => {
  for (const parallelism of [1, 2, 0]) {
    const sim = steady({ updateConfig: { order: 'start-first', parallelism } }, { startMs: 1_500, stopMs: 800 });
    sim.apply({ image: 'app:2' });
    sim.run(20_000, true);
    t.is(sim.readyLow, 4, `parallelism ${parallelism}`);
    t.deepEqual(sim.images(), ['app:2', 'app:2', 'app:2', 'app:2']);
    t.is(sim.update?.state, 'completed');
  }
});

test('stop-first does go below (the contrast that shows the floor test measures something)', (t) => {
  const sim = steady({ updateConfig: { order: 'stop-first' } });
  sim.apply({ image: 'app:2' });
  sim.run(20_000, true);
  t.is(sim.readyLow, 3);
});

test('start-first waits for health when the task reports it: an unhealthy new task never replaces the old one', (t) => {
  const sim = steady({ replicas: 2, updateConfig: { order: 'start-first', failureAction: 'continue' } });
  sim.apply({ image: 'app:2', command: ['unhealthy'] });
  sim.run(10_000);
  const live = sim.live.filter((x) => x.desiredState === 'running');
  t.true(
    live.some((x) => x.spec.spec.image === 'app:1'),
    'the old task still runs',
  );
  t.true(sim.ready.length >= 2);
});

test('a task failing within the monitor period pauses the update (failureAction pause)', (t) => {
  const sim = steady({ updateConfig: { failureAction: 'pause', monitorMs: 5_000 } });
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.run(10_000);
  t.is(sim.update?.state, 'paused');
  t.regex(sim.update?.message ?? '', /update paused: task web\.1\.\w+ failed within the monitor period \(1 of 4 failed\)/);
  t.is(sim.ready.filter((x) => x.spec.spec.image === 'app:1').length, 3, 'slots 2..4 were not touched');
});

test('failureAction continue keeps updating past failures', (t) => {
  const sim = steady({ updateConfig: { failureAction: 'continue' } });
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.run(30_000);
  t.is([...sim.tasks.values()].filter((x) => x.desiredState === 'running' && x.spec.spec.image === 'app:1').length, 0, 'every slot was updated');
  t.not(sim.update?.state, 'paused');
});

test('failureAction rollback restores the previous spec and completes as a rollback', (t) => {
  const sim = steady({ updateConfig: { failureAction: 'rollback', monitorMs: 3_000 }, rollbackConfig: { parallelism: 0, monitorMs: 1_000 } });
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.run(5_000);
  t.is(sim.service.spec.image, 'app:1', 'the spec itself is rolled back');
  t.is(sim.service.spec.command, undefined);
  t.is(sim.service.status?.previousSpec?.image, 'app:2');
  t.true(sim.update?.state === 'rollback_started' || sim.update?.state === 'rollback_completed');
  sim.run(10_000);
  t.is(sim.update?.state, 'rollback_completed');
  t.deepEqual(sim.images(), ['app:1', 'app:1', 'app:1', 'app:1']);
  t.deepEqual(
    sim.service.status?.history?.map((h) => h.kind),
    ['create', 'update', 'rollback'],
  );
  t.regex(sim.service.status!.history!.at(-1)!.change, /automatic rollback: image app:2 → app:1; command changed/);
  t.is(sim.service.spec.updateConfig?.failureAction, 'rollback', 'the policies stay as the user wrote them');
});

test('a rollback that fails too pauses instead of rolling back again', (t) => {
  // The "previous" spec crashes as well: undo onto it, with failureAction rollback in rollbackConfig.
  const sim = steady({ updateConfig: { parallelism: 0 }, rollbackConfig: { failureAction: 'rollback' } });
  sim.apply({ image: 'app:0', command: ['crash'] });
  sim.run(3_000);
  t.is(sim.update?.state, 'paused');
  // Undo: the spec goes back to app:1... and once more onto the crashing one.
  sim.setSpec(rollbackSpec(sim.service.spec, sim.service.status!.previousSpec!));
  sim.run(3_000);
  t.is(sim.update?.state, 'rollback_started');
  sim.run(10_000);
  t.is(sim.update?.state, 'rollback_completed');
  sim.setSpec(rollbackSpec(sim.service.spec, sim.service.status!.previousSpec!));
  sim.run(5_000);
  t.is(sim.update?.state, 'rollback_paused');
  t.regex(sim.update?.message ?? '', /^rollback paused: /);
});

test('failureAction rollback without a previous spec pauses and says why', (t) => {
  const sim = new Sim(service({ replicas: 2, updateConfig: { failureAction: 'rollback' } }));
  // Tasks exist from before rollouts were recorded: the status has no currentSpec.
  sim.run(2_000);
  delete sim.service.status;
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.service.status = { update: { state: 'updating', startedAt: iso(sim.now), total: 2, failedTasks: [] }, currentSpec: structuredClone(sim.service.spec) };
  sim.run(5_000);
  t.is(sim.update?.state, 'paused');
  t.regex(sim.update?.message ?? '', /no previous spec to roll back to/);
});

test('max failure ratio: failures up to the ratio are tolerated, one more triggers the action', (t) => {
  // 4 slots, ratio 0.5: 2 failures are 0.5 (not more than), the third is 0.75.
  const sim = steady({ updateConfig: { parallelism: 1, maxFailureRatio: 0.5, monitorMs: 60_000, failureAction: 'pause' }, restart: { condition: 'none' } });
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.run(4_000);
  t.is(sim.update?.state, 'updating');
  t.is(sim.update?.failedTasks?.length, 2);
  sim.run(4_000);
  t.is(sim.update?.state, 'paused');
  t.is(sim.update?.failedTasks?.length, 3);
});

test('a failure after the monitor window does not count', (t) => {
  const sim = steady({ replicas: 1, updateConfig: { monitorMs: 2_000 } });
  sim.apply({ image: 'app:2' });
  sim.run(10_000);
  t.is(sim.update?.state, 'completed');
  const task = sim.ready[0]!;
  task.status = { state: 'failed', exitCode: 1, timestamp: iso(sim.now) };
  sim.run(1_000);
  t.is(sim.update?.state, 'completed');
  t.deepEqual(sim.update?.failedTasks, []);
});

test('undo: applying the previous spec is a rollback and uses rollbackConfig', (t) => {
  const sim = steady({ updateConfig: { parallelism: 1 }, rollbackConfig: { parallelism: 0, order: 'start-first', monitorMs: 1_000 } });
  sim.apply({ image: 'app:2' });
  sim.run(20_000);
  t.is(sim.update?.state, 'completed');
  sim.setSpec(rollbackSpec(sim.service.spec, sim.service.status!.previousSpec!));
  sim.reconcile();
  t.is(sim.update?.state, 'rollback_started');
  t.is(maxInFlight(sim, 'app:1', 2_000), 4, 'rollbackConfig parallelism 0: all at once');
  sim.run(3_000);
  t.is(sim.update?.state, 'rollback_completed');
  t.deepEqual(sim.images(), ['app:1', 'app:1', 'app:1', 'app:1']);
  t.is(sim.service.status?.previousSpec?.image, 'app:2', 'and undo again would go forward');
});

test('a new spec during an update starts a new rollout from where the tasks are', (t) => {
  const sim = steady({ updateConfig: { parallelism: 1 } });
  sim.apply({ image: 'app:2' });
  sim.run(2_000);
  sim.apply({ image: 'app:3' });
  sim.run(30_000);
  t.deepEqual(sim.images(), ['app:3', 'app:3', 'app:3', 'app:3']);
  t.is(sim.update?.state, 'completed');
  t.is(sim.service.status?.previousSpec?.image, 'app:2');
  t.deepEqual(
    sim.service.status?.history?.map((h) => h.change),
    ['created', 'image app:1 → app:2', 'image app:2 → app:3'],
  );
});

test('a scale during an update: new slots start with the new spec, the rollout still completes', (t) => {
  const sim = steady({ updateConfig: { parallelism: 1 } });
  sim.apply({ image: 'app:2' });
  sim.run(2_000);
  sim.service.spec.replicas = 6;
  sim.run(1_500);
  t.true([...sim.tasks.values()].filter((x) => x.spec.slot > 4).every((x) => x.spec.spec.image === 'app:2'));
  sim.service.spec.replicas = 3;
  sim.run(20_000);
  t.deepEqual(sim.images(), ['app:2', 'app:2', 'app:2']);
  t.is(sim.update?.state, 'completed');
});

test('deletion during an update stops every task, old and new', (t) => {
  const sim = steady({ updateConfig: { order: 'start-first' } });
  sim.apply({ image: 'app:2' });
  sim.run(1_200);
  sim.deleted = true;
  sim.run(3_000);
  t.is(sim.tasks.size, 0);
});

test('the decision writes nothing when nothing changed (no write loop)', (t) => {
  const sim = steady();
  sim.apply({ image: 'app:2' });
  sim.run(20_000);
  t.is(sim.update?.state, 'completed');
  t.is(sim.reconcile().service, undefined);
});

test('changing only the update policy replaces no task', (t) => {
  const sim = steady();
  sim.apply({ updateConfig: { parallelism: 3 } });
  sim.run(2_000);
  t.is(sim.update, undefined);
  t.is(sim.ready.length, 4);
  t.true([...sim.tasks.values()].every((x) => x.desiredState === 'running'));
});

test('global services roll node by node', (t) => {
  const sim = new Sim(
    {
      apiVersion: API_VERSION,
      kind: 'Service',
      metadata: { name: 'web', generation: 1 },
      spec: { image: 'app:1', mode: 'global', updateConfig: { order: 'start-first', monitorMs: 1_000 } },
    },
    { nodes: ['a', 'b', 'c'] },
  );
  sim.run(3_000);
  t.is(sim.ready.length, 3);
  t.true(sim.ready.every((x) => x.spec.slot === GLOBAL_SLOT));
  sim.apply({ image: 'app:2' });
  sim.readyLow = Infinity;
  t.is(maxInFlight(sim, 'app:2', 10_000), 1);
  sim.run(3_000, true);
  t.deepEqual(sim.images(), ['app:2', 'app:2', 'app:2']);
  t.deepEqual(
    sim.ready.map((x) => x.nodeName ?? '(none)').sort((a, b) => a.localeCompare(b)),
    ['a', 'b', 'c'],
  );
  t.is(sim.update?.state, 'completed');
});

test('global services: a failing update rolls back on every node', (t) => {
  const sim = new Sim(
    {
      apiVersion: API_VERSION,
      kind: 'Service',
      metadata: { name: 'web', generation: 1 },
      spec: { image: 'app:1', mode: 'global', updateConfig: { failureAction: 'rollback' } },
    },
    { nodes: ['a', 'b'] },
  );
  sim.run(3_000);
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.run(20_000);
  t.is(sim.update?.state, 'rollback_completed');
  t.deepEqual(sim.images(), ['app:1', 'app:1']);
});

test('what changed, in one line', (t) => {
  t.is(describeSpecChange({ image: 'a:1' }, { image: 'a:2' }), 'image a:1 → a:2');
  t.is(describeSpecChange({ image: 'a', env: { X: '1' } }, { image: 'a', env: { X: '2' }, command: ['x'] }), 'command, env changed');
  t.is(describeSpecChange({ image: 'a', replicas: 1 }, { image: 'a', replicas: 3 }), 'no change to the task template');
});

test('a change of tty or stdinOpen changes the task template, so it rolls the service', (t) => {
  t.not(templateKey({ image: 'a' }), templateKey({ image: 'a', tty: true }));
  t.not(templateKey({ image: 'a' }), templateKey({ image: 'a', stdinOpen: true }));
  t.is(describeSpecChange({ image: 'a' }, { image: 'a', tty: true, stdinOpen: true }), 'stdinOpen, tty changed');
  const sim = steady({ replicas: 2 });
  sim.apply({ image: 'app:1', tty: true });
  sim.run(30_000);
  t.is(sim.update?.state, 'completed');
});

test('start-first: a new task that is running but still starting its health checks does not replace the old one yet', (t) => {
  const sim = steady({ replicas: 1, updateConfig: { order: 'start-first' } });
  sim.apply({ image: 'app:2', command: ['starting'] });
  sim.run(3_000);
  const fresh = [...sim.tasks.values()].find((x) => x.spec.spec.image === 'app:2')!;
  const old = [...sim.tasks.values()].find((x) => x.spec.spec.image === 'app:1')!;
  t.like(fresh.status, { state: 'running', health: 'starting' });
  t.is(old.desiredState, 'running', 'the old task serves while the new one is starting');
  fresh.status.health = 'healthy';
  sim.run(500);
  t.is(sim.tasks.get(old.metadata.name)?.desiredState, 'shutdown', 'replaced once healthy');
});

test('a new task reporting unhealthy within the monitor period is a failure', (t) => {
  const sim = steady({ replicas: 2, updateConfig: { order: 'start-first', failureAction: 'pause' } });
  sim.apply({ image: 'app:2', command: ['unhealthy'] });
  sim.run(3_000);
  t.is(sim.update?.state, 'paused');
  t.is(sim.update?.failedTasks?.length, 1);
  t.is(sim.ready.filter((x) => x.spec.spec.image === 'app:1').length, 2, 'both old tasks still serve');
});

test('failures recorded per rollout are bounded, and the status settles (no write per pass)', (t) => {
  const sim = steady({
    replicas: 60,
    updateConfig: { parallelism: 0, failureAction: 'continue', monitorMs: 60_000 },
    restart: { delayMs: 100, maxDelayMs: 100 },
  });
  sim.apply({ image: 'app:2', command: ['crash'] });
  sim.run(5_000);
  t.is(sim.update?.failedTasks?.length, 50);
  t.is(sim.update?.state, 'updating');
  sim.reconcile();
  const before = JSON.stringify(sim.service.status);
  sim.reconcile();
  t.is(JSON.stringify(sim.service.status), before);
});

test('the monitor window counts from when a task started running, not from its creation (a slow pull does not shorten it)', (t) => {
  const sim = steady({ replicas: 1, updateConfig: { monitorMs: 5_000, failureAction: 'pause' } }, { startMs: 8_000 });
  sim.apply({ image: 'app:2', command: ['crash-later'] });
  sim.run(12_000);
  t.is(sim.update?.state, 'paused', 'failed 1 s after it started, 9 s after it was created');
  t.is(sim.update?.failedTasks?.length, 1);
});

test('a task that was healthy and turns unhealthy within the monitor window fails the rollout, and it is rolled back', (t) => {
  const sim = steady({ replicas: 2, updateConfig: { monitorMs: 5_000, failureAction: 'rollback' } });
  sim.apply({ image: 'app:2', command: ['sickens'] });
  sim.run(20_000);
  t.is(sim.update?.state, 'rollback_completed');
  t.regex(sim.update?.rollbackReason ?? '', /failed within the monitor period/);
  t.deepEqual(sim.images(), ['app:1', 'app:1']);
  t.false(
    [...sim.tasks.values()].some((x) => x.spec.spec.image === 'app:2' && x.desiredState === 'running' && !isTerminal(x.status.state)),
    'no app:2 task is left running',
  );
});

test('an update to an image whose health check fails rolls back by itself, start-first, never below the desired ready count', (t) => {
  const sim = steady({ replicas: 2, updateConfig: { order: 'start-first', failureAction: 'rollback', monitorMs: 5_000 } });
  sim.readyLow = Infinity;
  sim.apply({ image: 'app:2', command: ['unhealthy'] });
  sim.run(15_000, true);
  t.is(sim.update?.state, 'rollback_completed');
  t.is(sim.readyLow, 2, 'the old tasks served throughout');
  t.deepEqual(sim.images(), ['app:1', 'app:1']);
  const unhealthy = [...sim.tasks.values()].filter((x) => x.status.health === 'unhealthy');
  t.true(unhealthy.length >= 1);
  t.true(
    unhealthy.every((x) => x.desiredState === 'shutdown'),
    'unhealthy tasks were shut down',
  );
});

test('a rollout completes only once the new tasks are healthy, and the monitor period runs from when they became healthy', (t) => {
  const sim = steady({ replicas: 1, updateConfig: { order: 'start-first', monitorMs: 2_000 } });
  sim.apply({ image: 'app:2', command: ['starting'] });
  sim.run(5_000);
  t.is(sim.update?.state, 'updating', 'still starting: not ready');
  const fresh = [...sim.tasks.values()].find((x) => x.spec.spec.image === 'app:2' && !isTerminal(x.status.state))!;
  fresh.status = { ...fresh.status, health: 'healthy', healthChangedAt: iso(sim.now), healthyAt: fresh.status.healthyAt ?? iso(sim.now) };
  sim.run(1_500);
  t.is(sim.update?.state, 'updating', 'inside the monitor period after becoming healthy');
  sim.run(1_000);
  t.is(sim.update?.state, 'completed');
});

test('a checked task that never becomes healthy fails the rollout even when it turns unhealthy long after the monitor window', (t) => {
  const sim = steady({ replicas: 1, updateConfig: { order: 'start-first', monitorMs: 5_000, failureAction: 'rollback' } });
  sim.apply({ image: 'app:2', command: ['never-healthy'] });
  sim.run(40_000);
  t.is(sim.update?.state, 'rollback_completed');
  t.deepEqual(sim.images(), ['app:1']);
});

test('a task that was healthy for longer than the monitor window and then sickens does not fail the rollout', (t) => {
  const sim = steady({ replicas: 1, updateConfig: { order: 'start-first', monitorMs: 1_000, failureAction: 'rollback' } });
  sim.apply({ image: 'app:2', command: ['sickens'] });
  sim.run(20_000);
  t.not(sim.update?.state, 'rollback_completed');
  t.not(sim.update?.state, 'rollback_started');
});
