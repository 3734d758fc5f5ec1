// The overlay DNS resolver: name table rules (pure), and the real UDP/TCP server on loopback with
// a fake upstream resolver on loopback — nothing leaves the machine.

import test, { type ExecutionContext } from 'ava';
import { createSocket } from 'node:dgram';
import { createServer, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dnsPacket from 'dns-packet';
import { NameTable, shuffled } from '../../agent/network/dns/name-table.js';
import { parseResolvConf } from '../../agent/network/dns/resolv-conf.js';
import { ServiceResolver } from '../../agent/network/dns/service-resolver.js';
import type { DnsRecords } from '../../common/network/dns-records.js';
import { freePort } from '../helpers/free-port.js';

const RECORDS: DnsRecords = {
  services: [
    { names: ['web', 'shop_web'], endpointMode: 'vip', vip: '10.0.0.100', tasks: ['10.0.0.11', '10.0.0.12'] },
    { names: ['db'], endpointMode: 'dnsrr', tasks: ['10.0.0.21', '10.0.0.22', '10.0.0.23'] },
  ],
  aliases: [{ name: 'cache', addresses: ['10.0.0.31'] }],
};

/** Deterministic "random": cycles through fixed values. */
function sequence(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] as number;
}

test('name table: VIP, tasks.NAME, dnsrr, aliases, case and trailing dot, forward for the rest', (t) => {
  const table = new NameTable(RECORDS);
  const random = sequence([0]);
  t.deepEqual(table.lookup('web', random), { kind: 'answer', addresses: ['10.0.0.100'] });
  t.deepEqual(table.lookup('Shop_Web.', random), { kind: 'answer', addresses: ['10.0.0.100'] });
  const tasks = table.lookup('tasks.web', random);
  t.is(tasks.kind, 'answer');
  t.deepEqual(tasks.kind === 'answer' ? [...tasks.addresses].sort() : [], ['10.0.0.11', '10.0.0.12']);
  const rr = table.lookup('db', random);
  t.deepEqual(rr.kind === 'answer' ? [...rr.addresses].sort() : [], ['10.0.0.21', '10.0.0.22', '10.0.0.23']);
  t.deepEqual(table.lookup('cache', random), { kind: 'answer', addresses: ['10.0.0.31'] });
  t.deepEqual(table.lookup('example.com', random), { kind: 'forward' });
  t.deepEqual(shuffled([1, 2, 3], sequence([0, 0])), [2, 3, 1]);
});

test('name table rejects invalid records with the path of the problem', (t) => {
  t.throws(() => new NameTable({ services: [{ names: ['web'], endpointMode: 'vip', tasks: [] }], aliases: [] }), { message: /services\[0\]\.vip/ });
  t.throws(() => new NameTable({ services: [{ names: ['bad name'], endpointMode: 'dnsrr', tasks: [] }], aliases: [] }), { message: /not a valid DNS name/ });
  t.throws(() => new NameTable({ services: [{ names: ['tasks.x'], endpointMode: 'dnsrr', tasks: [] }], aliases: [] }), { message: /reserved/ });
  t.throws(
    () =>
      new NameTable({
        services: [
          { names: ['a'], endpointMode: 'dnsrr', tasks: [] },
          { names: ['a'], endpointMode: 'dnsrr', tasks: [] },
        ],
        aliases: [],
      }),
    { message: /used by two services/ },
  );
  t.throws(() => new NameTable({ services: [], aliases: [{ name: 'x', addresses: ['1.2.3'] }] }), { message: /aliases\[0\]\.addresses\[0\]/ });
});

test('resolv.conf: nameserver lines in order, others ignored', (t) => {
  t.deepEqual(parseResolvConf('# c\nsearch x\nnameserver 10.1.1.1\nnameserver  ::1\nnameserver bogus\noptions ndots:2\n'), [
    { address: '10.1.1.1', port: 53 },
    { address: '::1', port: 53 },
  ]);
});

/** A fake upstream on loopback: answers any A question with 203.0.113.7, over UDP and TCP. */
async function fakeUpstream(t: ExecutionContext): Promise<number> {
  const answer = (query: Buffer): Buffer => {
    const packet = dnsPacket.decode(query);
    const question = packet.questions?.[0];
    return dnsPacket.encode({
      type: 'response',
      id: packet.id ?? 0,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: packet.questions ?? [],
      answers: question ? [{ type: 'A', name: question.name, ttl: 60, data: '203.0.113.7' }] : [],
    });
  };
  const tcp = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      const reply = answer(chunk.subarray(2, 2 + chunk.readUInt16BE(0)));
      const length = Buffer.alloc(2);
      length.writeUInt16BE(reply.length);
      socket.end(Buffer.concat([length, reply]));
    });
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve()));
  const port = (tcp.address() as AddressInfo).port;
  const udp = createSocket('udp4');
  udp.on('message', (message, remote) => udp.send(answer(message), remote.port, remote.address));
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => udp.close(() => tcp.close(() => resolve()))));
  return port;
}

async function queryUdp(port: number, name: string, type: 'A' | 'AAAA' = 'A'): Promise<dnsPacket.DecodedPacket> {
  const socket = createSocket('udp4');
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout')), 3000);
      socket.on('message', (message) => {
        clearTimeout(timer);
        resolve(dnsPacket.decode(message));
      });
      socket.send(dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }), port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

async function queryTcp(port: number, name: string): Promise<dnsPacket.DecodedPacket> {
  const socket = new Socket();
  try {
    return await new Promise((resolve, reject) => {
      let received = Buffer.alloc(0);
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) resolve(dnsPacket.decode(received.subarray(2)));
      });
      socket.connect(port, '127.0.0.1', () => {
        const query = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name }] });
        const length = Buffer.alloc(2);
        length.writeUInt16BE(query.length);
        socket.write(Buffer.concat([length, query]));
      });
    });
  } finally {
    socket.destroy();
  }
}

/** The response code from the header flags (dns-packet's typings omit its decoded `rcode`). */
function rcodeOf(packet: dnsPacket.DecodedPacket): number {
  return (packet.flags ?? 0) & 0xf;
}

function addresses(packet: dnsPacket.DecodedPacket): string[] {
  return (packet.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : [])).sort();
}

test('resolver over UDP and TCP on loopback: own names, NODATA for AAAA, forwarding, updates, SERVFAIL', async (t) => {
  const upstreamPort = await fakeUpstream(t);
  const resolver = new ServiceResolver({ upstreams: [{ address: '127.0.0.1', port: upstreamPort }], forwardTimeoutMs: 500 });
  t.teardown(() => resolver.close());
  const port = await freePort();

  await resolver.setNetwork('net1', { address: '127.0.0.1', port }, RECORDS);
  const web = await queryUdp(port, 'web');
  t.is(web.id, 4242);
  t.is(rcodeOf(web), 0);
  t.true(web.flag_aa);
  t.deepEqual(addresses(web), ['10.0.0.100']);
  t.deepEqual(addresses(await queryUdp(port, 'tasks.web')), ['10.0.0.11', '10.0.0.12']);
  t.deepEqual(addresses(await queryUdp(port, 'db')), ['10.0.0.21', '10.0.0.22', '10.0.0.23']);
  const aaaa = await queryUdp(port, 'web', 'AAAA');
  t.is(rcodeOf(aaaa), 0);
  t.deepEqual(aaaa.answers, []);
  t.deepEqual(addresses(await queryTcp(port, 'tasks.db')), ['10.0.0.21', '10.0.0.22', '10.0.0.23']);

  const forwarded = await queryUdp(port, 'example.test');
  t.is(forwarded.id, 4242);
  t.deepEqual(addresses(forwarded), ['203.0.113.7']);
  t.deepEqual(addresses(await queryTcp(port, 'example.test')), ['203.0.113.7']);

  // New records take effect at once; invalid ones are rejected and the old ones stay.
  await resolver.setNetwork(
    'net1',
    { address: '127.0.0.1', port },
    { services: [{ names: ['web'], endpointMode: 'dnsrr', tasks: ['10.0.0.13'] }], aliases: [] },
  );
  t.deepEqual(addresses(await queryUdp(port, 'web')), ['10.0.0.13']);
  await t.throwsAsync(
    resolver.setNetwork('net1', { address: '127.0.0.1', port }, { services: [{ names: ['web'], endpointMode: 'vip', tasks: [] }], aliases: [] }),
  );
  t.deepEqual(addresses(await queryUdp(port, 'web')), ['10.0.0.13']);

  // Many tasks over UDP: truncated to 512 bytes with TC set; TCP gets all of them.
  const many = Array.from({ length: 60 }, (_, i) => `10.0.1.${i + 1}`);
  await resolver.setNetwork('net1', { address: '127.0.0.1', port }, { services: [{ names: ['big'], endpointMode: 'dnsrr', tasks: many }], aliases: [] });
  const truncated = await queryUdp(port, 'big');
  t.true(truncated.flag_tc);
  t.true(addresses(truncated).length < 60);
  t.is(addresses(await queryTcp(port, 'big')).length, 60);

  // No upstream answers: SERVFAIL, not silence.
  const lonely = new ServiceResolver({ upstreams: [{ address: '127.0.0.1', port: 9 }], forwardTimeoutMs: 200 });
  t.teardown(() => lonely.close());
  await lonely.setNetwork('n', { address: '127.0.0.1', port: port + 1 }, { services: [], aliases: [] });
  t.is(rcodeOf(await queryUdp(port + 1, 'example.test')), 2); // SERVFAIL

  await resolver.removeNetwork('net1');
  await t.throwsAsync(queryUdp(port, 'web'));
});

test('a container on several networks finds names on all of them, the asked network first', async (t) => {
  const upstreamPort = await fakeUpstream(t);
  const resolver = new ServiceResolver({ upstreams: [{ address: '127.0.0.1', port: upstreamPort }], forwardTimeoutMs: 500 });
  t.teardown(() => resolver.close());
  const port = await freePort();

  await resolver.setNetwork(
    'front',
    { address: '127.0.0.1', port },
    { services: [{ names: ['api'], endpointMode: 'vip', vip: '10.0.2.2', tasks: ['10.0.2.9'] }], aliases: [] },
  );
  await resolver.setNetwork(
    'back',
    { address: '127.0.0.2', port },
    {
      services: [
        { names: ['db'], endpointMode: 'vip', vip: '10.0.1.2', tasks: ['10.0.1.7'] },
        { names: ['api'], endpointMode: 'vip', vip: '10.0.1.3', tasks: ['10.0.1.9'] },
      ],
      aliases: [],
    },
  );
  // Unknown client (the query comes from 127.0.0.1): only the asked network, the rest is forwarded.
  t.deepEqual(addresses(await queryUdp(port, 'db')), ['203.0.113.7']);
  // The same client known to be on front then back.
  resolver.setClients(new Map([['127.0.0.1', ['front', 'back']]]));
  t.deepEqual(addresses(await queryUdp(port, 'db')), ['10.0.1.2']);
  t.deepEqual(addresses(await queryTcp(port, 'tasks.db')), ['10.0.1.7']);
  t.deepEqual(addresses(await queryUdp(port, 'api')), ['10.0.2.2'], 'the asked network answers first');
  t.deepEqual(addresses(await queryUdp(port, 'example.test')), ['203.0.113.7']);
});

test('a resolv.conf that cannot be read is logged and answered with SERVFAIL, not taken for "no upstreams"', async (t) => {
  // A directory where resolv.conf should be: reading it fails with EISDIR (a real error, not absence).
  const dir = await mkdtemp(join(tmpdir(), 'tessera-resolv-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const resolvConfPath = join(dir, 'resolv.conf');
  await mkdir(resolvConfPath);
  const logs: string[] = [];
  const resolver = new ServiceResolver({ resolvConfPath, forwardTimeoutMs: 200, log: (message) => logs.push(message) });
  t.teardown(() => resolver.close());
  const port = await freePort();
  await resolver.setNetwork('n', { address: '127.0.0.1', port }, { services: [], aliases: [] });

  t.is(rcodeOf(await queryUdp(port, 'example.test')), 2); // SERVFAIL
  t.true(
    logs.some((l) => l.includes(resolvConfPath) && l.includes('EISDIR')),
    `logged: ${JSON.stringify(logs)}`,
  );
  // No resolv.conf at all is not an error: no upstreams, SERVFAIL, nothing logged.
  const quiet: string[] = [];
  const absent = new ServiceResolver({ resolvConfPath: join(dir, 'none.conf'), forwardTimeoutMs: 200, log: (message) => quiet.push(message) });
  t.teardown(() => absent.close());
  const absentPort = await freePort();
  await absent.setNetwork('n', { address: '127.0.0.1', port: absentPort }, { services: [], aliases: [] });
  t.is(rcodeOf(await queryUdp(absentPort, 'example.test')), 2);
  t.deepEqual(quiet, []);
});
