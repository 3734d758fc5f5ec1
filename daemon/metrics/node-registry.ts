// The registry of the node half of tsd (every node): the process's own metrics and what the agent
// registers (container metrics). The manager half keeps a registry of its own (DaemonMetrics).
import * as client from 'prom-client';

export function newNodeRegistry(): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'tessera_' });
  // prom-client names these gauges "*_total", which Prometheus reserves for counters and
  // `promtool check metrics` rejects; they are left out rather than published misnamed.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`tessera_${name}`);
  }
  return registry;
}
