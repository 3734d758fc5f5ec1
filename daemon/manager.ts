// The manager half of a node daemon: store, informers, controllers, the user API and the
// dispatcher that agents (including this node's own) hold their sessions with.
import * as grpc from '@grpc/grpc-js';
import { chmod, rm } from 'node:fs/promises';

import type { ImageStore } from '../common/images/types.js';
import type { ImageBuilder } from '../common/build/builder.js';
import type { LogSource } from '../common/logs/log-source.js';
import { expecting, type TransportSecurity } from '../common/transport/credentials.js';
import { ApiServer } from '../control-plane/api/server.js';
import { EventLog } from '../control-plane/events/event-log.js';
import { EventRecorder } from '../control-plane/events/event-recorder.js';
import { NodeLogs } from '../control-plane/dispatcher/node-logs.js';
import { NodeTop } from '../control-plane/dispatcher/node-top.js';
import { NodeExec } from '../control-plane/dispatcher/node-exec.js';
import { API_SERVER_OPTIONS, bindServer, shutdownServer } from '../control-plane/api/grpc-server.js';
import { AuthenticationError, authenticateLocalRoot, certificateAuthenticator, requireNode, type TrustState } from '../control-plane/auth/authenticate.js';
import { isMutating } from '../control-plane/auth/authorization.js';
import { certificateRequiredAtTheDoor } from '../control-plane/auth/door.js';
import type { ClusterSecurity } from '../control-plane/ca/cluster-security.js';
import { NodeCaService } from '../control-plane/ca/node-ca-service.js';
import { signingRootPem } from '../control-plane/ca/rotation.js';
import { CaKeeper } from './ca-keeper.js';
import type { NodeIdentity } from './identity/bootstrap.js';
import { certPaths } from './identity/cert-files.js';
import { completeRotationIfDone, identityApi, openAudit, openClusterSecurity } from './manager-identity.js';
import { apiMethodOf, bindRootOnlySocket, leaderOnly, raftPeer, raftRoles, removeStaleSocket, splitHostPort } from './manager-servers.js';
import { Informer } from '../control-plane/controllers/informer.js';
import { DrainController } from '../control-plane/controllers/drain-controller.js';
import { SchedulingController } from '../control-plane/controllers/scheduling-controller.js';
import { ServiceController } from '../control-plane/controllers/service-controller.js';
import { NodeHealth } from '../control-plane/dispatcher/node-health.js';
import { DispatcherServer } from '../control-plane/dispatcher/server.js';
import { ImageLocations } from '../control-plane/dispatcher/image-locations.js';
import type { HasAuthContext } from '../common/transport/mutual-tls.js';
import { startOverlayControl } from '../control-plane/network/overlay-control.js';
import { PrometheusSdRoutes } from '../control-plane/metrics/prometheus-sd-route.js';
import { API_VERSION, type Node, type Service, type Task } from '../common/resources/types.js';
import { kindPrefix } from '../control-plane/store/keys.js';
import { MemoryStore } from '../control-plane/store/memory-store.js';
import { ObjectStore } from '../control-plane/store/object-store.js';
import { EtcdStore } from '../control-plane/store/etcd-store.js';
import { SealedStore } from '../control-plane/store/sealed-store.js';
import { openStoreKey } from './identity/store-key.js';
import { RaftStore } from '../control-plane/store/raft-store.js';
import { NoLeaderAnswerError, NotLeaderError } from '../control-plane/raft/host/raft-host.js';
import { CLUSTER_META_KEY } from '../control-plane/ca/cluster-meta.js';
import { AutoCompactor } from '../control-plane/store/auto-compaction.js';
import type { Store } from '../control-plane/store/store.js';
import { MembersApiClient, grpcMessage } from '../control-plane/raft/host/members-api.js';
import { lateHandlers, newRaftServer } from '../control-plane/raft/host/serve-member.js';
import { addRaftService } from '../control-plane/raft/transport/raft-service.js';
import { apiSocketOf, dataPaths, metricsListenOf, type DaemonConfig } from './config.js';
import { DaemonMetrics } from '../control-plane/metrics/daemon-metrics.js';
import { registerStoreMetrics } from '../control-plane/metrics/raft-metrics.js';
import type { MetricsServer } from './metrics/metrics-server.js';
import { CONTROLLER_NAMES, ControlPlaneMetrics } from '../control-plane/metrics/control-plane-metrics.js';
import { kekAtStart, protectedKeysOf, serveAutolock, startAutolockKeeper, type StartingKek } from './autolock-start.js';

export const VERSION = '0.1.0';

/** How often the leader checks whether a root CA rotation can complete. */
const ROTATION_CHECK_MS = 2000;

export interface ManagerDeps {
  config: DaemonConfig;
  /** This node's identity: its manager certificate (and, at `tsd init`, the root CA to store). */
  node: NodeIdentity;
  security: TransportSecurity;
  /** The image store and logs of this node, served by the API (single-node cut: the API reads them locally). */
  images: ImageStore;
  logs: LogSource;
  /** This node's own description, registered as a manager node before any agent connects. */
  self: Node['status'];
  log: (message: string) => void;
  /** Join an existing cluster's store as a new manager through this manager's API (raft only). */
  joinVia?: string;
  /**
   * Adds this node's blob service (images across nodes) to the TLS server, with how to authorise a
   * caller: a node certificate of this cluster, not revoked (the store's list).
   */
  imagePeer?: (server: grpc.Server, authorize: (call: HasAuthContext) => void) => void;
  /** Paths served beside the node's /metrics over mutual TLS (e.g. Prometheus HTTP service discovery). */
  httpRoutes?: Pick<MetricsServer, 'addRoute' | 'removeRoute'>;
  /** The port the node's metrics server is bound to (what service discovery lists for every node). */
  metricsPort?: () => number;
  /** This node's image builder (tsctl build); absent: the API answers builds with UNIMPLEMENTED. */
  imageBuilder?: ImageBuilder;
}

export class Manager {
  private readonly closers: Array<() => Promise<void> | void> = [];
  /** Other nodes' task logs, asked over their sessions with this manager's dispatcher (tsctl logs). */
  private readonly nodeLogs = new NodeLogs();
  /** Nodes' task resource use, asked over their sessions with this manager's dispatcher (tsctl top). */
  private readonly nodeTop = new NodeTop();
  private readonly nodeExec = new NodeExec();
  raft: RaftStore | undefined;
  clusterSecurity: ClusterSecurity | undefined;
  /** With the etcd backend: the key of the store's sealed values, for managers that join (NodeCA.StoreKey). */
  private storeKey: Uint8Array | undefined;
  /** Set by stop(): a join still waiting to be promoted gives up instead of waiting its 120 s. */
  private stopping = false;
  apiPort = 0;
  /** The manager half's metrics while it runs; tsd serves them on the node's /metrics. */
  metrics: DaemonMetrics | undefined;
  /** Autolock: the KEK that opens the Raft keyring or the etcd store key when a kek file does not (autolock-start.ts). */
  private startingKek: StartingKek = {};

  constructor(private readonly deps: ManagerDeps) {}

  get clusterId(): string {
    return this.deps.node.clusterId;
  }

  /** The unlock key of a cluster this manager just founded with `tsd init --autolock`, once (then forgotten here). */
  takeInitialUnlockKey(): string | undefined {
    const key = this.startingKek.initialUnlockKey;
    this.startingKek = { ...this.startingKek, initialUnlockKey: undefined };
    return key;
  }

  async start(): Promise<void> {
    const { config, log } = this.deps;
    // Autolock: a locked manager waits here, serving nothing but the unlock call on its socket.
    this.startingKek = await kekAtStart({ config, founding: !this.deps.joinVia, log, onWaiting: (close) => this.closers.push(close) });
    // Who is calling, on the TLS port: the certificate's subject, checked against this cluster and
    // the revocation list (known once the store is open; Raft traffic comes before that).
    const trust: TrustState = { clusterId: () => this.clusterId, isRevoked: (serial) => this.clusterSecurity?.isRevoked(serial) ?? false };
    const authenticate = certificateAuthenticator(trust);
    // The server is bound first: a Raft member must know its own address before its store opens.
    // The other services are added once the store is there (grpc-js accepts services after bind).
    // Anonymous callers get no further than NodeCA.Join (auth/door.ts); the rest is checked per call.
    let auditRefusal: ((path: string, peer: string, reason: string) => void) | undefined;
    const server = newRaftServer([certificateRequiredAtTheDoor((path, peer, reason) => auditRefusal?.(path, peer, reason))]);
    // Raft is served to manager certificates only, and a peer speaks only for itself (raft-service.ts).
    if (config.store === 'raft')
      addRaftService(
        server,
        lateHandlers(() => this.raft),
        (call) => raftPeer(requireNode(authenticate(call), 'manager').nodeId, this.raft),
      );
    this.apiPort = await bindServer(server, config.listen, this.deps.security);
    let dispatcherRef: DispatcherServer | undefined;
    this.closers.push(() => {
      dispatcherRef?.closeAll();
      return shutdownServer(server);
    });
    // Root on this machine: the API alone, plaintext, on a socket only root may open.
    const localServer = new grpc.Server(API_SERVER_OPTIONS);
    const localSocket = apiSocketOf(config);
    const localPath = localSocket.slice('unix:'.length);
    // With a durable store tsd restarts after kill -9, which leaves its socket files behind.
    await removeStaleSocket(localPath);
    await bindRootOnlySocket(localServer, localSocket);
    await chmod(localPath, 0o600);
    this.closers.push(() => shutdownServer(localServer));
    const store = await this.openStore();
    this.closers.push(() => store.close());
    if (this.raft) await this.waitForLeader(this.raft);
    // From the store's first moment here: `tsctl events` on this manager shows what happened since.
    const events = new EventLog();
    const recorder = new EventRecorder(store, events, log);
    await recorder.start();
    this.closers.push(() => recorder.stop());
    // Autolock: followed (and a new cluster's unlock key stored) as soon as the store is open.
    const protectedKeys = protectedKeysOf(this.raft, this.storeKey, config.dataRoot);
    const autolock = protectedKeys ? await startAutolockKeeper(store, protectedKeys, this.startingKek.initialUnlockKey, log) : undefined;
    if (autolock) this.closers.push(() => autolock.close());
    const clusterSecurity = await openClusterSecurity(store, this.deps.node, config, log);
    this.clusterSecurity = clusterSecurity;
    this.closers.push(() => clusterSecurity.close());
    // The root CA's key is in the store (a joining manager has it once it is a member); an older
    // version's ca.key file is moved into the store and destroyed.
    const keeper = new CaKeeper(clusterSecurity);
    const adopted = await keeper.adoptFiles(certPaths(config.dataRoot));
    if (adopted) log(adopted);
    const signer = () => keeper.signer();
    const objects = new ObjectStore(store);
    const onInformerError = (err: Error) => log(`informer: ${err.message}`);
    const services = new Informer<Service>(store, 'Service', kindPrefix('Service'), onInformerError);
    const tasks = new Informer<Task>(store, 'Task', kindPrefix('Task'), onInformerError);
    const nodes = new Informer<Node>(store, 'Node', kindPrefix('Node'), onInformerError);
    // tsctl exec: a node marked down ends its execs even when its session has not (yet) broken.
    nodes.subscribe((event) => {
      if (event.type === 'modified' && event.object.status.state === 'down' && event.previous?.status.state !== 'down')
        this.nodeExec.nodeDown(event.object.metadata.name, `the node is down (${event.object.status.message ?? 'no heartbeat'})`);
    });
    for (const informer of [services, tasks, nodes]) {
      await informer.start();
      this.closers.push(() => informer.stop());
    }

    // Upsert: with a durable store this node is already registered after a restart.
    if (await objects.get('Node', '', config.nodeName)) {
      await objects.updateWithRetry('Node', '', config.nodeName, (n) => ({ ...n, status: this.deps.self }));
    } else {
      await objects.create<Node>({
        apiVersion: API_VERSION,
        kind: 'Node',
        metadata: { name: config.nodeName, stack: '' },
        spec: { availability: 'active', role: 'manager' },
        status: this.deps.self,
      });
    }

    const metrics = new DaemonMetrics(() => tasks.list());
    // Scheduler, controller and dispatcher metrics, served on the same /metrics.
    const controlPlaneMetrics = new ControlPlaneMetrics(metrics.registry, () => services.list());
    const health = new NodeHealth(objects, nodes, tasks, {
      timeoutMs: config.nodeDownAfterMs,
      checkEveryMs: config.heartbeatMs,
      log,
      observer: controlPlaneMetrics.dispatcher,
    });
    health.heartbeat(config.nodeName);

    const overlay = await startOverlayControl({ store, services, tasks, nodes, reserved: [config.subnet], log });
    this.closers.push(() => overlay.stop());

    // Node health and the controllers run on the Raft leader only (with one manager: always here).
    let stopDuties: (() => void) | undefined;
    const lead = (): void => {
      if (stopDuties) return;
      // A new leader holds every committed entry but may not have applied them all yet: controllers
      // started at once decided on informers that lacked the old leader's last writes (a slot's new
      // task, created again: the slot ran twice; test/e2e/hollow-leader-kill.test.ts). A linearizable
      // read first, then one turn for the watches to deliver what it applied.
      const cancel = new AbortController();
      const cancelled = () => cancel.signal.aborted;
      stopDuties = () => cancel.abort();
      void (async () => {
        for (;;) {
          try {
            await store.currentRevision();
            break;
          } catch (err) {
            if (cancelled()) return;
            log(`waiting to catch up before leading: ${(err as Error).message}`);
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        await new Promise((r) => setImmediate(r));
        if (cancelled()) return;
        stopDuties = undefined;
        startDuties();
      })();
    };
    const startDuties = (): void => {
      // Every known node gets a fresh grace period: its agent is reconnecting to this new leader.
      for (const n of nodes.list()) health.heartbeat(n.metadata.name);
      health.start();
      const { controllers } = controlPlaneMetrics;
      const serviceController = new ServiceController(objects, services, tasks, nodes, {
        log,
        queue: controllers.queue(CONTROLLER_NAMES.service),
        onRestart: (stack, service) => controllers.taskRestarted(stack, service),
      });
      const schedulingController = new SchedulingController(objects, nodes, tasks, log, Date.now, undefined, {
        queue: controllers.queue(CONTROLLER_NAMES.scheduler),
        scheduling: controlPlaneMetrics.scheduler,
      });
      const drainController = new DrainController(objects, nodes, tasks, log, controllers.queue(CONTROLLER_NAMES.drain));
      const compactor = new AutoCompactor(store, { retainRevisions: config.historyRevisions, checkEveryMs: 60_000, log });
      serviceController.start();
      schedulingController.start();
      drainController.start();
      compactor.start();
      const stopAllocator = overlay.lead(controllers.queue(CONTROLLER_NAMES.network));
      // A root CA rotation ends here, on the leader, once every node holds a certificate from the new root.
      const rotationCheck = setInterval(() => {
        completeRotationIfDone({ security: clusterSecurity, nodeNames: () => nodes.list().map((n) => n.metadata.name), log }).catch((err: unknown) =>
          log(`root CA rotation: ${(err as Error).message}`),
        );
      }, ROTATION_CHECK_MS);
      stopDuties = () => {
        clearInterval(rotationCheck);
        stopAllocator();
        compactor.stop();
        health.stop();
        serviceController.stop();
        schedulingController.stop();
        drainController.stop();
      };
      if (this.raft) log('this manager leads: controllers and node health running');
    };
    const follow = (): void => {
      if (!stopDuties) return;
      stopDuties();
      stopDuties = undefined;
      // Agents holding sessions here move to the new leader.
      dispatcherRef?.closeAll();
      log('this manager no longer leads: controllers stopped');
    };
    const raft = this.raft;
    if (raft) {
      raft.host.onLeaderChange((_leader, isLeader) => (isLeader ? lead() : follow()));
      if (raft.isLeader()) lead();
    } else {
      lead();
    }
    this.closers.push(() => stopDuties?.());

    // Raft and store metrics under etcd's names (none with --store etcd: etcd serves its own).
    const storeMetrics = registerStoreMetrics(metrics.registry, store);
    this.closers.push(() => storeMetrics.stop());
    this.metrics = metrics;
    this.closers.push(() => (this.metrics = undefined));
    const audit = await openAudit(dataPaths(config).auditLog, config.nodeName, log);
    // Contexts of builds an earlier tsd was running when it stopped: no build survives a restart.
    await rm(dataPaths(config).buildContexts, { recursive: true, force: true });
    this.closers.push(() => audit.close());
    // An attempted change without a verified certificate, stopped at the door (its request unread).
    auditRefusal = (path, peer, reason) => {
      const method = apiMethodOf(path);
      if (method && isMutating(method))
        audit.audit({
          caller: { kind: 'unauthenticated', who: `no verified certificate from ${peer}` },
          method,
          request: {},
          error: new AuthenticationError(reason),
        });
    };
    // Where images are: the leader's memory of every connected node's inventory (images across nodes).
    const imageLocations = new ImageLocations();
    const api = new ApiServer({
      store,
      images: this.deps.images,
      logs: this.deps.logs,
      selfNode: config.nodeName,
      nodeLogs: this.nodeLogs,
      nodeTop: this.nodeTop,
      nodeExec: this.nodeExec,
      logsLeader: () => this.leaderApi(),
      holdsNodeSessions: () => this.raft === undefined || this.raft.isLeader(),
      metrics,
      events,
      clusterId: this.clusterId,
      version: VERSION,
      storeBackend: config.store,
      managers: () => this.managerAddresses(),
      ...(this.raft ? { cluster: this.clusterMembersApi(this.raft) } : {}),
      joinTokens: {
        rotate: async (role) => {
          const token = await clusterSecurity.rotateToken(role);
          log(`a new ${role} join token was issued; the previous one no longer works`);
          return token;
        },
      },
      identity: identityApi({
        security: clusterSecurity,
        ca: signer,
        keeper,
        nodeNames: () => nodes.list().map((n) => n.metadata.name),
        objects,
        health,
        storeMembers: async () => (this.raft ? (await this.raft.clusterMembers()).map((m) => m.id) : []),
        ...(this.raft ? { storeRoles: raftRoles(this.raft) } : {}),
        log,
      }),
      audit: audit.audit,
      readAudit: audit.readAudit,
      // Only the leader holds the sessions, so only it knows where images are.
      imageHolders: () => (this.raft && !this.raft.isLeader() ? undefined : imageLocations.held()),
      ...(this.deps.imageBuilder ? { imageBuilder: this.deps.imageBuilder } : {}),
      buildContextDir: dataPaths(config).buildContexts,
      buildContextMaxBytes: config.buildContextMaxBytes,
    });
    const dispatcher = new DispatcherServer({
      objects,
      tasks,
      nodes,
      health,
      heartbeatPeriodMs: config.heartbeatMs,
      authenticate,
      managers: () => this.managerAddresses(),
      log,
      networkViews: overlay.views,
      nodeLogs: this.nodeLogs,
      nodeTop: this.nodeTop,
      images: {
        locations: imageLocations,
        revocations: { serials: () => clusterSecurity.revokedSerials(), subscribe: (listener) => clusterSecurity.onChange(listener) },
        log,
      },
      nodeExec: this.nodeExec,
      observer: controlPlaneMetrics.dispatcher,
      trust: {
        current: () => ({ trustedRootPems: clusterSecurity.meta.trustedRootPems, signingRootPem: signingRootPem(clusterSecurity.meta) }),
        subscribe: (listener) => clusterSecurity.onChange(listener),
      },
    });
    dispatcherRef = dispatcher;
    // A removed node's session ends at once; its certificate is refused from then on.
    this.closers.push(nodes.subscribe((event) => (event.type === 'deleted' ? dispatcher.closeNode(event.object.metadata.name) : undefined)));
    // Prometheus HTTP service discovery beside /metrics: every node's endpoint, and opted-in tasks.
    const sd = new PrometheusSdRoutes({
      nodes: () => nodes.list(),
      services: () => services.list(),
      tasks: () => tasks.list(),
      networks: () => overlay.allocations.current,
      metricsPort: () => this.deps.metricsPort?.() ?? Number(splitHostPort(metricsListenOf(config))[1]),
      log,
    });
    // Served on the node's metrics server (mutual TLS only); gone with the manager half on a demotion.
    const routes = this.deps.httpRoutes;
    if (routes)
      for (const [path, handler] of sd.routes()) {
        routes.addRoute(path, handler);
        this.closers.push(() => routes.removeRoute(path));
      }
    api.addTo(server, authenticate);
    api.addTo(localServer, authenticateLocalRoot);
    if (autolock) {
      const servers = [
        { server, authenticate },
        { server: localServer, authenticate: authenticateLocalRoot },
      ];
      serveAutolock({ keeper: autolock, node: config.nodeName, audit: audit.audit, servers });
    }
    const storeKey = this.storeKey;
    new NodeCaService({ security: clusterSecurity, signer, objects, authenticate, log, ...(storeKey ? { storeKey: () => storeKey } : {}) }).addTo(server);
    dispatcher.addTo(raft ? leaderOnly(server, () => this.notLeaderReason()) : server);
    // Served by every manager, leader or not, once the revocation list is known (the store is open).
    this.deps.imagePeer?.(server, (call) => void requireNode(authenticate(call)));
  }

  /** Where agents on other nodes reach this manager's dispatcher. */
  dispatcherAddress(): string {
    const { config } = this.deps;
    const [, port] = splitHostPort(config.listen);
    return `${config.advertiseAddress}:${this.apiPort || port}`;
  }

  private async openStore(): Promise<Store> {
    const { config, log } = this.deps;
    if (config.store === 'memory') return new MemoryStore();
    if (config.store === 'etcd') {
      // Every value is sealed before it reaches etcd, with data keys the managers share (sealed-store.ts).
      // With autolock, the store key is opened with the KEK the unlock key gave (never a plaintext file).
      const storeKey = await openStoreKey(config.dataRoot, this.startingKek.kek, log);
      this.storeKey = storeKey;
      return SealedStore.open(new EtcdStore({ endpoints: config.etcdEndpoints }), storeKey, log);
    }
    const address = this.dispatcherAddress();
    const raft = await RaftStore.open({
      id: config.nodeName,
      group: 'tessera',
      address,
      dataDir: dataPaths(config).raft,
      ...(this.deps.joinVia ? {} : { bootstrap: [{ id: config.nodeName, address }] }),
      // Raft peers must be managers of this cluster.
      security: expecting(this.deps.security, { kind: 'cluster-node', clusterId: this.clusterId, role: 'manager' }),
      snapshotEvery: config.raftSnapshotEvery,
      log,
      ...(this.startingKek.kek ? { kek: this.startingKek.kek } : {}),
    });
    this.raft = raft;
    if (this.deps.joinVia) {
      try {
        await this.joinAsManager(raft, this.deps.joinVia, address);
      } catch (err) {
        await raft.close();
        throw err;
      }
    }
    return raft;
  }

  /**
   * Joins an existing group: asks to be added as a learner (the API checks the manager certificate),
   * waits for the leader's snapshot, then asks for promotion to voter until the leader agrees it
   * has caught up. A restarted member that is already in the group skips all that.
   */
  private async joinAsManager(raft: RaftStore, via: string, address: string): Promise<void> {
    const { config, log } = this.deps;
    const status = await raft.status();
    if ([...status.voters, ...status.learners].includes(config.nodeName)) return;
    const client = new MembersApiClient(via, this.deps.security);
    try {
      await client.change('add', config.nodeName, address).catch((err: unknown) => {
        throw new Error(`joining the managers at ${via} failed: ${grpcMessage(err)}`);
      });
      log(`added as a learner through ${via}; catching up`);
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (this.stopping) throw new Error('stopped while joining the managers');
        try {
          if (raft.host.appliedIndex > 0) {
            await client.change('promote', config.nodeName, address);
            log('promoted to voter');
            return;
          }
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`not promoted to voter within 120 s: ${grpcMessage(err)}`);
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      client.close();
    }
  }

  /** Every manager's address, the leader's first (agents try them in order). */
  managerAddresses(): string[] {
    const raft = this.raft;
    if (!raft) return [this.dispatcherAddress()];
    const leader = raft.host.leader();
    const members = raft.memberAddresses();
    const leaderAddress = members.get(leader);
    return [...(leaderAddress ? [leaderAddress] : []), ...[...members].filter(([id]) => id !== leader).map(([, a]) => a)];
  }

  /** The leader's API address when another manager leads (it holds the nodes' sessions); undefined here. */
  private leaderApi(): { address: string; security: TransportSecurity } | undefined {
    const raft = this.raft;
    if (!raft || raft.isLeader()) return undefined;
    const address = raft.memberAddresses().get(raft.host.leader());
    return address === undefined ? undefined : { address, security: this.deps.security };
  }

  private notLeaderReason(): string | undefined {
    const raft = this.raft;
    if (!raft || raft.isLeader()) return undefined;
    const leader = raft.host.leader();
    const address = leader ? raft.memberAddresses().get(leader) : undefined;
    return leader ? `not the leader, leader is ${leader}${address ? ` at ${address}` : ''}` : 'no leader is known yet';
  }

  private clusterMembersApi(raft: RaftStore): NonNullable<ConstructorParameters<typeof ApiServer>[0]['cluster']> {
    return {
      members: async () =>
        (await raft.clusterMembers()).map((m) => ({ id: m.id, address: m.address, role: m.role, term: m.term, commit: m.commit, applied: m.applied })),
      // Who may change what was decided by the API (authorizeMemberChange): a manager adds itself, an admin anything.
      change: async (req) => {
        const type = req.action === 'add' ? 'add-learner' : req.action === 'promote' ? 'add-voter' : 'remove-node';
        return raft.changeMembers({ type, id: req.name, address: req.address });
      },
    };
  }

  /**
   * A restarted manager whose peers are not up yet waits for a leader, however long, rather than
   * failing its start: under systemd, managers that each gave up after a while and restarted could
   * keep missing one another and never make a majority.
   */
  private async waitForLeader(store: RaftStore): Promise<void> {
    for (;;) {
      try {
        // Any key: what matters is that a leader confirms the read.
        await store.get(CLUSTER_META_KEY);
        return;
      } catch (err) {
        if (this.stopping || !(err instanceof NotLeaderError || err instanceof NoLeaderAnswerError)) throw err;
        this.deps.log(`waiting for a Raft leader (a majority of the managers must be up): ${(err as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
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
