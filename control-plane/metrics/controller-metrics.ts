// Controller metrics under client-go's workqueue names (tessera_workqueue_*, label `name` = the
// controller), a reconcile counter and histogram by result, and each service's rollout state.
//
// Our controllers do have a queue (controllers/work-queue.ts): informer events add keys (one per
// service for the service controller, one batch key for the scheduler, drain and network
// controllers), a key queued again while it waits is one entry, and a reconcile is one
// level-triggered pass over that key. So "depth" is keys waiting for a pass, "adds" are keys
// queued that were not already waiting (as client-go counts), and "retries" are passes that threw
// and were queued again after the error delay. A pass that ran out of its write budget and asks
// to run again at once is not a retry: it counts as a reconcile with result "requeue".
import { performance } from 'node:perf_hooks';
import * as client from 'prom-client';

import type { Service, UpdateState } from '../../common/resources/types.js';
import type { ReconcileOutcome, WorkQueueObserver, WorkQueueView } from '../controllers/work-queue.js';

const DURATION_BUCKETS = [0.00001, 0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

/** Rollout states as exported: a service's latest rollout, or "none" before its first update. */
const ROLLOUT_STATES: ReadonlyArray<UpdateState | 'none'> = [
  'none',
  'updating',
  'paused',
  'completed',
  'rollback_started',
  'rollback_paused',
  'rollback_completed',
];

export class ControllerMetrics {
  /** The queue each controller runs on now (a new leader term makes new controllers). */
  private readonly views = new Map<string, WorkQueueView>();
  private readonly adds: client.Counter<'name'>;
  private readonly retries: client.Counter<'name'>;
  private readonly queueSeconds: client.Histogram<'name'>;
  private readonly workSeconds: client.Histogram<'name'>;
  private readonly reconciles: client.Counter<'name' | 'result'>;
  private readonly reconcileSeconds: client.Histogram<'name' | 'result'>;
  private readonly restarts: client.Counter<'stack' | 'service'>;
  /** The services the restart counter has series of (JSON [stack, service]). */
  private readonly restartKeys = new Set<string>();

  constructor(registry: client.Registry, services: () => readonly Service[]) {
    const registers = [registry];
    const views = this.views;
    new client.Gauge({
      name: 'tessera_workqueue_depth',
      help: 'Keys waiting for a reconcile pass, per controller.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, view] of views) this.set({ name }, view.depth());
      },
    });
    this.adds = new client.Counter({
      name: 'tessera_workqueue_adds_total',
      help: 'Keys queued that were not already waiting, per controller.',
      labelNames: ['name'],
      registers,
    });
    this.queueSeconds = new client.Histogram({
      name: 'tessera_workqueue_queue_duration_seconds',
      help: 'Time a key waited in the queue before its pass started.',
      labelNames: ['name'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.workSeconds = new client.Histogram({
      name: 'tessera_workqueue_work_duration_seconds',
      help: 'Time a reconcile pass took.',
      labelNames: ['name'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.retries = new client.Counter({
      name: 'tessera_workqueue_retries_total',
      help: 'Passes that failed and were queued again after the error delay, per controller.',
      labelNames: ['name'],
      registers,
    });
    new client.Gauge({
      name: 'tessera_workqueue_unfinished_work_seconds',
      help: 'Seconds the passes running now have been running, summed, per controller: a large value with no growth in work_duration means a stuck pass.',
      labelNames: ['name'],
      registers,
      collect() {
        const now = performance.now();
        for (const [name, view] of views) {
          let total = 0;
          for (const since of view.runningSince()) total += now - since;
          this.set({ name }, total / 1000);
        }
      },
    });
    new client.Gauge({
      name: 'tessera_workqueue_longest_running_processor_seconds',
      help: 'Seconds the longest-running pass of a controller has been running.',
      labelNames: ['name'],
      registers,
      collect() {
        const now = performance.now();
        for (const [name, view] of views) {
          let longest = 0;
          for (const since of view.runningSince()) longest = Math.max(longest, now - since);
          this.set({ name }, longest / 1000);
        }
      },
    });
    this.reconciles = new client.Counter({
      name: 'tessera_controller_reconcile_total',
      help: 'Reconcile passes, per controller and result (success; requeue: done but asked to run again, e.g. write budget or back-off; error: threw and was retried).',
      labelNames: ['name', 'result'],
      registers,
    });
    this.reconcileSeconds = new client.Histogram({
      name: 'tessera_controller_reconcile_duration_seconds',
      help: 'Time a reconcile pass took, per controller and result.',
      labelNames: ['name', 'result'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    // Series of every existing service from the start (increase() sees the first restart), and
    // none of removed ones (bounded by the services that exist).
    const exported = this.restartKeys;
    const restartLabels = (key: string): { stack: string; service: string } => {
      const [stack, service] = JSON.parse(key) as [string, string];
      return { stack, service };
    };
    this.restarts = new client.Counter({
      name: 'tessera_service_task_restarts_total',
      help: 'Tasks the service controller created to restart one of the service that ended on its own (failed, exited, OOM-killed, unhealthy), counted on the leader.',
      labelNames: ['stack', 'service'],
      registers,
      collect() {
        const existing = new Set(services().map((s) => JSON.stringify([s.metadata.stack ?? '', s.metadata.name])));
        for (const key of exported) {
          if (existing.has(key)) continue;
          this.remove(restartLabels(key));
          exported.delete(key);
        }
        for (const key of existing) {
          if (exported.has(key)) continue;
          this.inc(restartLabels(key), 0);
          exported.add(key);
        }
      },
    });
    new client.Gauge({
      name: 'tessera_service_rollout_state',
      help: 'A service’s latest rollout state: 1 for the state it is in, 0 for the others ("none": never updated since created).',
      labelNames: ['stack', 'service', 'state'],
      registers,
      collect() {
        // Rebuilt from the store's services at every scrape: a removed service's series go.
        this.reset();
        for (const service of services()) {
          const current = service.status?.update?.state ?? 'none';
          const labels = { stack: service.metadata.stack ?? '', service: service.metadata.name };
          for (const state of ROLLOUT_STATES) this.set({ ...labels, state }, state === current ? 1 : 0);
        }
      },
    });
  }

  /** The service controller created a task to restart one of the service's that ended on its own. */
  taskRestarted(stack: string, service: string): void {
    this.restarts.inc({ stack, service });
    this.restartKeys.add(JSON.stringify([stack, service]));
  }

  /** The observer for one controller's queue; `name` is its label value (e.g. "service", "scheduler"). */
  queue(name: string): WorkQueueObserver {
    return {
      attach: (view) => void this.views.set(name, view),
      added: () => this.adds.inc({ name }),
      retried: () => this.retries.inc({ name }),
      started: (waitedSeconds) => this.queueSeconds.observe({ name }, waitedSeconds),
      finished: (workedSeconds: number, result: ReconcileOutcome) => {
        this.workSeconds.observe({ name }, workedSeconds);
        this.reconciles.inc({ name, result });
        this.reconcileSeconds.observe({ name, result }, workedSeconds);
      },
    };
  }
}
