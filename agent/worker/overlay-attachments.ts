// The agent's overlay networking, driven by the network state the dispatcher sends (a
// NodeNetworkView): per network a bridge + VXLAN device with FDB/neighbour entries for the peers
// (OverlayDriver), a DNS resolver on the network's gateway (ServiceResolver), VIPs and routing-mesh
// ports balanced with nftables (VipBalancer). Tasks get one interface per network.
//
// Interface layout in a container: eth0 stays on the node-local bridge (default route, egress to
// the outside world, host-mode published ports); eth1, eth2, … are the task's overlay networks in
// the order the service lists them, ingress last. Overlay subnets, and the VIPs inside them, are
// reached through their connected routes, so no default route is needed on them.
//
// Converging is level-triggered: every new view replaces the previous one; a failed converge is
// retried with the latest view. Isolation: a guard table drops anything routed into an overlay
// bridge from outside the overlays (e.g. from the node-local bridge) unless the node itself DNATed
// it (routing mesh); the driver's own table keeps overlays apart from each other.
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import type { NodeNetworkView, NodeViewAttachment } from '../../common/network/node-network-view.js';
import { INGRESS_NETWORK_ID } from '../../common/network/node-network-view.js';
import type { Task } from '../../common/resources/types.js';
import { ServiceResolver } from '../network/dns/service-resolver.js';
import { NamespaceCommands } from '../network/exec.js';
import { OverlayDriver } from '../network/overlay/overlay-driver.js';
import { OVERLAY_BRIDGE_PREFIX } from '../network/overlay/names.js';
import { VipBalancer } from '../network/vip/vip-balancer.js';
import type { AgentMetrics } from '../metrics/agent-metrics.js';

const GUARD_TABLE = 'tessera_ovguard';
const RETRY_MS = 1000;

export interface OverlayNetworkingConfig {
  /** This node's underlay address (its advertised address). */
  localUnderlayAddress: string;
  log: (message: string) => void;
  /** How long a task waits for the managers to allocate its addresses before it fails. */
  allocationTimeoutMs?: number;
  /** Overlay DNS queries and peers (agent/metrics); absent: not recorded. */
  metrics?: AgentMetrics;
}

export interface TaskOverlay {
  /** Waits until the task's addresses are allocated and its networks programmed here; undefined when overlay networking is off. */
  prepare(task: Task): Promise<{ attachments: NodeViewAttachment[]; dnsServer: string | undefined }>;
  /** Writes the container's /etc/resolv.conf pointing at the first network's resolver. */
  writeResolvConf(rootfs: string, dnsServer: string): Promise<void>;
  attach(containerId: string, pid: number, attachments: NodeViewAttachment[]): Promise<void>;
  detach(containerId: string, attachments: NodeViewAttachment[]): Promise<void>;
}

export function taskKeyOf(task: Task): string {
  return `${task.metadata.stack ?? ''}/${task.metadata.name}`;
}

export function guardTableScript(): string {
  const t = `ip ${GUARD_TABLE}`;
  return (
    [
      `add table ${t}`,
      `delete table ${t}`,
      `add table ${t}`,
      `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
      `add rule ${t} forward iifname != "${OVERLAY_BRIDGE_PREFIX}*" oifname "${OVERLAY_BRIDGE_PREFIX}*" ct status dnat accept`,
      `add rule ${t} forward iifname != "${OVERLAY_BRIDGE_PREFIX}*" oifname "${OVERLAY_BRIDGE_PREFIX}*" drop`,
    ].join('\n') + '\n'
  );
}

/** Each local task address → every (non-ingress) network of that task, in the task's order. */
export function clientNetworks(view: NodeNetworkView): Map<string, string[]> {
  const clients = new Map<string, string[]>();
  for (const attachments of Object.values(view.tasks)) {
    const networks = attachments.map((a) => a.networkId).filter((id) => id !== INGRESS_NETWORK_ID);
    for (const a of attachments) if (a.networkId !== INGRESS_NETWORK_ID) clients.set(a.address, networks);
  }
  return clients;
}

export class OverlayNetworking implements TaskOverlay {
  readonly driver: OverlayDriver;
  readonly resolver: ServiceResolver;
  readonly balancer = new VipBalancer();
  private readonly commands = new NamespaceCommands();
  private latest: NodeNetworkView | undefined;
  /** The view last converged without error, and the networks programmed by it. */
  private applied: NodeNetworkView | undefined;
  private readonly programmed = new Set<string>();
  private converging = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private guardInstalled = false;
  private waiters: Array<() => void> = [];
  private stopped = false;

  constructor(private readonly config: OverlayNetworkingConfig) {
    this.driver = new OverlayDriver({ localUnderlayAddress: config.localUnderlayAddress });
    this.resolver = new ServiceResolver({ log: (message) => config.log(`overlay dns: ${message}`), ...(config.metrics ? { metrics: config.metrics } : {}) });
    config.metrics?.watchOverlayPeers(() => this.driver.peerCounts());
  }

  /** Takes a new view from the manager; converging runs in the background, latest view wins. */
  setView(view: NodeNetworkView): void {
    this.latest = view;
    void this.pump();
  }

  async prepare(task: Task): Promise<{ attachments: NodeViewAttachment[]; dnsServer: string | undefined }> {
    const key = taskKeyOf(task);
    const deadline = Date.now() + (this.config.allocationTimeoutMs ?? 60_000);
    for (;;) {
      const attachments = this.applied?.tasks[key];
      if (attachments && attachments.every((a) => this.programmed.has(a.networkId))) {
        const first = attachments.find((a) => a.networkId !== INGRESS_NETWORK_ID);
        const dnsServer = first ? this.applied?.networks.find((n) => n.id === first.networkId)?.gateway : undefined;
        return { attachments, dnsServer };
      }
      if (this.stopped) throw new Error('overlay networking stopped');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no network addresses allocated for task ${task.metadata.name} within ${this.config.allocationTimeoutMs ?? 60_000} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 5000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async writeResolvConf(rootfs: string, dnsServer: string): Promise<void> {
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    // ndots:0 — a bare service name is asked as is, never first with a search suffix.
    await writeFile(join(rootfs, 'etc/resolv.conf'), `nameserver ${dnsServer}\noptions ndots:0\n`);
  }

  async attach(containerId: string, pid: number, attachments: NodeViewAttachment[]): Promise<void> {
    for (const [i, a] of attachments.entries()) {
      await this.driver.attach(a.networkId, containerId, pid, { address: a.address, interfaceName: `eth${i + 1}` });
    }
  }

  async detach(containerId: string, attachments: NodeViewAttachment[]): Promise<void> {
    for (const a of attachments) await this.driver.detach(a.networkId, containerId);
  }

  async teardown(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wake();
    await this.resolver.close();
    // A daemon that never programmed anything (e.g. a join that was refused) leaves the kernel
    // alone: another tsd may own the overlay of this network namespace.
    if (!this.guardInstalled) {
      this.balancer.close();
      this.driver.close();
      return;
    }
    await this.balancer.teardown().catch((err: Error) => this.config.log(`overlay: balancer teardown: ${err.message}`));
    await this.driver.teardown().catch((err: Error) => this.config.log(`overlay: driver teardown: ${err.message}`));
    // add-then-delete cannot fail for a table that is already gone: an error here is a real one.
    await this.commands
      .nftApply(`add table ip ${GUARD_TABLE}\ndelete table ip ${GUARD_TABLE}\n`)
      .catch((err: Error) => this.config.log(`overlay: removing the guard table ${GUARD_TABLE}: ${err.message}`));
  }

  /** Read through a method: teardown() sets the flag while pump() awaits, which a narrowed field read would not see. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private async pump(): Promise<void> {
    if (this.converging || this.stopped) return;
    this.converging = true;
    try {
      while (this.latest && this.latest !== this.applied && !this.isStopped()) {
        const view = this.latest;
        try {
          await this.converge(view);
          this.applied = view;
        } catch (err) {
          this.config.log(`overlay: converging the network state failed (retrying): ${(err as Error).message}`);
          if (this.retryTimer) clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => void this.pump(), RETRY_MS);
          this.retryTimer.unref();
          return;
        } finally {
          this.wake();
        }
      }
    } finally {
      this.converging = false;
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async converge(view: NodeNetworkView): Promise<void> {
    if (!this.guardInstalled) {
      await this.commands.nftApply(guardTableScript());
      this.guardInstalled = true;
    }
    const ids = view.networks.map((n) => n.id);
    // A network new here (first view, or back after it left the node) may have re-created its
    // bridge under an old name: the balancer must not trust its mirror or cached ifindexes.
    if (view.networks.some((n) => !this.programmed.has(n.id))) await this.balancer.forgetKernelState();
    for (const network of view.networks) {
      await this.driver.ensureNetwork({
        id: network.id,
        name: network.name,
        vni: network.vni,
        subnet: network.subnet,
        gateway: network.gateway,
        nodeAddress: network.nodeAddress,
      });
      this.programmed.add(network.id);
      await this.driver.setPeers(network.id, network.peers);
    }
    await this.balancer.converge({
      vips: view.networks.flatMap((n) => n.vips.map((v) => ({ key: v.key, networkId: n.id, vip: v.vip, backends: v.backends }))),
      published: view.published,
    });
    for (const network of view.networks) {
      if (network.id === INGRESS_NETWORK_ID) continue;
      await this.resolver.setNetwork(network.id, { address: network.gateway }, network.dns);
    }
    this.resolver.setClients(clientNetworks(view));
    for (const id of this.applied?.networks.map((n) => n.id) ?? []) {
      if (!ids.includes(id)) await this.resolver.removeNetwork(id);
    }
    for (const id of this.programmed) if (!ids.includes(id)) this.programmed.delete(id);
    await this.driver.retainNetworks(ids);
  }
}
