// Builds nftables script text for the bridge network. Pure, so the exact rules are unit-tested
// without a kernel; node-network.ts sends each script as one `nft -f -` transaction.

import { createHash } from 'node:crypto';
import type { PublishedPort } from './types.js';

/** Regular chain that the nat hooks jump to for traffic addressed to this node. */
export const DISPATCH_CHAIN = 'services';
export const SERVICE_CHAIN_PREFIX = 'svc_';

export interface BaseTableSpec {
  table: string;
  bridge: string;
  /** Canonical subnet text. */
  subnet: string;
}

/** Per-service chain name: a hash, because service keys may hold characters nft rejects. */
export function serviceChainName(serviceKey: string): string {
  return SERVICE_CHAIN_PREFIX + createHash('sha256').update(serviceKey).digest('hex').slice(0, 16);
}

/**
 * Creates or refreshes the table. Base chains are flushed and refilled in the same transaction
 * (so a changed subnet takes effect and nothing is duplicated); service chains are left alone.
 */
export function baseTableScript(spec: BaseTableSpec, serviceChains: string[]): string {
  const t = `ip ${spec.table}`;
  const br = `"${spec.bridge}"`;
  return lines([
    `add table ${t}`,
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    // Locally generated traffic (127.0.0.1:PUBLISHED, the node's own addresses) passes output, not prerouting.
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ${t} ${DISPATCH_CHAIN}`,
    `flush chain ${t} prerouting`,
    `flush chain ${t} output`,
    `flush chain ${t} postrouting`,
    `add rule ${t} prerouting fib daddr type local jump ${DISPATCH_CHAIN}`,
    `add rule ${t} output fib daddr type local jump ${DISPATCH_CHAIN}`,
    // Containers reaching beyond the node leave with the node's address.
    `add rule ${t} postrouting ip saddr ${spec.subnet} oifname != ${br} masquerade`,
    // 127.0.0.1 is not routable on the bridge (route_localnet only lets it out): the container
    // must see a source it can answer.
    `add rule ${t} postrouting oifname ${br} ip saddr 127.0.0.0/8 masquerade`,
    // Hairpin: a container calling a published port that lands on a container of the same
    // bridge would get the answer directly from that peer and drop it; answer via the gateway.
    `add rule ${t} postrouting oifname ${br} ip saddr ${spec.subnet} ct status dnat masquerade`,
    ...dispatchLines(spec.table, serviceChains),
  ]);
}

/** Rewrites the dispatch chain to jump to exactly these service chains. */
export function dispatchLines(table: string, serviceChains: string[]): string[] {
  return [`flush chain ip ${table} ${DISPATCH_CHAIN}`, ...[...serviceChains].sort().map((chain) => `add rule ip ${table} ${DISPATCH_CHAIN} jump ${chain}`)];
}

/** Replaces one service chain's rules; the dispatch chain is rebuilt alongside by the caller. */
export function serviceChainLines(table: string, chain: string, ports: PublishedPort[], backends: string[]): string[] {
  const t = `ip ${table}`;
  const targets = backends.map((address, index) => `${index} : ${address}`).join(', ');
  return [
    `add chain ${t} ${chain}`,
    `flush chain ${t} ${chain}`,
    // numgen picks a backend per new connection; conntrack keeps the rest of the flow on it.
    ...ports.map(
      (p) =>
        `add rule ${t} ${chain} meta l4proto ${p.protocol} th dport ${p.published} ` +
        `dnat to numgen random mod ${backends.length} map { ${targets} } : ${p.target}`,
    ),
  ];
}

export function deleteServiceChainLines(table: string, chain: string): string[] {
  // Flushing first drops any jump left behind; the caller rebuilds the dispatch chain before this.
  return [`flush chain ip ${table} ${chain}`, `delete chain ip ${table} ${chain}`];
}

/** Comment that marks the accept rules we add to other tables' forward chains, for removal. */
export function forwardTag(table: string, bridge: string): string {
  return `tessera:${table}:${bridge}`;
}

export interface ForeignChain {
  family: string;
  table: string;
  name: string;
}

/**
 * Accept rules for a foreign forward chain that drops by default: container egress, replies
 * to it, and DNATed (published) traffic. Containers stay closed to other inbound traffic.
 */
export function forwardAcceptLines(chain: ForeignChain, bridge: string, tag: string): string[] {
  const target = `${chain.family} ${chain.table} ${chain.name}`;
  const br = `"${bridge}"`;
  return [
    `insert rule ${target} oifname ${br} ct status dnat accept comment "${tag}"`,
    `insert rule ${target} oifname ${br} ct state established,related accept comment "${tag}"`,
    `insert rule ${target} iifname ${br} accept comment "${tag}"`,
  ];
}

export function lines(parts: string[]): string {
  return parts.join('\n') + '\n';
}
