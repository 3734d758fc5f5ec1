// Wires one node daemon: store, API, controllers (the manager) and the worker (the agent).
// In this single-node cut both halves share the process and talk through the store; the
// dispatcher issue moves the agent's side behind a gRPC session.
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import type { Server } from 'node:http';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { BridgeNetwork } from '../../agent/network/node-network.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { FileLogSource } from '../../agent/worker/log-source.js';
import { Worker } from '../../agent/worker/worker.js';
import { sweepLeftovers } from '../../agent/worker/leftovers.js';
import { ApiServer } from '../api/server.js';
import { LOCAL_INSECURE, assertAddressAllowed } from '../ca/credentials.js';
import { Informer } from '../controllers/informer.js';
import { SchedulingController } from '../controllers/scheduling-controller.js';
import { ServiceController } from '../controllers/service-controller.js';
import { NodeHealth } from '../dispatcher/node-health.js';
import { reportTaskStatus } from '../dispatcher/task-status.js';
import { API_VERSION, type Node, type Service, type Task } from '../resources/types.js';
import { kindPrefix } from '../store/keys.js';
import { MemoryStore } from '../store/memory-store.js';
import { ObjectStore } from '../store/object-store.js';
import { dataPaths, type DaemonConfig } from './config.js';
import { DaemonMetrics } from './metrics.js';

export const VERSION = '0.1.0';

export class Daemon {
  private readonly closers: Array<() => Promise<void> | void> = [];
  apiPort = 0;
  metricsPort = 0;

  constructor(
    private readonly config: DaemonConfig,
    private readonly log: (message: string) => void,
  ) {}

  async start(): Promise<void> {
    const { config, log } = this;
    const paths = dataPaths(config);
    for (const dir of [paths.containers, paths.logs, paths.images, paths.runtimeState, paths.network]) {
      await mkdir(dir, { recursive: true });
    }
    assertAddressAllowed(config.listen, LOCAL_INSECURE);

    const runtime = new NativeRuntime({ stateRoot: paths.runtimeState });
    const images = new LocalImageStore({ root: paths.images });
    const network = new BridgeNetwork({ bridge: config.bridge, subnet: config.subnet, nftTable: config.nftTable, stateDir: paths.network });

    // The store is in memory in this cut, so nothing a previous tsd ran is known any more:
    // whatever it left on the node is removed before we start.
    await sweepLeftovers({ runtime, network, containersDir: paths.containers, log });
    await network.setup();
    this.closers.push(() => network.teardown());

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

    const node: Node = {
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: config.nodeName, stack: '' },
      spec: { availability: 'active', role: 'manager' },
      status: {
        state: 'ready',
        hostname: config.nodeName,
        address: '127.0.0.1',
        resources: { memoryBytes: totalmem(), nanoCpus: availableParallelism() * 1e9 },
      },
    };
    await objects.create(node);

    const nodeHealth = new NodeHealth(objects, nodes, tasks, { timeoutMs: config.nodeDownAfterMs, checkEveryMs: config.heartbeatMs, log });
    nodeHealth.heartbeat(config.nodeName);
    const heartbeat = setInterval(() => nodeHealth.heartbeat(config.nodeName), config.heartbeatMs);
    this.closers.push(() => clearInterval(heartbeat));
    nodeHealth.start();
    this.closers.push(() => nodeHealth.stop());

    const serviceController = new ServiceController(objects, services, tasks, { log });
    const schedulingController = new SchedulingController(objects, nodes, tasks, log);
    serviceController.start();
    schedulingController.start();

    const worker = new Worker({
      runtime,
      images,
      network,
      containersDir: paths.containers,
      logsDir: paths.logs,
      cgroupParent: config.cgroupParent,
      insecureRegistries: config.insecureRegistries,
      report: (task, status) => reportTaskStatus(objects, config.nodeName, task, status),
      log,
    });
    // Level-triggered: any task change hands the worker the complete set of this node's tasks,
    // coalesced so a burst of changes costs one pass.
    let pass: NodeJS.Immediate | undefined;
    let stopping = false;
    tasks.subscribe(() => {
      pass ??= setImmediate(() => {
        pass = undefined;
        if (!stopping) worker.reconcile(tasks.list().filter((t) => t.nodeName === config.nodeName));
      });
    });
    worker.reconcile(tasks.list().filter((t) => t.nodeName === config.nodeName));
    // Closers run newest first: controllers stop before the worker stops containers, so nothing
    // replaces the tasks that shutdown ends.
    this.closers.push(async () => {
      stopping = true;
      await worker.stopAll();
    });
    this.closers.push(() => serviceController.stop(), () => schedulingController.stop());

    const metrics = new DaemonMetrics(() => tasks.list());
    const api = new ApiServer({
      store,
      images,
      logs: new FileLogSource(paths.logs),
      metrics,
      clusterId: randomUUID(),
      version: VERSION,
      storeBackend: 'memory',
      managers: () => [config.listen],
    });
    this.apiPort = await api.listen(config.listen, LOCAL_INSECURE);
    this.closers.push(() => api.close());
    const [metricsHost, metricsPortText] = splitHostPort(config.metricsListen);
    const served: { server: Server; port: number } = await metrics.serve(metricsHost, Number(metricsPortText));
    this.metricsPort = served.port;
    this.closers.push(() => new Promise<void>((resolve) => served.server.close(() => resolve())));
    log(`tsd ${VERSION} ready: node ${config.nodeName}, API ${config.listen} (port ${this.apiPort}), metrics http://${metricsHost}:${this.metricsPort}/metrics`);
  }

  /** Stops containers, removes the node's network set-up and closes everything, newest first. */
  async stop(): Promise<void> {
    for (const close of this.closers.reverse()) {
      try {
        await close();
      } catch (err) {
        this.log(`shutdown: ${(err as Error).message}`);
      }
    }
    this.closers.length = 0;
  }
}

function splitHostPort(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), address.slice(colon + 1)];
}
