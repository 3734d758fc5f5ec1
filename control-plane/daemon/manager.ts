// The manager half of a node daemon: store, informers, controllers, the user API and the
// dispatcher that agents (including this node's own) hold their sessions with.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';

import type { ImageStore } from '../../agent/images/types.js';
import { ApiServer, type LogSource } from '../api/server.js';
import { bindServer, shutdownServer } from '../api/grpc-server.js';
import type { TransportSecurity } from '../ca/credentials.js';
import { Informer } from '../controllers/informer.js';
import { DrainController } from '../controllers/drain-controller.js';
import { SchedulingController } from '../controllers/scheduling-controller.js';
import { ServiceController } from '../controllers/service-controller.js';
import { makeToken, makeTokens, type JoinTokens } from '../dispatcher/join-tokens.js';
import { NodeHealth } from '../dispatcher/node-health.js';
import { DispatcherServer } from '../dispatcher/server.js';
import { startOverlayControl } from '../network/overlay-control.js';
import { API_VERSION, type Node, type Service, type Task } from '../resources/types.js';
import { kindPrefix } from '../store/keys.js';
import { MemoryStore } from '../store/memory-store.js';
import { ObjectStore } from '../store/object-store.js';
import type { DaemonConfig } from './config.js';
import { DaemonMetrics } from './metrics.js';

export const VERSION = '0.1.0';

export interface ManagerDeps {
  config: DaemonConfig;
  security: TransportSecurity;
  /** The image store and logs of this node, served by the API (single-node cut: the API reads them locally). */
  images: ImageStore;
  logs: LogSource;
  /** This node's own description, registered as a manager node before any agent connects. */
  self: Node['status'];
  log: (message: string) => void;
}

export class Manager {
  private readonly closers: Array<() => Promise<void> | void> = [];
  readonly clusterId = randomUUID();
  joinTokens: JoinTokens = makeTokens(this.clusterId);
  apiPort = 0;
  metricsPort = 0;

  constructor(private readonly deps: ManagerDeps) {}

  async start(): Promise<void> {
    const { config, log } = this.deps;
    const store = new MemoryStore();
    this.closers.push(() => store.close());
    const objects = new ObjectStore(store);
    const onInformerError = (err: Error) => log(`informer: ${err.message}`);
    const services = new Informer<Service>(store, 'Service', kindPrefix('Service'), onInformerError);
    const tasks = new Informer<Task>(store, 'Task', kindPrefix('Task'), onInformerError);
    const nodes = new Informer<Node>(store, 'Node', kindPrefix('Node'), onInformerError);
    for (const informer of [services, tasks, nodes]) {
      await informer.start();
      this.closers.push(() => informer.stop());
    }

    await objects.create<Node>({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: config.nodeName, stack: '' },
      spec: { availability: 'active', role: 'manager' },
      status: this.deps.self,
    });

    const health = new NodeHealth(objects, nodes, tasks, { timeoutMs: config.nodeDownAfterMs, checkEveryMs: config.heartbeatMs, log });
    health.heartbeat(config.nodeName);
    health.start();
    this.closers.push(() => health.stop());

    const serviceController = new ServiceController(objects, services, tasks, nodes, { log });
    const schedulingController = new SchedulingController(objects, nodes, tasks, log);
    const drainController = new DrainController(objects, nodes, tasks, log);
    serviceController.start();
    schedulingController.start();
    drainController.start();
    this.closers.push(() => serviceController.stop(), () => schedulingController.stop(), () => drainController.stop());
    const overlay = await startOverlayControl({ store, services, tasks, nodes, reserved: [config.subnet], log });
    this.closers.push(() => overlay.stop());

    const metrics = new DaemonMetrics(() => tasks.list());
    const api = new ApiServer({
      store,
      images: this.deps.images,
      logs: this.deps.logs,
      metrics,
      clusterId: this.clusterId,
      version: VERSION,
      storeBackend: 'memory',
      managers: () => [config.listen],
      joinTokens: {
        get: (role) => this.joinTokens[role],
        rotate: (role) => {
          this.joinTokens = { ...this.joinTokens, [role]: makeToken(this.clusterId, role) };
          log(`${role} join token rotated`);
          return this.joinTokens[role];
        },
      },
    });
    const dispatcher = new DispatcherServer({
      objects,
      tasks,
      nodes,
      health,
      heartbeatPeriodMs: config.heartbeatMs,
      joinTokens: () => this.joinTokens,
      managers: () => [this.dispatcherAddress()],
      log,
      networkViews: overlay.views,
    });
    const server = new grpc.Server();
    api.addTo(server);
    dispatcher.addTo(server);
    this.apiPort = await bindServer(server, config.listen, this.deps.security);
    if (config.apiSocket) {
      const socket = config.apiSocket;
      await bindServer(server, socket, this.deps.security);
    }
    this.closers.push(() => {
      dispatcher.closeAll();
      return shutdownServer(server);
    });

    const [metricsHost, metricsPort] = splitHostPort(config.metricsListen);
    const served: { server: Server; port: number } = await metrics.serve(metricsHost, Number(metricsPort));
    this.metricsPort = served.port;
    this.closers.push(() => new Promise<void>((resolve) => served.server.close(() => resolve())));
  }

  /** Where agents on other nodes reach this manager's dispatcher. */
  dispatcherAddress(): string {
    const { config } = this.deps;
    if (config.listen.startsWith('unix:')) return config.listen;
    const [, port] = splitHostPort(config.listen);
    return `${config.advertiseAddress}:${this.apiPort || port}`;
  }

  async stop(): Promise<void> {
    for (const close of this.closers.reverse()) {
      try {
        await close();
      } catch (err) {
        this.deps.log(`manager shutdown: ${(err as Error).message}`);
      }
    }
    this.closers.length = 0;
  }
}

export function splitHostPort(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), address.slice(colon + 1)];
}
