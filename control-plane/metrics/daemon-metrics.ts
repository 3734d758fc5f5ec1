// The manager's Prometheus metrics (API requests, tasks by state, the process's own) and the HTTP
// endpoint that serves them as tsd's /metrics. Named DaemonMetrics because tsd serves them.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as client from 'prom-client';

import type { Task } from '../../common/resources/types.js';
import { TASK_STATES } from '../../common/resources/types.js';

export class DaemonMetrics {
  readonly registry = new client.Registry();
  readonly apiRequests: client.Counter<'method' | 'code'>;
  readonly apiRequestSeconds: client.Histogram<'method'>;
  /** Further paths served beside /metrics (Prometheus service discovery), by exact path. */
  private readonly routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  constructor(listTasks: () => Task[]) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'tessera_' });
    // prom-client names these gauges "*_total", which Prometheus reserves for counters and
    // `promtool check metrics` rejects; they are left out rather than published misnamed.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(`tessera_${name}`);
    }
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

  /** Serves `handler` at `path` (query ignored) on the same server as /metrics. */
  addRoute(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): void {
    this.routes.set(path, handler);
  }

  /** Serves /metrics on host:port; resolves with the bound port. */
  async serve(host: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((req, res) => {
      const route = this.routes.get((req.url ?? '').split('?')[0]!);
      if (route) {
        route(req, res);
        return;
      }
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics\n');
        return;
      }
      this.registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body))
        .catch((err: Error) => res.writeHead(500).end(`${err.message}\n`));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    return { server, port: typeof address === 'object' && address ? address.port : port };
  }
}
