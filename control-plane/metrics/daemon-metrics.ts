// The manager's Prometheus metrics (API requests, tasks by state), in a registry of the manager
// half's own: it comes and goes with the manager (a promotion or demotion starts or stops it, and
// prom-client refuses a name registered twice). tsd serves it on /metrics with the node's registry
// (process and container metrics), merged at each scrape (daemon/metrics/metrics-server.ts).
import * as client from 'prom-client';

import type { Task } from '../../common/resources/types.js';
import { TASK_STATES } from '../../common/resources/types.js';

export class DaemonMetrics {
  readonly registry = new client.Registry();
  readonly apiRequests: client.Counter<'method' | 'code'>;
  readonly apiRequestSeconds: client.Histogram<'method'>;

  constructor(listTasks: () => Task[]) {
    this.apiRequests = new client.Counter({
      name: 'tessera_api_requests_total',
      help: 'API requests handled, by gRPC method and status code.',
      labelNames: ['method', 'code'],
      registers: [this.registry],
    });
    this.apiRequestSeconds = new client.Histogram({
      name: 'tessera_api_request_duration_seconds',
      help: 'Time to handle an API request, by gRPC method.',
      labelNames: ['method'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [this.registry],
    });
    new client.Gauge({
      name: 'tessera_tasks',
      help: 'Tasks in the store, by observed state.',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = new Map<string, number>(TASK_STATES.map((s) => [s, 0]));
        for (const task of listTasks()) counts.set(task.status.state, (counts.get(task.status.state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
  }
}
