// What `tsctl rollout status|history|undo` compute from a service and its tasks.
import test from 'ava';

import { formatRolloutHistory, rolloutProgress, undoManifest } from '../../control-plane/controllers/rollout-progress.js';
import { templateKey } from '../../control-plane/controllers/rollout.js';
import { validateObject } from '../../common/resources/schema.js';
import { API_VERSION, type Service, type ServiceSpec, type Task, type UpdateState } from '../../common/resources/types.js';

const AT = '2026-01-01T00:00:00.000Z';

function svc(spec: ServiceSpec, status: Service['status'] = {}): Service {
  return { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'web', stack: 'shop', generation: 3 }, spec, status };
}

function task(spec: ServiceSpec, state: Task['status']['state'] = 'running'): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `web.1.${Math.random().toString(16).slice(2, 8)}` },
    spec: { serviceName: 'web', serviceStack: 'shop', serviceGeneration: 1, slot: 1, spec },
    desiredState: 'running',
    status: { state, timestamp: AT },
  };
}

const v1: ServiceSpec = { image: 'app:1', replicas: 2 };
const v2: ServiceSpec = { image: 'app:2', replicas: 2, updateConfig: { order: 'start-first' } };

function withState(state: UpdateState, message?: string): Service {
  return svc(v2, { currentSpec: v2, previousSpec: v1, update: { state, startedAt: AT, ...(message ? { message } : {}) } });
}

test('a spec the controller has not taken up yet is pending, not done', (t) => {
  const p = rolloutProgress(svc(v2, { currentSpec: v1, update: { state: 'completed', startedAt: AT } }), [task(v1), task(v1)]);
  t.is(p.phase, 'pending');
  t.false(p.done);
  t.regex(p.line, /waiting for the controller to take up generation 3/);
});

test('progress counts ready tasks of the current spec', (t) => {
  const p = rolloutProgress(withState('updating', 'update in progress'), [task(v1), task(v2), task(v2, 'starting')]);
  t.is(p.updated, 1);
  t.is(p.desired, 2);
  t.false(p.done);
  t.is(p.line, 'service shop/web: updating: 1 of 2 tasks on the current spec (update in progress)');
});

test('completed is done and ok; paused, rollback paused and rolled back by itself are done and not ok', (t) => {
  t.like(rolloutProgress(withState('completed'), [task(v2), task(v2)]), { done: true, ok: true });
  for (const state of ['paused', 'rollback_paused'] as const) t.like(rolloutProgress(withState(state), []), { done: true, ok: false }, state);
  const automatic = withState('rollback_completed');
  automatic.status!.update!.rollbackReason = 'task x failed';
  t.like(rolloutProgress(automatic, []), { done: true, ok: false });
  t.like(rolloutProgress(withState('rollback_completed'), []), { done: true, ok: true }, 'an undo the user asked for');
  for (const state of ['updating', 'rollback_started'] as const) t.like(rolloutProgress(withState(state), []), { done: false }, state);
});

test('a service never updated is done once its tasks run', (t) => {
  const fresh = svc(v1, { currentSpec: v1 });
  t.like(rolloutProgress(fresh, [task(v1)]), { phase: 'none', done: false });
  t.like(rolloutProgress(fresh, [task(v1), task(v1)]), { phase: 'none', done: true, ok: true });
});

test('history lists generations oldest first with what changed', (t) => {
  const s = svc(v2, {
    history: [
      { generation: 1, at: '2026-01-01T00:00:00.000Z', kind: 'create', change: 'created' },
      { generation: 2, at: '2026-01-01T00:10:00.000Z', kind: 'update', change: 'image app:1 → app:2' },
    ],
  });
  const lines = formatRolloutHistory(s, new Date('2026-01-01T00:11:00Z')).split('\n');
  t.regex(lines[0]!, /^GENERATION\s+AGE\s+AT\s+KIND\s+CHANGE$/);
  t.regex(lines[1]!, /^1\s+11m\s+2026-01-01T00:00:00.000Z\s+create\s+created$/);
  t.regex(lines[2]!, /^2\s+60s\s+\S+\s+update\s+image app:1 → app:2$/);
  t.is(formatRolloutHistory(svc(v1), new Date()), 'no rollout history recorded');
});

test("undo: the previous template with today's replicas and policies, and the server schema accepts it", (t) => {
  const current: ServiceSpec = { image: 'app:2', replicas: 5, command: ['x'], updateConfig: { parallelism: 2 }, rollbackConfig: { parallelism: 0 } };
  const previous: ServiceSpec = { image: 'app:1', replicas: 2, env: { A: '1' }, restart: { condition: 'on-failure', delayMs: 100 } };
  const manifest = undoManifest(svc(current, { currentSpec: current, previousSpec: previous }));
  t.deepEqual(manifest.spec, {
    image: 'app:1',
    env: { A: '1' },
    restart: { condition: 'on-failure', delayMs: 100 },
    replicas: 5,
    updateConfig: { parallelism: 2 },
    rollbackConfig: { parallelism: 0 },
  });
  t.deepEqual(manifest.metadata, { name: 'web', stack: 'shop' });
  const validated = validateObject(JSON.parse(JSON.stringify(manifest)));
  t.true(validated.ok);
  if (validated.ok) t.is(templateKey(validated.object.spec), templateKey(previous), 'the controller will see the previous spec, hence a rollback');
});

test('undo without a previous spec says so', (t) => {
  t.throws(() => undoManifest(svc(v1, { currentSpec: v1 })), { message: /service shop\/web has no previous spec to go back to/ });
});
