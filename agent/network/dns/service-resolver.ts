// The DNS resolver the agent serves on each overlay network's gateway address (UDP and TCP):
// service names, tasks.NAME, dnsrr services and aliases from the network's records; everything
// else is forwarded to the node's resolvers (from /etc/resolv.conf unless configured).
// A container on several networks asks one of them (its resolv.conf names the first network's
// gateway) but, as with Docker, must find services on every network it is attached to: a query
// from a known container address is answered from the asked network's names first, then from the
// container's other networks in its own order.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { NetworkInputError, isIpv4 } from '../../../common/network/ipv4.js';
import { forwardTcp, forwardUdp } from './forwarder.js';
import { NameTable } from './name-table.js';
import { parseResolvConf } from './resolv-conf.js';
import type { DnsRecords } from '../../../common/network/dns-records.js';
import type { DnsUpstream } from './types.js';
import { unlessAbsent } from '../../fs-errors.js';
import { fieldsOf, validPort } from '../input.js';
import type { DnsQueryObserver, DnsQueryResult } from '../../metrics/agent-metrics.js';

const UDP_LIMIT = 512;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;

export interface ServiceResolverConfig {
  /** Where unknown names go; default the nameservers of resolvConfPath, port 53. */
  upstreams?: DnsUpstream[];
  resolvConfPath?: string;
  /** Random source for answer order and forwarded query ids (injected for tests). */
  random?: () => number;
  forwardTimeoutMs?: number;
  /** TTL of our own answers, default 5 s: tasks come and go, clients should ask again soon. */
  ttl?: number;
  /** Where failures that no client sees go (a query that could not be answered, a socket error). */
  log?: (message: string) => void;
  /** Counts queries by how they were answered (agent/metrics); absent: not counted. */
  metrics?: DnsQueryObserver;
}

interface NetworkListener {
  key: string;
  table: NameTable;
  udp: UdpSocket;
  tcp: Server;
  connections: Set<Socket>;
}

export class ServiceResolver {
  private readonly networks = new Map<string, NetworkListener>();
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private readonly ttl: number;
  private upstreams: DnsUpstream[] | undefined;
  /** Container address → the ids of every network that container is attached to, in its order. */
  private clientNetworks = new Map<string, readonly string[]>();

  constructor(private readonly config: ServiceResolverConfig = {}) {
    this.random = config.random ?? Math.random;
    this.timeoutMs = config.forwardTimeoutMs ?? 2000;
    this.ttl = config.ttl ?? 5;
    this.upstreams = config.upstreams;
  }

  private get resolvConfPath(): string {
    return this.config.resolvConfPath ?? '/etc/resolv.conf';
  }

  private log(message: string): void {
    this.config.log?.(message);
  }

  /**
   * Serves `records` for a network on `listen`. The first call binds the sockets; later calls
   * swap the records atomically (a query sees the old table or the new one), or rebind when the
   * address changed. Invalid records are rejected before anything changes.
   */
  async setNetwork(networkId: string, listen: unknown, records: DnsRecords): Promise<void> {
    // `listen` (a ResolverListen) and `records` come from the managers' view, whose fields are checked here.
    const listenFields = fieldsOf(listen);
    const address = listenFields?.address;
    if (typeof address !== 'string' || !isIpv4(address)) {
      throw new NetworkInputError(`DNS listen address of network ${JSON.stringify(networkId)} "${String(address)}" is not an IPv4 address`);
    }
    const port = validPort(listenFields?.port ?? 53, `DNS listen port of network ${JSON.stringify(networkId)}`);
    const table = new NameTable(records);
    const key = `${address}:${port}`;
    const existing = this.networks.get(networkId);
    if (existing && existing.key === key) {
      existing.table = table;
      return;
    }
    const listener = await this.listen(networkId, key, address, port, table);
    if (existing) await closeListener(existing);
    this.networks.set(networkId, listener);
  }

  /**
   * Which networks each local container is on, keyed by each of its addresses; replaces the
   * previous map. A query from an address not in it is answered from the asked network alone.
   */
  setClients(clients: ReadonlyMap<string, readonly string[]>): void {
    this.clientNetworks = new Map(clients);
  }

  /** The name tables a query arriving on `networkId` from `source` is answered from, in order. */
  tablesFor(networkId: string, source: string): NameTable[] {
    const asked = this.networks.get(networkId);
    const tables = asked ? [asked.table] : [];
    for (const other of this.clientNetworks.get(source) ?? []) {
      if (other === networkId) continue;
      const listener = this.networks.get(other);
      if (listener) tables.push(listener.table);
    }
    return tables;
  }

  async removeNetwork(networkId: string): Promise<void> {
    const existing = this.networks.get(networkId);
    if (!existing) return;
    this.networks.delete(networkId);
    await closeListener(existing);
  }

  async close(): Promise<void> {
    const all = [...this.networks.values()];
    this.networks.clear();
    await Promise.all(all.map(closeListener));
  }

  /**
   * Answers one query message from the first of `tables` that knows the name; undefined means
   * drop it (not a query we can even reply to).
   */
  async handle(tables: readonly NameTable[], query: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const { reply, result } = await this.answer(tables, query, transport);
    if (result) this.config.metrics?.query(transport, result);
    return reply;
  }

  private async answer(tables: readonly NameTable[], query: Buffer, transport: 'udp' | 'tcp'): Promise<{ reply: Buffer | undefined; result?: DnsQueryResult }> {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      // Not a DNS message we can read: the client gets FORMERR (when there is an id to answer to).
      return { reply: query.length >= 2 ? errorReply(query.readUInt16BE(0), RCODE_FORMERR) : undefined, result: 'malformed' };
    }
    if (packet.type !== 'query') return { reply: undefined, result: 'malformed' };
    const question = packet.questions?.[0];
    if (!question || (packet.questions?.length ?? 0) !== 1) return { reply: errorReply(packet.id ?? 0, RCODE_FORMERR), result: 'malformed' };
    const result = question.class === 'IN' || question.class === undefined ? lookupFirst(tables, question.name, this.random) : { kind: 'forward' as const };
    if (result.kind === 'forward') return this.forward(query, packet.id ?? 0, transport);
    const wantsA = question.type === 'A';
    const answers: dnsPacket.Answer[] = wantsA
      ? result.addresses.map((address) => ({ type: 'A', class: 'IN', name: question.name, ttl: this.ttl, data: address }))
      : [];
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | (packet.flag_rd ? dnsPacket.RECURSION_DESIRED : 0);
    let reply = dnsPacket.encode({ type: 'response', id: packet.id ?? 0, flags, questions: [question], answers });
    // Over UDP without EDNS an answer must fit 512 bytes: send what fits and flag truncation,
    // so the client asks again over TCP for all of them.
    while (transport === 'udp' && reply.length > UDP_LIMIT && answers.length > 0) {
      answers.pop();
      reply = dnsPacket.encode({ type: 'response', id: packet.id ?? 0, flags: flags | dnsPacket.TRUNCATED_RESPONSE, questions: [question], answers });
    }
    return { reply, result: 'answered' };
  }

  private async forward(query: Buffer, id: number, transport: 'udp' | 'tcp'): Promise<{ reply: Buffer; result: DnsQueryResult }> {
    let upstreams: DnsUpstream[];
    try {
      upstreams = await this.resolveUpstreams();
    } catch (error) {
      this.log(`reading ${this.resolvConfPath}: ${(error as Error).message}; answering SERVFAIL`);
      return { reply: errorReply(id, RCODE_SERVFAIL), result: 'servfail' };
    }
    for (const upstream of upstreams) {
      try {
        const reply =
          transport === 'udp'
            ? await forwardUdp(query, upstream, this.timeoutMs, Math.floor(this.random() * 0x10000))
            : await forwardTcp(query, upstream, this.timeoutMs);
        return { reply, result: 'forwarded' };
      } catch {
        // Next upstream; SERVFAIL when none answers.
      }
    }
    return { reply: errorReply(id, RCODE_SERVFAIL), result: 'servfail' };
  }

  private async resolveUpstreams(): Promise<DnsUpstream[]> {
    if (this.upstreams) return this.upstreams;
    // No resolv.conf: no upstreams (unknown names get SERVFAIL). Other errors are not cached: the next query reads again.
    const text = await unlessAbsent(readFile(this.resolvConfPath, 'utf8'), '');
    this.upstreams = parseResolvConf(text);
    return this.upstreams;
  }

  private async listen(networkId: string, key: string, address: string, port: number, table: NameTable): Promise<NetworkListener> {
    const udp = createSocket({ type: 'udp4', reuseAddr: false });
    const connections = new Set<Socket>();
    const listener: NetworkListener = { key, table, udp, tcp: createServer(), connections };
    udp.on('message', (message, remote) => {
      void this.handle(this.tablesFor(networkId, remote.address), message, 'udp').then(
        (reply) => reply && udp.send(reply, remote.port, remote.address),
        (error: unknown) => this.log(`query from ${remote.address} on network ${networkId}: ${(error as Error).message}`),
      );
    });
    listener.tcp.on('connection', (socket) => this.serveTcp(networkId, listener, socket));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, address, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    // A failing socket later (e.g. the address vanished) must not crash the agent; it is logged.
    udp.on('error', (error) => this.log(`udp socket of network ${networkId} on ${address}:${port}: ${error.message}`));
    try {
      await new Promise<void>((resolve, reject) => {
        listener.tcp.once('error', reject);
        listener.tcp.listen(port, address, () => {
          listener.tcp.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      udp.close();
      throw error;
    }
    return listener;
  }

  private serveTcp(networkId: string, listener: NetworkListener, socket: Socket): void {
    listener.connections.add(socket);
    socket.on('close', () => listener.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(10_000, () => socket.destroy());
    let buffered = Buffer.alloc(0);
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        // Answers go back in order, one at a time.
        chain = chain
          .then(async () => {
            const reply = await this.handle(this.tablesFor(networkId, socket.remoteAddress?.replace(/^::ffff:/, '') ?? ''), message, 'tcp');
            if (!reply || socket.destroyed) return;
            const length = Buffer.alloc(2);
            length.writeUInt16BE(reply.length, 0);
            socket.write(Buffer.concat([length, reply]));
          })
          .catch((error: unknown) => {
            // The answers of this connection can no longer come in order: it ends.
            this.log(`tcp query from ${socket.remoteAddress ?? '?'} on network ${networkId}: ${(error as Error).message}`);
            socket.destroy();
          });
      }
    });
  }
}

function lookupFirst(tables: readonly NameTable[], name: string, random: () => number): ReturnType<NameTable['lookup']> {
  for (const table of tables) {
    const result = table.lookup(name, random);
    if (result.kind !== 'forward') return result;
  }
  return { kind: 'forward' };
}

function errorReply(id: number, rcode: number): Buffer {
  return dnsPacket.encode({ type: 'response', id, flags: dnsPacket.RECURSION_AVAILABLE | rcode, questions: [] });
}

async function closeListener(listener: NetworkListener): Promise<void> {
  for (const socket of listener.connections) socket.destroy();
  await Promise.all([new Promise<void>((resolve) => listener.udp.close(() => resolve())), new Promise<void>((resolve) => listener.tcp.close(() => resolve()))]);
}
