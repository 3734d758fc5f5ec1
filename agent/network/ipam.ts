// Node-local IP address management: hands out addresses of one subnet to containers.
// Pure and synchronous; the caller persists `serialise()` and rebuilds with `Ipam.restore()`.

import { NetworkInputError, broadcastOf, cidrContains, formatIpv4, gatewayOf, parseCidr, parseIpv4, type Ipv4Cidr } from '../../common/network/ipv4.js';
import { fieldsOf } from './input.js';

export interface IpamState {
  version: 1;
  subnet: string;
  /** containerId → address (no prefix length). */
  leases: Record<string, string>;
  /** Next address to try, so a just-released address is not handed out again at once. */
  cursor: string;
}

export class IpamExhaustedError extends Error {
  override name = 'IpamExhaustedError';
}

export class Ipam {
  private readonly cidr: Ipv4Cidr;
  private readonly byContainer = new Map<string, number>();
  private readonly taken = new Set<number>();
  private cursor: number;

  constructor(subnet: string) {
    this.cidr = parseCidr(subnet);
    this.cursor = this.firstHost;
  }

  /** `saved` (an IpamState) was read from a file: checked here before it is used. */
  static restore(saved: unknown): Ipam {
    const state = checkedState(saved);
    const ipam = new Ipam(state.subnet);
    for (const [containerId, address] of Object.entries(state.leases)) {
      ipam.claim(containerId, address);
    }
    const cursor = parseIpv4(state.cursor);
    if (cursor >= ipam.firstHost && cursor <= ipam.lastHost) ipam.cursor = cursor;
    return ipam;
  }

  get subnet(): string {
    return this.cidr.text;
  }

  get prefixLength(): number {
    return this.cidr.prefixLength;
  }

  get gateway(): string {
    return formatIpv4(gatewayOf(this.cidr));
  }

  /** Number of addresses containers can get: all hosts minus network, gateway and broadcast. */
  get capacity(): number {
    return this.lastHost - this.firstHost + 1;
  }

  /** Returns the container's address, allocating one if it has none (so retries are harmless). */
  allocate(containerId: string): string {
    validateContainerId(containerId);
    const existing = this.byContainer.get(containerId);
    if (existing !== undefined) return formatIpv4(existing);
    if (this.taken.size >= this.capacity) {
      throw new IpamExhaustedError(`subnet ${this.cidr.text} has no free address (${this.capacity} in use)`);
    }
    let candidate = this.cursor;
    while (this.taken.has(candidate)) {
      candidate = candidate >= this.lastHost ? this.firstHost : candidate + 1;
    }
    this.taken.add(candidate);
    this.byContainer.set(containerId, candidate);
    this.cursor = candidate >= this.lastHost ? this.firstHost : candidate + 1;
    return formatIpv4(candidate);
  }

  /** Records an address that is already in use, e.g. one read back from a running container. */
  claim(containerId: string, address: string): void {
    validateContainerId(containerId);
    const value = parseIpv4(address);
    if (!cidrContains(this.cidr, value) || value < this.firstHost || value > this.lastHost) {
      throw new NetworkInputError(`address ${address} is not assignable in subnet ${this.cidr.text}`);
    }
    const current = this.byContainer.get(containerId);
    if (current === value) return;
    if (current !== undefined) {
      throw new NetworkInputError(`container ${containerId} already holds ${formatIpv4(current)}`);
    }
    if (this.taken.has(value)) throw new NetworkInputError(`address ${address} is already leased`);
    this.taken.add(value);
    this.byContainer.set(containerId, value);
  }

  /** Frees the container's address; returns whether it had one. */
  release(containerId: string): boolean {
    const value = this.byContainer.get(containerId);
    if (value === undefined) return false;
    this.byContainer.delete(containerId);
    this.taken.delete(value);
    return true;
  }

  lookup(containerId: string): string | undefined {
    const value = this.byContainer.get(containerId);
    return value === undefined ? undefined : formatIpv4(value);
  }

  leases(): Map<string, string> {
    return new Map([...this.byContainer].map(([id, value]) => [id, formatIpv4(value)]));
  }

  serialise(): IpamState {
    const leases: Record<string, string> = {};
    for (const [id, value] of [...this.byContainer].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      leases[id] = formatIpv4(value);
    }
    return { version: 1, subnet: this.cidr.text, leases, cursor: formatIpv4(this.cursor) };
  }

  private get firstHost(): number {
    return gatewayOf(this.cidr) + 1;
  }

  private get lastHost(): number {
    return broadcastOf(this.cidr) - 1;
  }
}

function validateContainerId(containerId: string): void {
  if (containerId.length === 0 || containerId.length > 256 || /[\s\0]/.test(containerId)) {
    throw new NetworkInputError(`invalid container id ${JSON.stringify(containerId)}: 1-256 characters, no whitespace`);
  }
}

function checkedState(saved: unknown): IpamState {
  const state = fieldsOf(saved);
  if (state === undefined) throw new NetworkInputError('IPAM state must be an object');
  const { version, subnet, leases, cursor } = state;
  if (version !== 1) throw new NetworkInputError(`unsupported IPAM state version ${String(version)}`);
  if (typeof subnet !== 'string') throw new NetworkInputError(`IPAM state: subnet must be a string, got ${String(subnet)}`);
  if (typeof cursor !== 'string') throw new NetworkInputError(`IPAM state: cursor must be a string, got ${String(cursor)}`);
  const leaseFields = fieldsOf(leases);
  if (leaseFields === undefined) throw new NetworkInputError('IPAM state: leases must be an object of containerId: address');
  const checked: Record<string, string> = {};
  for (const [containerId, address] of Object.entries(leaseFields)) {
    if (typeof address !== 'string') throw new NetworkInputError(`IPAM state: lease of ${containerId} must be an address, got ${String(address)}`);
    checked[containerId] = address;
  }
  return { version, subnet, leases: checked, cursor };
}
