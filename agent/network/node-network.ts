// The node's container network: one Linux bridge, a veth per container, nftables DNAT for
// published ports. Per-container link work (the veth, the container's address and route) goes
// over netlink through the native addon (./netlink/), no process; set-up and reads use `ip`.

import { NamespaceCommands, isNoSuchDevice } from './exec.js';
import type { Ipam } from './ipam.js';
import {
  NetworkInputError,
  formatIpv4,
  gatewayOf,
  isIpv4,
  parseCidr,
  validateInterfaceName,
  validateNftName,
  type Ipv4Cidr,
} from '../../common/network/ipv4.js';
import { LeaseFile } from './lease-file.js';
import { fieldsOf, validPort, validProtocol } from './input.js';
import { configureContainerInterface, createContainerVeth, deleteLinkNamed } from './netlink/index.js';
import { CONTAINER_IFNAME, hostVethName } from './link-names.js';
import {
  SERVICE_CHAIN_PREFIX,
  baseTableScript,
  deleteServiceChainLines,
  dispatchLines,
  forwardAcceptLines,
  forwardTag,
  lines,
  serviceChainLines,
  serviceChainName,
} from './nft-rules.js';
import { droppingForwardChains, hasTable, parseRuleset, rulesTagged } from './nft-ruleset.js';
import type { Attachment, NodeNetwork, NodeNetworkConfig, PublishedPort } from './types.js';

interface PublishedService {
  serviceKey: string;
  ports: PublishedPort[];
}

export class BridgeNetwork implements NodeNetwork {
  private readonly cidr: Ipv4Cidr;
  private readonly commands: NamespaceCommands;
  private readonly leaseFile: LeaseFile;
  private ipam: Ipam | undefined;
  /** Service chains present in our table, including ones a previous tsd process created. */
  private readonly serviceChains = new Set<string>();
  /** What this process published, by chain; used to reject a port two services both claim. */
  private readonly published = new Map<string, PublishedService>();
  /** Every mutation runs alone: nft scripts are built from the in-memory view of the table. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly config: NodeNetworkConfig) {
    validateInterfaceName(config.bridge, 'bridge');
    validateNftName(config.nftTable, 'nftables table');
    this.cidr = parseCidr(config.subnet);
    if (!config.stateDir) throw new NetworkInputError('stateDir must be set');
    if (config.netns !== undefined && !/^[A-Za-z0-9_.-]{1,200}$/.test(config.netns)) {
      throw new NetworkInputError(`netns "${config.netns}" is not a valid namespace name`);
    }
    this.commands = new NamespaceCommands(config.netns);
    this.leaseFile = new LeaseFile(config.stateDir);
  }

  get gateway(): string {
    return formatIpv4(gatewayOf(this.cidr));
  }

  setup(): Promise<void> {
    return this.exclusive(async () => {
      await this.ensureBridge();
      await this.commands.writeSysctls([
        ['/proc/sys/net/ipv4/ip_forward', '1'],
        // Lets 127.0.0.1-sourced packets be routed out of the bridge after DNAT.
        [`/proc/sys/net/ipv4/conf/${this.config.bridge}/route_localnet`, '1'],
      ]);
      this.ipam ??= await this.leaseFile.load(this.config.subnet);
      await this.ensureTable();
    });
  }

  attach(containerId: string, pid: number): Promise<Attachment> {
    return this.exclusive(async () => {
      if (!Number.isInteger(pid) || pid < 1) throw new NetworkInputError(`pid must be a positive integer, got ${String(pid)}`);
      const ipam = this.requireSetup();
      const address = ipam.allocate(containerId);
      await this.leaseFile.save(ipam);
      const hostVeth = hostVethName(containerId);
      try {
        await this.createVeth(hostVeth, pid);
        await configureContainerInterface({
          netnsPath: `/proc/${pid}/ns/net`,
          interfaceName: CONTAINER_IFNAME,
          address,
          prefixLength: this.cidr.prefixLength,
          defaultRoute: { gateway: this.gateway, mode: 'add' },
        });
      } catch (error) {
        await this.deleteLink(hostVeth);
        ipam.release(containerId);
        await this.leaseFile.save(ipam);
        throw error;
      }
      return { containerId, address, hostVeth };
    });
  }

  detach(containerId: string): Promise<void> {
    return this.exclusive(async () => {
      const ipam = this.requireSetup();
      // The peer lives in the container's namespace and dies with its host end.
      await this.deleteLink(hostVethName(containerId));
      if (ipam.release(containerId)) await this.leaseFile.save(ipam);
    });
  }

  publish(serviceKey: string, ports: PublishedPort[], backends: string[]): Promise<void> {
    return this.exclusive(async () => {
      validateServiceKey(serviceKey);
      const chain = serviceChainName(serviceKey);
      const wanted = normalisePorts(ports);
      const targets = normaliseBackends(backends);
      this.requireSetup();
      const table = this.config.nftTable;

      if (wanted.length === 0 || targets.length === 0) {
        this.published.delete(chain);
        if (!this.serviceChains.has(chain)) return;
        const remaining = [...this.serviceChains].filter((c) => c !== chain);
        await this.commands.nftApply(lines([...dispatchLines(table, remaining), ...deleteServiceChainLines(table, chain)]));
        this.serviceChains.delete(chain);
        return;
      }

      this.rejectPortConflicts(serviceKey, chain, wanted);
      const isNew = !this.serviceChains.has(chain);
      const script = [...serviceChainLines(table, chain, wanted, targets), ...(isNew ? dispatchLines(table, [...this.serviceChains, chain]) : [])];
      await this.commands.nftApply(lines(script));
      this.serviceChains.add(chain);
      this.published.set(chain, { serviceKey, ports: wanted });
    });
  }

  /**
   * Removes the rules of every service not in `serviceKeys`. After a restart tsd only knows the
   * services it is told about again; this drops the ones that went away meanwhile.
   */
  retainServices(serviceKeys: string[]): Promise<void> {
    return this.exclusive(async () => {
      this.requireSetup();
      const keep = new Set(serviceKeys.map(serviceChainName));
      const stale = [...this.serviceChains].filter((c) => !keep.has(c));
      if (stale.length === 0) return;
      const table = this.config.nftTable;
      const remaining = [...this.serviceChains].filter((c) => keep.has(c));
      await this.commands.nftApply(lines([...dispatchLines(table, remaining), ...stale.flatMap((c) => deleteServiceChainLines(table, c))]));
      for (const chain of stale) {
        this.serviceChains.delete(chain);
        this.published.delete(chain);
      }
    });
  }

  teardown(): Promise<void> {
    return this.exclusive(async () => {
      const { bridge, nftTable } = this.config;
      const ports = await this.bridgePorts();
      if (ports !== undefined) {
        // Deleting the bridge only unenslaves its ports, so the veths go explicitly.
        await this.commands.ipBatch([...ports.map((port) => `link del ${port}`), `link del ${bridge}`]);
      }
      const ruleset = parseRuleset(await this.commands.nftRuleset());
      const script = [
        ...rulesTagged(ruleset, forwardTag(nftTable, bridge)).map((r) => `delete rule ${r.family} ${r.table} ${r.chain} handle ${r.handle}`),
        ...(hasTable(ruleset, 'ip', nftTable) ? [`delete table ip ${nftTable}`] : []),
      ];
      if (script.length > 0) await this.commands.nftApply(lines(script));
      await this.leaseFile.remove();
      this.ipam = undefined;
      this.serviceChains.clear();
      this.published.clear();
    });
  }

  private async ensureBridge(): Promise<void> {
    const { bridge } = this.config;
    const gatewayCidr = `${this.gateway}/${this.cidr.prefixLength}`;
    const existing = await this.readLink(bridge);
    const batch: string[] = [];
    if (!existing) {
      batch.push(`link add ${bridge} type bridge`);
    } else if (existing.kind !== 'bridge') {
      throw new NetworkInputError(`interface ${bridge} exists but is a ${existing.kind ?? 'plain'} link, not a bridge`);
    }
    if (!existing?.addresses.includes(gatewayCidr)) batch.push(`addr add ${gatewayCidr} dev ${bridge}`);
    batch.push(`link set ${bridge} up`);
    await this.commands.ipBatch(batch);
  }

  private async ensureTable(): Promise<void> {
    const { bridge, nftTable } = this.config;
    const ruleset = parseRuleset(await this.commands.nftRuleset());
    for (const chain of ruleset.chains) {
      if (chain.family === 'ip' && chain.table === nftTable && chain.name.startsWith(SERVICE_CHAIN_PREFIX)) {
        this.serviceChains.add(chain.name);
      }
    }
    const tag = forwardTag(nftTable, bridge);
    const tagged = rulesTagged(ruleset, tag);
    const forwardLines = droppingForwardChains(ruleset, nftTable)
      .filter((c) => isPlainNftName(c.table) && isPlainNftName(c.name))
      .filter((c) => !tagged.some((r) => r.family === c.family && r.table === c.table && r.chain === c.name))
      .flatMap((c) => forwardAcceptLines(c, bridge, tag));
    const base = baseTableScript({ table: nftTable, bridge, subnet: this.cidr.text }, [...this.serviceChains]);
    await this.commands.nftApply(base + lines(forwardLines));
  }

  /**
   * Creates the veth with its peer born inside the container's namespace as eth0, over netlink
   * (no process per container); a host end left by an interrupted attach is replaced.
   */
  private async createVeth(hostVeth: string, pid: number): Promise<void> {
    await createContainerVeth({ netnsPath: this.netnsPath(), hostName: hostVeth, bridge: this.config.bridge, peerName: CONTAINER_IFNAME, pid });
  }

  private async deleteLink(name: string): Promise<void> {
    await deleteLinkNamed(this.netnsPath(), name);
  }

  private netnsPath(): string | null {
    return this.config.netns === undefined ? null : `/run/netns/${this.config.netns}`;
  }

  private async readLink(name: string): Promise<{ kind: string | undefined; addresses: string[] } | undefined> {
    let stdout: string;
    try {
      ({ stdout } = await this.commands.ip(['-j', '-d', 'addr', 'show', 'dev', name]));
    } catch (error) {
      if (isNoSuchDevice(error)) return undefined;
      throw error;
    }
    const [link] = JSON.parse(stdout) as Array<{
      linkinfo?: { info_kind?: string };
      addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }>;
    }>;
    if (!link) return undefined;
    return {
      kind: link.linkinfo?.info_kind,
      addresses: (link.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local ?? ''}/${a.prefixlen ?? ''}`),
    };
  }

  /** Names of the links enslaved to the bridge, or undefined when the bridge does not exist. */
  private async bridgePorts(): Promise<string[] | undefined> {
    try {
      const { stdout } = await this.commands.ip(['-j', 'link', 'show', 'master', this.config.bridge]);
      const links = JSON.parse(stdout || '[]') as Array<{ ifname?: string }>;
      return links.flatMap((l) => (l.ifname ? [l.ifname] : []));
    } catch (error) {
      if (isNoSuchDevice(error)) return undefined;
      throw error;
    }
  }

  private rejectPortConflicts(serviceKey: string, chain: string, ports: PublishedPort[]): void {
    for (const [otherChain, other] of this.published) {
      if (otherChain === chain) continue;
      for (const port of ports) {
        if (other.ports.some((p) => p.protocol === port.protocol && p.published === port.published)) {
          throw new NetworkInputError(`port ${port.published}/${port.protocol} of service "${serviceKey}" is already published by "${other.serviceKey}"`);
        }
      }
    }
  }

  private requireSetup(): Ipam {
    if (!this.ipam) throw new Error(`bridge network ${this.config.bridge}: call setup() first`);
    return this.ipam;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    // The caller gets the error through `result`; the queue only orders the next work after it.
    this.queue = result.catch(() => undefined);
    return result;
  }
}

function validateServiceKey(serviceKey: string): void {
  if (typeof serviceKey !== 'string' || serviceKey.length === 0 || serviceKey.length > 256) {
    throw new NetworkInputError(`service key must be 1-256 characters, got ${JSON.stringify(serviceKey)}`);
  }
}

/** The ports come from a task spec the managers sent: each field is checked (as unknown) here. */
function normalisePorts(ports: readonly unknown[]): PublishedPort[] {
  const seen = new Set<string>();
  const result: PublishedPort[] = [];
  for (const [index, item] of ports.entries()) {
    const port = fieldsOf(item);
    const published = validPort(port?.published, `ports[${index}].published`);
    const target = validPort(port?.target, `ports[${index}].target`);
    const protocol = validProtocol(port?.protocol, `ports[${index}].protocol`);
    const key = `${published}/${protocol}`;
    if (seen.has(key)) throw new NetworkInputError(`port ${key} is published twice`);
    seen.add(key);
    result.push({ published, target, protocol });
  }
  return result;
}

function normaliseBackends(backends: string[]): string[] {
  for (const address of backends) {
    if (!isIpv4(address)) throw new NetworkInputError(`backend "${address}" is not an IPv4 address`);
  }
  return [...new Set(backends)];
}

/** Foreign table and chain names go into nft script text unquoted; skip anything unusual. */
function isPlainNftName(name: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_-]*$/.test(name);
}
