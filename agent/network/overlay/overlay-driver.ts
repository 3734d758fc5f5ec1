// VXLAN overlay networks on one node: per network a Linux bridge and a VXLAN device (VNI, UDP
// 4789, no learning, ARP proxy), FDB and neighbour entries programmed from the desired peer list,
// and a veth per attached container. Level-triggered: every method takes desired state and
// converges the kernel to it; repeating a call changes nothing.
//
// Hot-path work (attach, detach, peer changes) goes through one long-lived `ip -batch` and one
// `bridge -batch` process per node (see batch-session.ts). Configuring the address inside a new
// container's own namespace uses a netlink socket the native addon opens in that namespace
// (../netlink/), so an attach starts no process. State is read back from the kernel only when a
// network is first seen by this process (a restarted tsd), never per container.

import { NamespaceCommands, runCommand, isNoSuchDevice } from '../exec.js';
import { NetworkInputError, cidrContains, isIpv4, parseIpv4, validateInterfaceName, validateNftName } from '../../../common/network/ipv4.js';
import { configureContainerInterface } from '../netlink/index.js';
import { BatchSession, type BatchLine } from './batch-session.js';
import { macForAddress } from '../../../common/network/mac-address.js';
import { OVERLAY_BRIDGE_PREFIX, OVERLAY_VXLAN_PREFIX, VXLAN_PORT, overlayBridgeName, overlayVethName, overlayVxlanName } from './names.js';
import {
  deleteTableScript,
  desiredPeerState,
  diffPeerState,
  emptyPeerState,
  gatewayCidr,
  nodeAddressCidr,
  overlayTableScript,
  peerStateFromKernel,
  validateMac,
  validateNetworkSpec,
  type PeerState,
  type ValidNetwork,
} from './overlay-plan.js';
import type { OverlayAttachOptions, OverlayAttachment, OverlayDriverConfig, OverlayNetworkSpec, OverlayPeer } from './types.js';

const EXISTS = /File exists/i;
const MISSING = /Cannot find device|does not exist|No such device/i;
const DEFAULT_TABLE = 'tessera_overlay';

interface NetworkState {
  network: ValidNetwork;
  bridge: string;
  vxlan: string;
  /** Mirror of the VXLAN FDB/neighbour table; undefined = unknown, read from the kernel next time. */
  peers: PeerState | undefined;
  attachments: Map<string, OverlayAttachment>;
}

export class OverlayDriver {
  private readonly commands: NamespaceCommands;
  private readonly ip: BatchSession;
  private readonly bridgeTool: BatchSession;
  private readonly table: string;
  private readonly underlayMtu: number;
  private readonly networks = new Map<string, NetworkState>();
  private queue: Promise<unknown> = Promise.resolve();
  private forwardingEnabled = false;

  constructor(private readonly config: OverlayDriverConfig) {
    if (!isIpv4(config.localUnderlayAddress)) {
      throw new NetworkInputError(`localUnderlayAddress "${String(config.localUnderlayAddress)}" is not an IPv4 address`);
    }
    if (config.underlayInterface !== undefined) validateInterfaceName(config.underlayInterface, 'underlayInterface');
    if (config.netns !== undefined && !/^[A-Za-z0-9_.-]{1,200}$/.test(config.netns)) {
      throw new NetworkInputError(`netns "${config.netns}" is not a valid namespace name`);
    }
    this.table = config.nftTable ?? DEFAULT_TABLE;
    validateNftName(this.table, 'nftables table');
    this.underlayMtu = config.underlayMtu ?? 1500;
    if (!Number.isInteger(this.underlayMtu) || this.underlayMtu < 626 || this.underlayMtu > 65_535) {
      throw new NetworkInputError(`underlayMtu must be an integer from 626 to 65535, got ${String(this.underlayMtu)}`);
    }
    this.commands = new NamespaceCommands(config.netns);
    this.ip = new BatchSession('ip', config.netns);
    this.bridgeTool = new BatchSession('bridge', config.netns);
  }

  /** Link names of a network on this node, for the VIP balancer, DNS and tests. */
  static linkNames(networkId: string): { bridge: string; vxlan: string } {
    return { bridge: overlayBridgeName(networkId), vxlan: overlayVxlanName(networkId) };
  }

  /** Creates or corrects the bridge and VXLAN device of a network. Idempotent. */
  ensureNetwork(spec: OverlayNetworkSpec): Promise<void> {
    return this.exclusive(async () => {
      const network = validateNetworkSpec(spec, this.underlayMtu);
      const known = this.networks.get(network.spec.id);
      if (known && sameNetwork(known.network, network)) return;
      const { bridge, vxlan } = OverlayDriver.linkNames(network.spec.id);
      if (!this.forwardingEnabled) {
        await this.commands.writeSysctls([['/proc/sys/net/ipv4/ip_forward', '1']]);
        this.forwardingEnabled = true;
      }
      const existingVxlan = await this.readVxlan(vxlan);
      const reusable = existingVxlan !== undefined && existingVxlan.vni === network.spec.vni && existingVxlan.local === this.config.localUnderlayAddress;
      const bridgeAddresses = await this.readAddresses(bridge);
      const wanted = [nodeAddressCidr(network), gatewayCidr(network)];
      const lines: BatchLine[] = [];
      if (existingVxlan !== undefined && !reusable) lines.push({ command: `link del ${vxlan}`, tolerate: MISSING });
      const bridgeMac = macForAddress(network.spec.nodeAddress);
      // The MAC is given at creation, not only set afterwards: systemd-udevd's MACAddressPolicy=
      // persistent (Debian's default) gives a new link whose address the kernel chose at random one
      // of its own, racing with a later `link set address`; a bridge that lost that race answered
      // with a MAC no peer's neighbour entry names, so replies to the node's address vanished.
      lines.push({ command: `link add ${bridge} address ${bridgeMac} type bridge`, tolerate: EXISTS });
      lines.push({ command: `link set ${bridge} address ${bridgeMac} mtu ${network.mtu}` });
      // A changed subnet or node address: drop the old addresses so only the wanted ones remain.
      for (const address of bridgeAddresses ?? []) {
        if (!wanted.includes(address)) lines.push({ command: `addr del ${address} dev ${bridge}`, tolerate: /Cannot assign/i });
      }
      // The node address first: as primary address it is the source of the node's own traffic.
      for (const address of wanted) {
        if (!bridgeAddresses?.includes(address)) lines.push({ command: `addr add ${address} dev ${bridge}`, tolerate: EXISTS });
      }
      if (!reusable) {
        const dev = this.config.underlayInterface ? ` dev ${this.config.underlayInterface}` : '';
        lines.push({
          command:
            `link add ${vxlan} mtu ${network.mtu} type vxlan id ${network.spec.vni} dstport ${VXLAN_PORT} ` +
            `local ${this.config.localUnderlayAddress}${dev} nolearning proxy`,
        });
      }
      lines.push({ command: `link set ${vxlan} mtu ${network.mtu} master ${bridge} up` });
      lines.push({ command: `link set ${bridge} up` });
      // New devices may reuse the names of ones these batch processes addressed before (the
      // network left the node and came back): ip and bridge cache name→ifindex for their whole
      // life, so start fresh ones or lines would go to the deleted devices ("unknown ifindex").
      if (!reusable || bridgeAddresses === undefined) this.close();
      await this.ip.run(lines);
      // 127.0.0.1 sources (routing mesh via the node's loopback) may be routed onto the bridge.
      await this.commands.writeSysctls([[`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1']]);

      let peers: PeerState | undefined = known?.peers;
      if (!reusable) peers = emptyPeerState();
      this.networks.set(network.spec.id, {
        network,
        bridge,
        vxlan,
        peers,
        attachments: known?.attachments ?? new Map(),
      });
      await this.applyTable();
    });
  }

  /**
   * Other nodes and their task endpoints programmed here, from the mirror of the last setPeers
   * (a network whose mirror is unknown after a failed batch counts nothing until it is set again).
   */
  peerCounts(): { nodes: number; endpoints: number } {
    const nodes = new Set<string>();
    let endpoints = 0;
    for (const state of this.networks.values()) {
      if (!state.peers) continue;
      for (const node of state.peers.flood) nodes.add(node);
      endpoints += state.peers.macs.size;
    }
    return { nodes: nodes.size, endpoints };
  }

  /** Programs exactly these peers' FDB and neighbour entries for the network. Idempotent. */
  setPeers(networkId: string, peers: OverlayPeer[]): Promise<void> {
    return this.exclusive(async () => {
      const state = this.requireNetwork(networkId);
      const desired = desiredPeerState(state.network, this.config.localUnderlayAddress, peers);
      const current = state.peers ?? (await this.readPeerState(state.vxlan));
      const { fdb, neighbours } = diffPeerState(current, desired, state.vxlan);
      try {
        await this.bridgeTool.run(fdb);
        await this.ip.run(neighbours);
      } catch (error) {
        // Part of the batch may have applied: forget the mirror, the next call reads the kernel.
        state.peers = undefined;
        throw error;
      }
      state.peers = desired;
    });
  }

  /** Gives a container (by its init pid) an interface on the network. Idempotent per container. */
  attach(networkId: string, containerId: string, pid: number, options: OverlayAttachOptions): Promise<OverlayAttachment> {
    return this.exclusive(async () => {
      const state = this.requireNetwork(networkId);
      const attachment = this.validateAttach(state, containerId, pid, options);
      const previous = state.attachments.get(containerId);
      if (previous && previous.address === attachment.address && previous.mac === attachment.mac) return previous;
      const { hostVeth, interfaceName, mac } = attachment;
      const mtu = state.network.mtu;
      const create: BatchLine[] = [
        { command: `link add ${hostVeth} mtu ${mtu} type veth peer name ${interfaceName} address ${mac} mtu ${mtu} netns ${pid}` },
        { command: `link set ${hostVeth} master ${state.bridge} up` },
      ];
      try {
        await this.ip.run(create);
      } catch (error) {
        if (!(error instanceof Error && EXISTS.test(error.message))) throw error;
        // Left over from an attach interrupted by a crash: start again from a clean slate.
        await this.ip.run([{ command: `link del ${hostVeth}`, tolerate: MISSING }, ...create]);
      }
      try {
        await configureContainerInterface({
          netnsPath: `/proc/${pid}/ns/net`,
          interfaceName,
          address: attachment.address,
          prefixLength: state.network.cidr.prefixLength,
          ...(options.defaultRoute ? { defaultRoute: { gateway: state.network.spec.gateway, mode: 'replace' as const } } : {}),
        });
      } catch (error) {
        await this.ip.run([{ command: `link del ${hostVeth}`, tolerate: MISSING }]);
        throw error;
      }
      state.attachments.set(containerId, attachment);
      return attachment;
    });
  }

  /** Removes the container's interface on the network. Idempotent. */
  detach(networkId: string, containerId: string): Promise<void> {
    return this.exclusive(async () => {
      await this.ip.run([{ command: `link del ${overlayVethName(networkId, containerId)}`, tolerate: MISSING }]);
      this.networks.get(networkId)?.attachments.delete(containerId);
    });
  }

  /** Removes the network's bridge, VXLAN device and container veths on this node. Idempotent. */
  removeNetwork(networkId: string): Promise<void> {
    return this.exclusive(async () => {
      await this.deleteNetworkLinks(networkId);
      this.networks.delete(networkId);
      await this.applyTable();
    });
  }

  /**
   * Removes every overlay network on this node that is not in `networkIds`, including ones a
   * previous tsd process created: after a restart only the networks re-announced survive.
   */
  retainNetworks(networkIds: string[]): Promise<void> {
    return this.exclusive(async () => {
      const keepBridges = new Set(networkIds.map((id) => overlayBridgeName(id)));
      const keepVxlans = new Set(networkIds.map((id) => overlayVxlanName(id)));
      const links = await this.listLinks();
      const stale = links.filter(
        (l) => (l.name.startsWith(OVERLAY_BRIDGE_PREFIX) && !keepBridges.has(l.name)) || (l.name.startsWith(OVERLAY_VXLAN_PREFIX) && !keepVxlans.has(l.name)),
      );
      const staleBridges = new Set(stale.map((l) => l.name));
      const ports = links.filter((l) => l.master !== undefined && staleBridges.has(l.master) && !l.name.startsWith(OVERLAY_VXLAN_PREFIX));
      await this.ip.run([...ports, ...stale].map((l) => ({ command: `link del ${l.name}`, tolerate: MISSING })));
      for (const id of this.networks.keys()) if (!networkIds.includes(id)) this.networks.delete(id);
      await this.applyTable();
    });
  }

  /** Removes every overlay network and the nftables table, and ends the batch processes. */
  teardown(): Promise<void> {
    return this.exclusive(async () => {
      const links = await this.listLinks();
      const ours = links.filter((l) => l.name.startsWith(OVERLAY_BRIDGE_PREFIX) || l.name.startsWith(OVERLAY_VXLAN_PREFIX));
      const bridges = new Set(ours.map((l) => l.name));
      const ports = links.filter((l) => l.master !== undefined && bridges.has(l.master) && !l.name.startsWith(OVERLAY_VXLAN_PREFIX));
      await this.ip.run([...ports, ...ours].map((l) => ({ command: `link del ${l.name}`, tolerate: MISSING })));
      await this.commands.nftApply(deleteTableScript(this.table));
      this.networks.clear();
      this.close();
    });
  }

  /** Ends the batch processes (they restart on next use). */
  close(): void {
    this.ip.close();
    this.bridgeTool.close();
  }

  private validateAttach(state: NetworkState, containerId: string, pid: number, options: OverlayAttachOptions): OverlayAttachment {
    const where = `attach of ${JSON.stringify(containerId)} to overlay network "${state.network.spec.name}"`;
    if (typeof containerId !== 'string' || containerId.length === 0 || containerId.length > 256) {
      throw new NetworkInputError(`${where}: container id must be 1-256 characters`);
    }
    if (!Number.isInteger(pid) || pid < 1) throw new NetworkInputError(`${where}: pid must be a positive integer, got ${String(pid)}`);
    const { address } = options;
    if (typeof address !== 'string' || !isIpv4(address)) throw new NetworkInputError(`${where}: address "${String(address)}" is not an IPv4 address`);
    if (!cidrContains(state.network.cidr, parseIpv4(address))) {
      throw new NetworkInputError(`${where}: address ${address} is outside ${state.network.cidr.text}`);
    }
    if (address === state.network.spec.gateway || address === state.network.spec.nodeAddress) {
      throw new NetworkInputError(`${where}: address ${address} belongs to the node (gateway or node address)`);
    }
    const interfaceName = options.interfaceName ?? 'eth0';
    validateInterfaceName(interfaceName, `${where}: interfaceName`);
    const mac = validateMac(options.mac ?? macForAddress(address), `${where}: mac`);
    return { networkId: state.network.spec.id, containerId, address, mac, interfaceName, hostVeth: overlayVethName(state.network.spec.id, containerId) };
  }

  private async applyTable(): Promise<void> {
    const entries = [...this.networks.values()].map((n) => ({ bridge: n.bridge, nodeAddress: n.network.spec.nodeAddress }));
    await this.commands.nftApply(overlayTableScript(this.table, entries));
  }

  private async deleteNetworkLinks(networkId: string): Promise<void> {
    const { bridge, vxlan } = OverlayDriver.linkNames(networkId);
    const links = await this.listLinks();
    const ports = links.filter((l) => l.master === bridge && l.name !== vxlan);
    await this.ip.run([...ports.map((l) => l.name), vxlan, bridge].map((name) => ({ command: `link del ${name}`, tolerate: MISSING })));
  }

  private requireNetwork(networkId: string): NetworkState {
    const state = this.networks.get(networkId);
    if (!state) throw new NetworkInputError(`overlay network ${JSON.stringify(networkId)} is not set up on this node: call ensureNetwork first`);
    return state;
  }

  private async readVxlan(name: string): Promise<{ vni: number; local: string | undefined } | undefined> {
    const link = await this.readLinkJson(['-d', 'link', 'show', 'dev', name]);
    if (!link) return undefined;
    const data = (link as { linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string } } }).linkinfo;
    if (data?.info_kind !== 'vxlan') return { vni: -1, local: undefined };
    return { vni: data.info_data?.id ?? -1, local: data.info_data?.local };
  }

  private async readAddresses(name: string): Promise<string[] | undefined> {
    const link = await this.readLinkJson(['addr', 'show', 'dev', name]);
    if (!link) return undefined;
    const info = (link as { addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }).addr_info ?? [];
    return info.filter((a) => a.family === 'inet').map((a) => `${a.local ?? ''}/${String(a.prefixlen ?? '')}`);
  }

  private async readLinkJson(args: string[]): Promise<unknown> {
    try {
      const { stdout } = await this.commands.ip(['-j', ...args]);
      const [link] = JSON.parse(stdout || '[]') as unknown[];
      return link;
    } catch (error) {
      if (isNoSuchDevice(error)) return undefined;
      throw error;
    }
  }

  private async readPeerState(vxlan: string): Promise<PeerState> {
    const netnsArgs = this.config.netns ? ['-n', this.config.netns] : [];
    const [fdb, neigh] = await Promise.all([
      runCommand(['bridge', ...netnsArgs, '-j', 'fdb', 'show', 'dev', vxlan]),
      this.commands.ip(['-j', 'neigh', 'show', 'dev', vxlan]),
    ]);
    return peerStateFromKernel(JSON.parse(fdb.stdout || '[]'), JSON.parse(neigh.stdout || '[]'));
  }

  private async listLinks(): Promise<Array<{ name: string; master: string | undefined }>> {
    const { stdout } = await this.commands.ip(['-j', 'link', 'show']);
    const links = JSON.parse(stdout || '[]') as Array<{ ifname?: string; master?: string }>;
    return links.flatMap((l) => (l.ifname ? [{ name: l.ifname, master: l.master }] : []));
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    // The caller gets the error through `result`; the queue only orders the next work after it.
    this.queue = result.catch(() => undefined);
    return result;
  }
}

function sameNetwork(a: ValidNetwork, b: ValidNetwork): boolean {
  return (
    a.spec.vni === b.spec.vni &&
    a.cidr.text === b.cidr.text &&
    a.spec.gateway === b.spec.gateway &&
    a.spec.nodeAddress === b.spec.nodeAddress &&
    a.mtu === b.mtu
  );
}
