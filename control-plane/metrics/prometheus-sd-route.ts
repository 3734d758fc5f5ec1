// The HTTP side of Prometheus service discovery: GET /sd/nodes and GET /sd/tasks answer with the
// http_sd JSON built from the informers at request time (Prometheus asks once per refresh_interval,
// a minute by default, so nothing is cached). Nodes and tasks left out are logged once each, not on
// every refresh, and again only after they were fine in between.
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { Node, Service, Task } from '../../common/resources/types.js';
import type { ClusterNetworkState } from '../network/types.js';
import { DEFAULT_SD_LIMITS, nodeTargetGroups, taskTargetGroups, type SdLimits, type SdResult, type SkippedTarget } from './prometheus-sd.js';

export const SD_NODES_PATH = '/sd/nodes';
export const SD_TASKS_PATH = '/sd/tasks';

export interface SdSources {
  nodes: () => readonly Node[];
  services: () => readonly Service[];
  tasks: () => readonly Task[];
  networks: () => ClusterNetworkState;
  /** The port every node's tsd serves /metrics on (the cluster's --metrics-listen port). */
  metricsPort: () => number;
  log: (message: string) => void;
  limits?: SdLimits;
}

export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => void;

export class PrometheusSdRoutes {
  private readonly logged = new Map<string, Set<string>>();

  constructor(private readonly sources: SdSources) {}

  /** The paths and their handlers, for the metrics server's route map. */
  routes(): Array<[string, HttpRoute]> {
    const limits = this.sources.limits ?? DEFAULT_SD_LIMITS;
    return [
      [SD_NODES_PATH, this.route(SD_NODES_PATH, () => nodeTargetGroups(this.sources.nodes(), this.sources.metricsPort(), limits))],
      [
        SD_TASKS_PATH,
        this.route(SD_TASKS_PATH, () =>
          taskTargetGroups({
            tasks: this.sources.tasks(),
            services: this.sources.services(),
            nodes: this.sources.nodes(),
            networks: this.sources.networks(),
            limits,
          }),
        ),
      ],
    ];
  }

  private route(path: string, build: () => SdResult): HttpRoute {
    return (req, res) => {
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' }).end(`${path} answers GET only\n`);
        return;
      }
      let result: SdResult;
      try {
        result = build();
      } catch (err) {
        // Prometheus keeps its previous target list on an error, which is the right fallback.
        this.sources.log(`prometheus sd ${path}: ${(err as Error).message}`);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${(err as Error).message}\n`);
        return;
      }
      this.logNewSkips(path, result.skipped);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(result.groups));
    };
  }

  private logNewSkips(path: string, skipped: readonly SkippedTarget[]): void {
    const before = this.logged.get(path) ?? new Set<string>();
    const now = new Set<string>();
    for (const { what, reason } of skipped) {
      const line = `prometheus sd ${path}: ${what} left out: ${reason}`;
      now.add(line);
      if (!before.has(line)) this.sources.log(line);
    }
    // Only the current skips are remembered: bounded by the targets there are, and a target that
    // recovers and breaks again is logged again.
    this.logged.set(path, now);
  }
}
