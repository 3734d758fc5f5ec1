// IPv4 address arithmetic and input validation, shared by the agent (IPAM, nftables rules) and the
// managers (overlay address allocation).
// Addresses are handled as unsigned 32-bit integers so ranges are plain number comparisons.

export class NetworkInputError extends Error {
  override name = 'NetworkInputError';
}

export interface Ipv4Cidr {
  /** Network address as an unsigned 32-bit integer. */
  network: number;
  prefixLength: number;
  /** Canonical text, e.g. "10.213.0.0/24". */
  text: string;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(text: string): number {
  const match = DOTTED_QUAD.exec(text);
  if (!match) throw new NetworkInputError(`invalid IPv4 address "${text}": expected a.b.c.d`);
  let value = 0;
  for (const part of match.slice(1)) {
    // Leading zeros are rejected because some tools read them as octal.
    if (part.length > 1 && part.startsWith('0')) {
      throw new NetworkInputError(`invalid IPv4 address "${text}": octet "${part}" has a leading zero`);
    }
    const octet = Number(part);
    if (octet > 255) throw new NetworkInputError(`invalid IPv4 address "${text}": octet ${octet} is above 255`);
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    // parseIpv4 only throws for text that is not an address: that is the answer, not a failure.
    return false;
  }
}

/**
 * Parses a container subnet. Host bits must be zero (a typo like 10.0.0.5/24 is more likely a
 * mistake than an intent), and the subnet must leave room for gateway plus one container.
 */
export function parseCidr(text: string): Ipv4Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new NetworkInputError(`invalid CIDR "${text}": expected a.b.c.d/prefix`);
  const address = parseIpv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(prefixText)) {
    throw new NetworkInputError(`invalid CIDR "${text}": prefix length "${prefixText}" is not a number`);
  }
  const prefixLength = Number(prefixText);
  if (prefixLength < 8 || prefixLength > 30) {
    throw new NetworkInputError(`invalid CIDR "${text}": prefix length must be between 8 and 30, got ${prefixLength}`);
  }
  const network = (address & prefixMask(prefixLength)) >>> 0;
  if (network !== address) {
    throw new NetworkInputError(`invalid CIDR "${text}": host bits are set (did you mean ${formatIpv4(network)}/${prefixLength}?)`);
  }
  return { network, prefixLength, text: `${formatIpv4(network)}/${prefixLength}` };
}

export function prefixMask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export function broadcastOf(cidr: Ipv4Cidr): number {
  return (cidr.network | (~prefixMask(cidr.prefixLength) >>> 0)) >>> 0;
}

/** The gateway is by convention the first host address; the bridge carries it. */
export function gatewayOf(cidr: Ipv4Cidr): number {
  return cidr.network + 1;
}

export function cidrContains(cidr: Ipv4Cidr, address: number): boolean {
  return (address & prefixMask(cidr.prefixLength)) >>> 0 === cidr.network;
}

export function validatePort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new NetworkInputError(`${what} must be an integer between 1 and 65535, got ${String(port)}`);
  }
}

/** Linux IFNAMSIZ is 16 including the terminating NUL; "/" and whitespace are never valid. */
export function validateInterfaceName(name: string, what: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    throw new NetworkInputError(`${what} "${name}" is not a valid interface name: 1-15 characters from A-Z a-z 0-9 _ . -`);
  }
}

/** nftables identifiers; kept to a conservative set so they never need quoting in scripts. */
export function validateNftName(name: string, what: string): void {
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(name)) {
    throw new NetworkInputError(`${what} "${name}" is not a valid nftables name: a letter, then up to 63 of A-Z a-z 0-9 _ -`);
  }
}
