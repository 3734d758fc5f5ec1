// Scheduler metrics: tasks waiting for a node and why, time from a task's creation to its
// assignment, and placement attempts. Set by the scheduling controller, which runs on the leader
// only: other managers report 0 waiting tasks (their controller is stopped).
import * as client from 'prom-client';

import { UNSCHEDULABLE_REASONS, type UnschedulableReason } from '../scheduler/schedule.js';
import type { SchedulingObserver } from '../controllers/scheduling-controller.js';

export class SchedulerMetrics implements SchedulingObserver {
  private readonly pending: client.Gauge;
  private readonly unschedulable: client.Gauge<'reason'>;
  private readonly latency: client.Histogram;
  private readonly attempts: client.Counter<'result'>;

  constructor(registry: client.Registry) {
    const registers = [registry];
    this.pending = new client.Gauge({
      name: 'tessera_scheduler_pending_tasks',
      help: 'Tasks without a node after the last scheduling pass (on the leader; 0 elsewhere).',
      registers,
    });
    this.unschedulable = new client.Gauge({
      name: 'tessera_scheduler_unschedulable_tasks',
      help: 'Tasks the last scheduling pass could not place, by each filter that rejected at least one node for them (a task can count under several).',
      labelNames: ['reason'],
      registers,
    });
    this.latency = new client.Histogram({
      name: 'tessera_scheduler_scheduling_duration_seconds',
      help: 'Time from a task’s creation to its assignment to a node.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
      registers,
    });
    this.attempts = new client.Counter({
      name: 'tessera_scheduler_schedule_attempts_total',
      help: 'Placement attempts per task and pass, by result (scheduled, unschedulable); an unplaceable task is attempted again at every pass.',
      labelNames: ['result'],
      registers,
    });
    this.stopped();
  }

  passed(pending: number, unschedulable: ReadonlyMap<UnschedulableReason, number>): void {
    this.pending.set(pending);
    for (const reason of UNSCHEDULABLE_REASONS) this.unschedulable.set({ reason }, unschedulable.get(reason) ?? 0);
  }

  assigned(waitedSeconds: number): void {
    this.latency.observe(waitedSeconds);
  }

  attempted(scheduled: number, unschedulable: number): void {
    if (scheduled > 0) this.attempts.inc({ result: 'scheduled' }, scheduled);
    if (unschedulable > 0) this.attempts.inc({ result: 'unschedulable' }, unschedulable);
  }

  /** This manager no longer schedules: nothing waits here. */
  stopped(): void {
    this.passed(0, new Map());
  }
}
