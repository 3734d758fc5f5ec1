// rtnetlink requests for what Tessera does to links, addresses and routes. Pure: each function
// validates its input and returns the request bytes, so the encoding is tested byte for byte
// against what iproute2 sends for the equivalent `ip` command (test/unit/netlink-messages.test.ts).
// Links are named by ifindex, as iproute2 does after resolving a name (getLinkByName).
// Attribute order follows iproute2's (command-line order, the name last) so the bytes compare.

import { NetworkInputError, parseIpv4, validateInterfaceName } from '../../../common/network/ipv4.js';
import * as K from './constants.js';
import { cString, ipv4Bytes, message, u32, type Attribute } from './wire.js';

/** A network namespace to move a link into: a process's (like `netns PID`) or an open nsfs fd. */
export type NetnsTarget = { pid: number } | { fd: number };

export interface LinkChange {
  /** ifindex of the link. */
  index: number;
  /** Brings the link up (true) or down (false); unchanged when absent. */
  up?: boolean;
  mtu?: number;
  /** MAC address, xx:xx:xx:xx:xx:xx. */
  address?: string;
  /** ifindex of the bridge to enslave the link to. */
  master?: number;
  netns?: NetnsTarget;
  /** New name. */
  name?: string;
}

export interface VethPeer {
  name: string;
  address?: string;
  mtu?: number;
  netns?: NetnsTarget;
}

export interface VethSpec {
  name: string;
  mtu?: number;
  master?: number;
  up?: boolean;
  peer: VethPeer;
}

export interface AddressSpec {
  index: number;
  /** IPv4 address of the interface. */
  address: string;
  prefixLength: number;
}

export type RouteScope = 'universe' | 'link' | 'host';

export interface RouteSpec {
  /** Destination network "a.b.c.d/len"; the default route when absent. */
  destination?: string;
  gateway?: string;
  /** ifindex of the output device. */
  index?: number;
  /** The gateway is reachable on the device even outside its subnets (`onlink`). */
  onlink?: boolean;
  /** Defaults like `ip route`: link without a gateway, universe with one. */
  scope?: RouteScope;
  /** Routing table id; main (254) when absent. */
  table?: number;
}

/** `ip link set dev <index> ...` */
export function setLink(change: LinkChange): Buffer {
  const where = `link change of ifindex ${String(change.index)}`;
  const index = checkIndex(change.index, `${where}: index`);
  const attributes = linkAttributes(change, where);
  if (change.master !== undefined) attributes.push({ type: K.IFLA_MASTER, value: u32(checkIndex(change.master, `${where}: master`)) });
  if (change.netns !== undefined) attributes.push(netnsAttribute(change.netns, where));
  if (change.name !== undefined) attributes.push(nameAttribute(change.name, `${where}: name`));
  return message(K.RTM_NEWLINK, K.NLM_F_REQUEST | K.NLM_F_ACK, ifinfomsg(index, change.up), attributes);
}

/** `ip link add NAME [mtu M] [master B] [up] type veth peer name P [address A] [mtu M] [netns N]` */
export function addVeth(spec: VethSpec): Buffer {
  const where = `veth ${JSON.stringify(spec.name)}`;
  const peerWhere = `${where}: peer`;
  const peerAttributes = linkAttributes(spec.peer, peerWhere);
  if (spec.peer.netns !== undefined) peerAttributes.push(netnsAttribute(spec.peer.netns, peerWhere));
  peerAttributes.push(nameAttribute(spec.peer.name, `${peerWhere} name`));
  // VETH_INFO_PEER carries a whole ifinfomsg before the peer's own attributes.
  const peer = Buffer.concat([ifinfomsg(0, undefined), attributeBytes(peerAttributes)]);

  const attributes = linkAttributes({ mtu: spec.mtu }, where);
  if (spec.master !== undefined) attributes.push({ type: K.IFLA_MASTER, value: u32(checkIndex(spec.master, `${where}: master`)) });
  attributes.push(nameAttribute(spec.name, `${where}: name`));
  attributes.push({
    type: K.IFLA_LINKINFO,
    value: [
      { type: K.IFLA_INFO_KIND, value: Buffer.from('veth') },
      { type: K.IFLA_INFO_DATA, value: [{ type: K.VETH_INFO_PEER, value: peer }] },
    ],
  });
  const flags = K.NLM_F_REQUEST | K.NLM_F_ACK | K.NLM_F_CREATE | K.NLM_F_EXCL;
  return message(K.RTM_NEWLINK, flags, ifinfomsg(0, spec.up ? true : undefined), attributes);
}

/** `ip link del dev <index>` */
export function deleteLink(index: number): Buffer {
  return message(K.RTM_DELLINK, K.NLM_F_REQUEST | K.NLM_F_ACK, ifinfomsg(checkIndex(index, 'link to delete: index'), undefined), []);
}

/** RTM_DELLINK naming the link (the kernel looks names up itself; iproute2 resolves to an index first). */
export function deleteLinkByName(name: string): Buffer {
  return message(K.RTM_DELLINK, K.NLM_F_REQUEST | K.NLM_F_ACK, ifinfomsg(0, undefined), [nameAttribute(name, 'link to delete')]);
}

/** RTM_GETLINK by name: the reply is the link's RTM_NEWLINK (see parseLink). */
export function getLinkByName(name: string): Buffer {
  return message(K.RTM_GETLINK, K.NLM_F_REQUEST | K.NLM_F_ACK, ifinfomsg(0, undefined), [nameAttribute(name, 'link to look up')]);
}

/** `ip addr add|replace A/P dev <index>` */
export function addAddress(spec: AddressSpec, mode: 'add' | 'replace' = 'add'): Buffer {
  const flags = K.NLM_F_REQUEST | K.NLM_F_ACK | K.NLM_F_CREATE | (mode === 'replace' ? K.NLM_F_REPLACE : K.NLM_F_EXCL);
  return message(K.RTM_NEWADDR, flags, ...addressBody(spec));
}

/** `ip addr del A/P dev <index>` */
export function deleteAddress(spec: AddressSpec): Buffer {
  return message(K.RTM_DELADDR, K.NLM_F_REQUEST | K.NLM_F_ACK, ...addressBody(spec));
}

/** `ip route add|replace [DEST|default] [via GW] [dev <index>] [onlink] [scope S] [table T]` */
export function addRoute(spec: RouteSpec, mode: 'add' | 'replace' = 'add'): Buffer {
  const flags = K.NLM_F_REQUEST | K.NLM_F_ACK | K.NLM_F_CREATE | (mode === 'replace' ? K.NLM_F_REPLACE : K.NLM_F_EXCL);
  return message(K.RTM_NEWROUTE, flags, ...routeBody(spec));
}

/** `ip route del ...` of a route added with the same spec. */
export function deleteRoute(spec: RouteSpec): Buffer {
  return message(K.RTM_DELROUTE, K.NLM_F_REQUEST | K.NLM_F_ACK, ...routeBody(spec));
}

function addressBody(spec: AddressSpec): [Buffer, Attribute[]] {
  const where = `address ${String(spec.address)}/${String(spec.prefixLength)}`;
  const index = checkIndex(spec.index, `${where}: index`);
  const address = parseAddress(spec.address, `${where}: address`);
  const prefixLength = checkPrefixLength(spec.prefixLength, where);
  const header = Buffer.alloc(K.IFADDRMSG_LEN);
  header.writeUInt8(K.AF_INET, 0);
  header.writeUInt8(prefixLength, 1);
  header.writeUInt32LE(index, 4);
  // Local and peer address are the same on a broadcast link; iproute2 sends both.
  return [
    header,
    [
      { type: K.IFA_LOCAL, value: ipv4Bytes(address) },
      { type: K.IFA_ADDRESS, value: ipv4Bytes(address) },
    ],
  ];
}

function routeBody(spec: RouteSpec): [Buffer, Attribute[]] {
  const where = `route ${spec.destination ?? 'default'}`;
  let destination: { address: number; prefixLength: number } | undefined;
  if (spec.destination !== undefined) {
    const [text, length, extra] = String(spec.destination).split('/');
    if (length === undefined || extra !== undefined) throw new NetworkInputError(`${where}: destination must be a.b.c.d/len`);
    const prefixLength = checkPrefixLength(Number(length), where);
    const address = parseAddress(text ?? '', `${where}: destination`);
    if (prefixLength < 32 && (address & (0xffffffff >>> prefixLength)) !== 0) {
      throw new NetworkInputError(`${where}: destination has host bits set`);
    }
    destination = { address, prefixLength };
  }
  const gateway = spec.gateway === undefined ? undefined : parseAddress(spec.gateway, `${where}: gateway`);
  if (gateway === undefined && spec.index === undefined) throw new NetworkInputError(`${where}: needs a gateway or an output device`);
  if (spec.onlink && spec.index === undefined) throw new NetworkInputError(`${where}: onlink needs an output device`);
  const table = spec.table ?? K.RT_TABLE_MAIN;
  if (!Number.isInteger(table) || table < 1 || table > 0xffffffff) throw new NetworkInputError(`${where}: table must be a positive integer`);
  const scope = spec.scope ?? (gateway === undefined ? 'link' : 'universe');
  const header = Buffer.alloc(K.RTMSG_LEN);
  header.writeUInt8(K.AF_INET, 0);
  header.writeUInt8(destination?.prefixLength ?? 0, 1);
  // Tables above 255 do not fit rtm_table and travel as RTA_TABLE, as iproute2 sends them.
  header.writeUInt8(table < 256 ? table : 0, 4);
  header.writeUInt8(K.RTPROT_BOOT, 5);
  header.writeUInt8(SCOPE_NUMBERS[scope], 6);
  header.writeUInt8(K.RTN_UNICAST, 7);
  header.writeUInt32LE(spec.onlink ? K.RTNH_F_ONLINK : 0, 8);
  const attributes: Attribute[] = [];
  if (destination !== undefined) attributes.push({ type: K.RTA_DST, value: ipv4Bytes(destination.address) });
  if (gateway !== undefined) attributes.push({ type: K.RTA_GATEWAY, value: ipv4Bytes(gateway) });
  if (spec.index !== undefined) attributes.push({ type: K.RTA_OIF, value: u32(checkIndex(spec.index, `${where}: index`)) });
  if (table >= 256) attributes.push({ type: K.RTA_TABLE, value: u32(table) });
  return [header, attributes];
}

function ifinfomsg(index: number, up: boolean | undefined): Buffer {
  const header = Buffer.alloc(K.IFINFOMSG_LEN);
  header.writeUInt8(K.AF_UNSPEC, 0);
  header.writeInt32LE(index, 4);
  header.writeUInt32LE(up ? K.IFF_UP : 0, 8);
  header.writeUInt32LE(up === undefined ? 0 : K.IFF_UP, 12);
  return header;
}

function linkAttributes(link: { mtu?: number; address?: string }, where: string): Attribute[] {
  const attributes: Attribute[] = [];
  if (link.mtu !== undefined) {
    if (!Number.isInteger(link.mtu) || link.mtu < 68 || link.mtu > 65535) {
      throw new NetworkInputError(`${where}: mtu must be an integer from 68 to 65535, got ${String(link.mtu)}`);
    }
    attributes.push({ type: K.IFLA_MTU, value: u32(link.mtu) });
  }
  if (link.address !== undefined) attributes.push({ type: K.IFLA_ADDRESS, value: parseMac(link.address, `${where}: address`) });
  return attributes;
}

function netnsAttribute(target: NetnsTarget, where: string): Attribute {
  if ('pid' in target) return { type: K.IFLA_NET_NS_PID, value: u32(checkPositive(target.pid, `${where}: netns pid`)) };
  if ('fd' in target && Number.isInteger(target.fd) && target.fd >= 0 && target.fd <= 0x7fffffff) {
    return { type: K.IFLA_NET_NS_FD, value: u32(target.fd) };
  }
  throw new NetworkInputError(`${where}: netns must be { pid } or { fd } with a non-negative integer`);
}

function nameAttribute(name: string, where: string): Attribute {
  validateInterfaceName(name, where);
  return { type: K.IFLA_IFNAME, value: cString(name) };
}

function attributeBytes(attributes: Attribute[]): Buffer {
  // A message of no type with these attributes, less its 16-byte netlink header.
  return message(0, 0, Buffer.alloc(0), attributes).subarray(K.NLMSG_HDRLEN);
}

/** RouteScope names to the kernel's RT_SCOPE_* numbers; a Record, so a new scope cannot be left out. */
const SCOPE_NUMBERS: Record<RouteScope, number> = {
  universe: K.RT_SCOPE_UNIVERSE,
  link: K.RT_SCOPE_LINK,
  host: K.RT_SCOPE_HOST,
};

function checkIndex(index: number, what: string): number {
  if (!Number.isInteger(index) || index < 1 || index > 0x7fffffff) {
    throw new NetworkInputError(`${what} must be a positive ifindex, got ${String(index)}`);
  }
  return index;
}

function checkPositive(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff) throw new NetworkInputError(`${what} must be a positive integer, got ${String(value)}`);
  return value;
}

function checkPrefixLength(prefixLength: number, where: string): number {
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) {
    throw new NetworkInputError(`${where}: prefix length must be an integer from 0 to 32, got ${String(prefixLength)}`);
  }
  return prefixLength;
}

function parseAddress(text: string, what: string): number {
  if (typeof text !== 'string') throw new NetworkInputError(`${what} must be an IPv4 address string`);
  try {
    return parseIpv4(text);
  } catch (error) {
    throw new NetworkInputError(`${what}: ${(error as Error).message}`);
  }
}

function parseMac(text: string, what: string): Buffer {
  if (typeof text !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw new NetworkInputError(`${what}: "${String(text)}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  }
  return Buffer.from(text.split(':').map((octet) => parseInt(octet, 16)));
}
