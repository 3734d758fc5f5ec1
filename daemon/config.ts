// tsd's settings, with their defaults and validation. One node daemon runs a manager and an agent.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DNS_LABEL } from '../common/resources/names.js';
import { machineAddress } from './machine-address.js';
import { DEFAULT_MAX_CONTEXT_BYTES } from '../common/build/request-limits.js';

export interface DaemonConfig {
  dataRoot: string;
  /**
   * host:port of the node's gRPC server: always mutual TLS (the API for remote users, the
   * dispatcher, NodeCA and Raft).
   */
  listen: string;
  /**
   * host:port of /metrics, HTTPS with the cluster's mutual TLS (daemon/metrics/); port 0 picks a
   * free one. Default: the advertise address, port 7421 (metricsListenOf).
   */
  metricsListen?: string;
  /** host:port of /metrics in plain HTTP as well: an explicit opt-in (metrics carry no secrets); unset: none. */
  metricsInsecure?: string;
  nodeName: string;
  bridge: string;
  subnet: string;
  nftTable: string;
  cgroupParent: string;
  insecureRegistries: string[];
  heartbeatMs: number;
  /** A node whose heartbeats stop for this long is down. */
  nodeDownAfterMs: number;
  /** Manager address to join as a worker; unset means this node runs a manager itself. */
  join?: string;
  /**
   * Where `tsd join` reads its join token: a file, or '-' for stdin; unset: the TESSERA_JOIN_TOKEN
   * environment variable. Never a command-line argument (argv shows in ps). Needed only on the
   * first start: afterwards the node's certificate is its credential.
   */
  tokenFile?: string;
  /** Address other nodes reach this node at (its underlay address). */
  advertiseAddress: string;
  /**
   * Managers: the API for root on this machine, on a unix socket only root can open (0600); tsctl
   * on the manager uses it. Default unix:<data-root>/tsd.sock.
   */
  apiSocket?: string;
  /** Lifetime of node certificates this cluster issues (set at tsd init); renewed at two thirds. */
  certValidityMs: number;
  /**
   * Where the manager keeps the cluster's state: `raft` (replicated and durable under
   * <data-root>/raft; one tsd is a one-member group), `memory` (tests), `etcd` (etcdEndpoints).
   */
  store: 'raft' | 'memory' | 'etcd';
  etcdEndpoints: string[];
  /** Raft: take a snapshot and compact the log every this many applied entries. */
  raftSnapshotEvery: number;
  /** Store history kept by auto-compaction, in revisions; 0 keeps everything (history grows without bound). */
  historyRevisions: number;
  /**
   * A stop (SIGTERM) leaves this node's containers running with their network, for the next tsd
   * to take over (Docker's live-restore): what the systemd unit runs with, so that restarting or
   * upgrading tsd never stops a container. Without it, a stop removes them (a local cluster's down).
   */
  liveRestore: boolean;
  /**
   * Founding a cluster (tsd init with a new Raft directory): protect the Raft keyring with an unlock
   * key instead of keys/kek (autolock-start.ts). Ignored afterwards: `tsctl cluster update --autolock`
   * changes it for the whole cluster.
   */
  autolock: boolean;
  /** Managers: the most bytes of a build context's tar (tsctl build) this node accepts. */
  buildContextMaxBytes: number;
}

export function defaultConfig(): DaemonConfig {
  return {
    dataRoot: '/var/lib/tessera',
    // Every address of the machine, as Swarm's 2377: the server is mutual TLS only, so reachable is not open.
    listen: '0.0.0.0:7420',
    nodeName:
      hostname()
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '-')
        .slice(0, 63) || 'node',
    bridge: 'tessera0',
    subnet: '10.213.0.0/24',
    nftTable: 'tessera',
    cgroupParent: 'tessera',
    insecureRegistries: [],
    heartbeatMs: 1000,
    // 15 s, as Swarm (three missed 5 s heartbeats): 5 s made busy or emulated machines (the Vagrant
    // VMs under QEMU TCG) flap down and up, and every flap moves their tasks.
    nodeDownAfterMs: 15_000,
    advertiseAddress: machineAddress() ?? '127.0.0.1',
    certValidityMs: 90 * 24 * 60 * 60 * 1000,
    store: 'raft',
    etcdEndpoints: [],
    raftSnapshotEvery: 10_000,
    historyRevisions: 10_000,
    liveRestore: false,
    autolock: false,
    buildContextMaxBytes: DEFAULT_MAX_CONTEXT_BYTES,
  };
}

/**
 * Where tsd keeps things under its data root (0711). Every directory is root's alone (0700), but
 * containers/, which leads to container root file systems (0710 root:root); tsd.log and every
 * file with anything private in it are 0600. daemon/data-root.ts sets the modes at each start.
 */
export function dataPaths(config: DaemonConfig) {
  return {
    containers: join(config.dataRoot, 'containers'),
    logs: join(config.dataRoot, 'logs'),
    images: join(config.dataRoot, 'images'),
    runtimeState: join(config.dataRoot, 'runtime'),
    network: join(config.dataRoot, 'network'),
    /** Per-container secrets and configs (tmpfs mounts); the worker makes it beside containers/. */
    run: join(config.dataRoot, 'run'),
    /** Build contexts being built from (tsctl build), one directory each; emptied at every start. */
    buildContexts: join(config.dataRoot, 'build-contexts'),
    /** Build steps' root file systems and bundles while a build runs (agent/build/). */
    builds: join(config.dataRoot, 'builds'),
    /** Named volumes; the worker makes it beside containers/. */
    volumes: join(config.dataRoot, 'volumes'),
    daemonLog: join(config.dataRoot, 'tsd.log'),
    auditLog: join(config.dataRoot, 'audit', 'audit.log'),
    raft: join(config.dataRoot, 'raft'),
    pidFile: join(config.dataRoot, 'tsd.pid'),
  };
}

const HOST_PORT = /^([A-Za-z0-9.-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$/;
/** Shortest node certificate lifetime: long enough to outlast a handshake on a loaded machine, short enough for a test to watch renewals. */
export const MIN_CERT_VALIDITY_MS = 60_000;

/** The default /metrics port, on the node's advertise address. */
export const METRICS_PORT = 7421;

/** Where /metrics is served over mutual TLS: --metrics-listen, or <advertise address>:7421. */
export function metricsListenOf(config: Pick<DaemonConfig, 'metricsListen' | 'advertiseAddress'>): string {
  return config.metricsListen ?? `${config.advertiseAddress}:${METRICS_PORT}`;
}

/** The unix socket a manager serves root on: --api-socket, or <data-root>/tsd.sock. */
export function apiSocketOf(config: Pick<DaemonConfig, 'apiSocket' | 'dataRoot'>): string {
  return config.apiSocket ?? `unix:${join(config.dataRoot, 'tsd.sock')}`;
}

/** Throws an error naming every setting that is wrong. */
export function validateConfig(config: DaemonConfig): void {
  const problems: string[] = [];
  if (!config.dataRoot.startsWith('/')) problems.push(`--data-root must be an absolute path, got "${config.dataRoot}"`);
  if (!HOST_PORT.test(config.listen))
    problems.push(`--listen must be host:port (it is always mutual TLS; root on this machine uses --api-socket), got "${config.listen}"`);
  if (config.metricsListen !== undefined && !HOST_PORT.test(config.metricsListen))
    problems.push(`--metrics-listen must be host:port, got "${config.metricsListen}"`);
  if (config.metricsInsecure !== undefined && !HOST_PORT.test(config.metricsInsecure))
    problems.push(`--metrics-insecure must be host:port, got "${config.metricsInsecure}"`);
  if (config.metricsInsecure !== undefined && config.metricsInsecure === metricsListenOf(config))
    problems.push(`--metrics-insecure must differ from the mutual-TLS metrics address ${metricsListenOf(config)}`);
  if (!DNS_LABEL.test(config.nodeName)) problems.push(`--node-name must be a DNS label (a-z, 0-9, -), got "${config.nodeName}"`);
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(config.bridge)) problems.push(`--bridge must be a link name of at most 15 characters, got "${config.bridge}"`);
  if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(config.subnet)) problems.push(`--subnet must be an IPv4 CIDR such as 10.213.0.0/24, got "${config.subnet}"`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(config.nftTable)) problems.push(`--nft-table must be letters, digits, _ or -, got "${config.nftTable}"`);
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(config.cgroupParent))
    problems.push(`--cgroup-parent must be a relative cgroup path, got "${config.cgroupParent}"`);
  if (!(config.heartbeatMs >= 50)) problems.push(`--heartbeat-ms must be at least 50, got ${config.heartbeatMs}`);
  if (!(config.nodeDownAfterMs > config.heartbeatMs)) problems.push(`--node-down-after-ms must exceed --heartbeat-ms`);
  if (config.apiSocket !== undefined && !/^unix:\/.+/.test(config.apiSocket))
    problems.push(`--api-socket must be unix:/absolute/path, got "${config.apiSocket}"`);
  if (config.join !== undefined && !HOST_PORT.test(config.join)) problems.push(`--join must be a manager's host:port, got "${config.join}"`);
  if (config.tokenFile !== undefined && config.tokenFile !== '-' && !config.tokenFile.startsWith('/'))
    problems.push(`--token-file must be an absolute path or - (stdin), got "${config.tokenFile}"`);
  if (!(Number.isInteger(config.certValidityMs) && config.certValidityMs >= MIN_CERT_VALIDITY_MS))
    problems.push(`--cert-validity-ms must be a whole number of at least ${MIN_CERT_VALIDITY_MS} (one minute), got ${config.certValidityMs}`);
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(config.advertiseAddress)) problems.push(`--advertise-address must be an IPv4 address, got "${config.advertiseAddress}"`);
  if (!['raft', 'memory', 'etcd'].includes(config.store)) problems.push(`--store must be raft, memory or etcd, got "${config.store}"`);
  if (config.store === 'etcd' && config.etcdEndpoints.length === 0) problems.push('--store etcd needs --etcd-endpoints http://host:port[,...]');
  for (const e of config.etcdEndpoints) if (!/^https?:\/\/[^/\s]+$/.test(e)) problems.push(`--etcd-endpoints: "${e}" is not http(s)://host:port`);
  if (!(Number.isInteger(config.raftSnapshotEvery) && config.raftSnapshotEvery >= 10))
    problems.push(`--raft-snapshot-every must be an integer of at least 10, got ${config.raftSnapshotEvery}`);
  if (!(Number.isInteger(config.historyRevisions) && config.historyRevisions >= 0))
    problems.push(`--history-revisions must be a whole number (0 keeps all history), got ${config.historyRevisions}`);
  if (!(Number.isInteger(config.buildContextMaxBytes) && config.buildContextMaxBytes >= 1024 * 1024))
    problems.push(`--build-context-max-bytes must be a whole number of at least 1048576 (1 MiB), got ${config.buildContextMaxBytes}`);
  if (problems.length > 0) throw new Error(`invalid tsd settings:\n  ${problems.join('\n  ')}`);
}
