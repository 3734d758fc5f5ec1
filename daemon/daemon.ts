// One node daemon: the agent (worker, runtime, images, network) on every node, and the manager
// when the node does not join another one. The agent always talks to a manager through a
// dispatcher session, its own node's included, so one code path serves one node and many.
import { BuildExecutor } from '../agent/build/executor.js';
import { sweepBuildLeftovers } from '../agent/build/leftovers.js';
import { availableParallelism, hostname, totalmem } from 'node:os';

import { LocalImageStore } from '../agent/images/image-store.js';
import { BridgeNetwork } from '../agent/network/node-network.js';
import { NativeRuntime } from '../agent/runtime/native-runtime.js';
import { AgentSession } from '../agent/session/agent-session.js';
import { execInTask } from '../agent/worker/task-exec.js';
import { sweepLeftovers } from '../agent/worker/leftovers.js';
import { FileLogSource } from '../agent/worker/log-source.js';
import { Worker } from '../agent/worker/worker.js';
import { UsageSampler } from '../agent/stats/usage-sampler.js';
import { OverlayNetworking } from '../agent/worker/overlay-attachments.js';
import type { TransportSecurity } from '../common/transport/credentials.js';
import type { Node } from '../common/resources/types.js';
import { dataPaths, metricsListenOf, type DaemonConfig } from './config.js';
import { Manager, VERSION } from './manager.js';
import { initIdentity, joinIdentity, type NodeIdentity } from './identity/bootstrap.js';
import { CertificateRenewal } from './identity/renewal.js';
import { readJoinToken } from './identity/join-token-source.js';
import { joinPem, parseCertificate, splitPemCertificates } from '../common/identity/x509.js';
import { caDigest, parseIdentity } from '../common/identity/certificate.js';
import { certPaths, persistIdentity } from './identity/cert-files.js';
import { RoleFollower } from './role-follower.js';
import { prepareDataRoot, prepareRaftDir } from './data-root.js';
import { PeerAccess } from '../agent/images/peer/peer-access.js';
import { PeerBlobClient } from '../agent/images/peer/peer-blob-client.js';
import { addImagePeerService } from '../agent/images/peer/peer-blob-server.js';
import { ImageChannel } from '../agent/session/image-channel.js';
import { holdingOf } from '../common/images/peer-messages.js';
import { WorkerBlobServer } from './image-peer-server.js';
import { splitHostPort } from './manager-servers.js';
import { ContainerMetrics } from '../agent/stats/container-metrics.js';
import { MetricsServer } from './metrics/metrics-server.js';
import { newNodeRegistry } from './metrics/node-registry.js';
import { AgentMetrics } from '../agent/metrics/agent-metrics.js';

/** True when the chain's last certificate is `rootPem` (compared as DER, not as text). */
function endsWith(chainPem: string, rootPem: string | undefined): boolean {
  const last = splitPemCertificates('node certificate', chainPem).at(-1);
  return last !== undefined && rootPem !== undefined && caDigest(last) === caDigest(rootPem);
}

/** True when the chain's leaf was signed by (names as its issuer) the given root. */
function issuedBy(chainPem: string, rootPem: string): boolean {
  const leaf = splitPemCertificates('node certificate', chainPem)[0];
  return leaf !== undefined && parseCertificate('node certificate', leaf).issuer === parseCertificate('root', rootPem).subject;
}

export { VERSION };

export class Daemon {
  private readonly closers: Array<() => Promise<void> | void> = [];
  manager: Manager | undefined;

  renewal: CertificateRenewal | undefined;
  /** /metrics on every node; managers add routes beside it (addRoute). */
  metricsServer: MetricsServer | undefined;
  /** Where /metrics listens (mutual TLS), once started. */
  metricsPort = 0;

  constructor(
    private readonly config: DaemonConfig,
    private readonly log: (message: string) => void,
  ) {}

  /** The node's certificate: from its files, or made now (init) or obtained with the join token (join). */
  private identity(): Promise<NodeIdentity> {
    const { config, log } = this;
    if (config.join === undefined) return initIdentity(config, log);
    return joinIdentity(config, config.join, () => readJoinToken(config), log);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    const paths = dataPaths(config);
    // Before anything is written: what an older tsd left gets this version's modes too.
    await prepareDataRoot(config, log);
    const node = await this.identity();
    // Every connection this node makes goes to a manager of its cluster, over mutual TLS.
    const security: TransportSecurity = {
      mode: 'mtls',
      identity: node.identity,
      expected: { kind: 'cluster-node', clusterId: node.clusterId, role: 'manager' },
    };

    const runtime = new NativeRuntime({ stateRoot: paths.runtimeState });
    // /metrics: one registry for this node (process, containers, the agent's own) and the manager half's while it runs.
    const metricsRegistry = newNodeRegistry();
    // The agent's metrics (task starts, pulls, health checks, overlay DNS and peers).
    const agentMetrics = new AgentMetrics(metricsRegistry, { log });
    // Images across nodes: the store reports what it holds over the session (imageChannel), asks
    // there which peers hold an image it lacks, and fetches its blobs from them (blobPeers) before
    // going to a registry; this node serves its own blobs to the cluster's other nodes.
    const peerAccess = new PeerAccess(node.clusterId);
    const imageChannel = new ImageChannel({
      inventory: async () => (await images.list()).map(holdingOf),
      onRevocations: (serials) => peerAccess.setRevoked(serials),
      log,
    });
    const images = new LocalImageStore({
      root: paths.images,
      insecureRegistries: config.insecureRegistries,
      log,
      onChange: () => imageChannel.inventoryChanged(),
      metrics: agentMetrics,
    });
    const blobPeers = new PeerBlobClient({ security, clusterId: node.clusterId });
    this.closers.push(() => blobPeers.close());
    images.setPeerSource({ locate: (reference) => imageChannel.locate(reference), open: (peer, digest, limits) => blobPeers.open(peer, digest, limits) });
    const blobService = { blobPath: (digest: string) => images.blobPath(digest), log };
    const workerBlobs = new WorkerBlobServer(config.listen, security, { ...blobService, authorize: (call) => void peerAccess.authorize(call) });
    this.closers.push(() => workerBlobs.stop());
    const metricsServer = new MetricsServer({
      identity: node.identity,
      // Revocations: a manager reads its store's list; any node has the list its session brought.
      trust: () => ({
        clusterId: node.clusterId,
        isRevoked: (serial) => this.manager?.clusterSecurity?.isRevoked(serial) ?? peerAccess.isRevoked(serial),
      }),
      registries: () => [metricsRegistry, ...(this.manager?.metrics ? [this.manager.metrics.registry] : [])],
      log,
    });
    this.metricsServer = metricsServer;
    this.closers.push(() => metricsServer.close());
    const network = new BridgeNetwork({ bridge: config.bridge, subnet: config.subnet, nftTable: config.nftTable, stateDir: paths.network });

    // With a persistent store (raft, etcd), or on a worker, the cluster still knows this node's
    // tasks after a restart: the worker takes their containers over (or removes them) once it has
    // the node's assignments. Only a manager with the memory store forgets everything, so what an
    // earlier tsd left is removed before we start.
    if (!config.join && config.store === 'memory') await sweepLeftovers({ runtime, network, containersDir: paths.containers, log });
    await network.setup();
    // With --live-restore a stop leaves the data plane (containers, bridge, rules, overlay) to the next tsd.
    const dataPlane = config.liveRestore ? 'kept' : 'removed';
    if (dataPlane === 'removed') this.closers.push(() => network.teardown());

    const self: Node['status'] = {
      state: 'ready',
      hostname: hostname(),
      address: config.advertiseAddress,
      resources: { memoryBytes: totalmem(), nanoCpus: availableParallelism() * 1e9 },
      localSubnet: config.subnet,
    };
    const logs = new FileLogSource(paths.logs);
    // Image builds: RUN steps are containers of our runtime, under tsd's cgroup parent like tasks.
    // What a killed tsd's builds left (mounts, containers, step directories) goes first.
    await sweepBuildLeftovers({ runtime, workDir: paths.builds, log });
    const builder = new BuildExecutor({
      images,
      runtime,
      workDir: paths.builds,
      cgroupParent: config.cgroupParent,
      insecureRegistries: config.insecureRegistries,
      log,
    });
    /** The manager half, now (a manager's start) or later (a promotion); joinVia: a manager to join the Raft group through. */
    const startManager = async (identity: NodeIdentity, joinVia: string | undefined): Promise<void> => {
      if (config.store === 'raft') await prepareRaftDir(config);
      // The manager serves the blobs on its own TLS port, which is the same address.
      await workerBlobs.stop();
      const manager = new Manager({
        config,
        node: identity,
        security,
        images,
        logs,
        self,
        log,
        httpRoutes: metricsServer,
        metricsPort: () => this.metricsPort,
        imagePeer: (server, authorize) => addImagePeerService(server, { ...blobService, authorize }),
        // tsctl build and Compose build: run on the node of the manager that takes the call.
        imageBuilder: builder,
        ...(joinVia !== undefined && config.store === 'raft' ? { joinVia } : {}),
      });
      this.manager = manager;
      await manager.start();
    };
    // Whichever manager half runs at shutdown (one may start or stop while tsd runs).
    this.closers.push(() => this.manager?.stop());
    // `tsd join` with a manager token makes this node one more manager of the cluster.
    if (node.role === 'manager') {
      if (config.join !== undefined && config.store === 'memory')
        throw new Error('a manager that joins a cluster shares its store: use --store raft (or etcd)');
      await startManager(node, config.join);
    }

    const workerBlobPort = this.manager ? undefined : await workerBlobs.start();
    const imagePeerAddress = this.manager
      ? this.manager.dispatcherAddress()
      : workerBlobPort === undefined
        ? ''
        : `${config.advertiseAddress}:${workerBlobPort || splitHostPort(config.listen)[1]}`;

    let stopping = false;
    let session: AgentSession | undefined;
    const renewal = new CertificateRenewal({
      dataRoot: config.dataRoot,
      nodeName: config.nodeName,
      identity: node.identity,
      security,
      managers: () => session?.managers() ?? [],
      log,
      onRenewed: (material) => roles.renewed(parseIdentity(material.certChainPem).ou),
    });
    this.renewal = renewal;
    // A promotion or demotion arrives as a renewed certificate with the other role.
    const roles = new RoleFollower({
      node,
      security,
      dataRoot: config.dataRoot,
      raftDir: paths.raft,
      someManager: () => session?.managers()[0],
      isManager: () => this.manager !== undefined,
      startManager,
      stopManager: async () => {
        await this.manager?.stop();
        // A demoted node serves its blobs on a server of its own again.
        await workerBlobs.start();
      },
      dropManager: () => (this.manager = undefined),
      renewSoon: () => renewal.renewSoon(),
      log,
    });
    // Overlay networks, service discovery, VIPs and the routing mesh, from the managers' state.
    const overlay = new OverlayNetworking({ localUnderlayAddress: config.advertiseAddress, log, metrics: agentMetrics });
    if (dataPlane === 'removed') this.closers.push(() => overlay.teardown());
    const worker = new Worker({
      runtime,
      images,
      network,
      containersDir: paths.containers,
      logsDir: paths.logs,
      cgroupParent: config.cgroupParent,
      insecureRegistries: config.insecureRegistries,
      overlay,
      report: (task, status) => session!.report(task, status),
      log,
      metrics: agentMetrics,
    });
    // Per-task container metrics in cAdvisor's names, read from cgroups and netns at each scrape.
    new ContainerMetrics({
      runtime,
      running: () => worker.running().flatMap((r) => (r.running ? [{ task: r.current, containerId: r.containerId }] : [])),
      node: config.nodeName,
      log,
    }).register(metricsRegistry);
    const [metricsHost, metricsPort] = splitHostPort(metricsListenOf(config));
    this.metricsPort = await metricsServer.listenTls(metricsHost, Number(metricsPort));
    if (config.metricsInsecure !== undefined) {
      const [plainHost, plainPort] = splitHostPort(config.metricsInsecure);
      await metricsServer.listenPlain(plainHost, Number(plainPort));
      log(`metrics are also served in plain HTTP on ${config.metricsInsecure} (--metrics-insecure)`);
    }
    session = new AgentSession({
      // A manager's own agent starts at its own dispatcher; a follower sends it on to the leader.
      managers: this.manager ? [this.manager.dispatcherAddress(), ...(config.join ? [config.join] : [])] : [config.join!],
      nodeName: config.nodeName,
      description: {
        hostname: self.hostname,
        address: config.advertiseAddress,
        memoryBytes: self.resources.memoryBytes,
        nanoCpus: self.resources.nanoCpus,
        localSubnet: config.subnet,
        imagePeerAddress,
      },
      security,
      logs,
      // tsctl top: the running containers' use, read from their cgroups and network namespaces.
      usage: new UsageSampler({
        runtime,
        running: () => worker.running().flatMap((r) => (r.running ? [{ task: r.name, containerId: r.containerId }] : [])),
      }),
      images: imageChannel,
      exec: (taskName, options) => execInTask(worker.running(), runtime, taskName, options),
      onAssignments: (tasks, files) => {
        if (!stopping) worker.reconcile(tasks, files);
      },
      onNetwork: (view) => {
        if (!stopping) overlay.setView(view);
      },
      onTrust: (update) => {
        if (stopping) return;
        const material = node.identity.material;
        if (joinPem(update.trustedRootPems) !== joinPem(material.trustedRootPems)) {
          const trusted = { ...material, trustedRootPems: update.trustedRootPems };
          node.identity.update(trusted);
          // On disk too: a restart must not bring back a root the cluster dropped.
          persistIdentity(certPaths(config.dataRoot), () => node.identity.material).catch((err: unknown) =>
            log(`roots.pem not updated: ${(err as Error).message}`),
          );
        }
        // A root rotation: this node's certificate must come from the new root; a promotion or
        // demotion: it must carry the new role.
        const roleChanged = roles.told(update.role, parseIdentity(material.certChainPem).ou);
        // After a rotation the chain still ends in the old root (and carries the cross-signed
        // one): a new certificate presents the new root alone, which new tokens pin.
        const staleChain = !endsWith(material.certChainPem, update.trustedRootPems[0]);
        if (roleChanged || staleChain || !issuedBy(material.certChainPem, update.signingRootPem)) void renewal.renewSoon();
      },
      log,
    });
    // Closers run newest first: the worker stops its containers (and reports it) before the
    // session and the manager go away.
    this.closers.push(() => session!.stop());
    this.closers.push(async () => {
      stopping = true;
      if (dataPlane === 'removed') await worker.stopAll();
      else log("live restore: this node's containers keep running for the next tsd");
    });
    session.start();
    await session.whenConnected();
    renewal.start();
    this.closers.push(() => renewal.stop());
    log(
      `tsd ${VERSION} ready: node ${config.nodeName}` +
        (this.manager ? `, manager API ${config.listen}` : `, joined ${config.join}`) +
        `, metrics https://${metricsListenOf(config)}/metrics (mutual TLS)`,
    );
  }

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
