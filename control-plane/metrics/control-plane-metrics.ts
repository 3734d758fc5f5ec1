// The manager's scheduler, controller and dispatcher metrics in one place, registered into the
// daemon's registry (DaemonMetrics.registry) so tsd's /metrics serves them with the rest.
import type * as client from 'prom-client';

import type { Service } from '../../common/resources/types.js';
import { ControllerMetrics } from './controller-metrics.js';
import { DispatcherMetrics } from './dispatcher-metrics.js';
import { SchedulerMetrics } from './scheduler-metrics.js';

/** Controller names, the `name` label of the workqueue metrics. */
export const CONTROLLER_NAMES = { service: 'service', scheduler: 'scheduler', drain: 'drain', network: 'network_allocator' } as const;

export class ControlPlaneMetrics {
  readonly controllers: ControllerMetrics;
  readonly scheduler: SchedulerMetrics;
  readonly dispatcher: DispatcherMetrics;

  constructor(registry: client.Registry, services: () => readonly Service[]) {
    this.controllers = new ControllerMetrics(registry, services);
    this.scheduler = new SchedulerMetrics(registry);
    this.dispatcher = new DispatcherMetrics(registry);
  }
}
