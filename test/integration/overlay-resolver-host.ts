// Runs a ServiceResolver inside a node's network namespace for overlay tests (a socket belongs to
// the namespace of the process that opens it, and the test process stays in the host's). Also
// runs a fake upstream resolver on the namespace's own loopback that answers every A question
// with 203.0.113.7, so forwarding is tested without any real DNS server.
// Input: one JSON line per network on stdin: { networkId, listen, records }. Output: "ready <n>"
// after the n-th line is applied, "error <message>" on failure. Ends when stdin closes.

import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import * as dnsPacket from 'dns-packet';
import { ServiceResolver } from '../../agent/network/dns/service-resolver.js';
import type { DnsRecords } from '../../common/network/dns-records.js';
import type { ResolverListen } from '../../agent/network/dns/types.js';

const UPSTREAM_PORT = 5353;

const upstream = createSocket('udp4');
upstream.on('message', (message, remote) => {
  const query = dnsPacket.decode(message);
  const question = query.questions?.[0];
  const reply = dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.RECURSION_AVAILABLE,
    questions: query.questions ?? [],
    answers: question && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data: '203.0.113.7' }] : [],
  });
  upstream.send(reply, remote.port, remote.address);
});
upstream.bind(UPSTREAM_PORT, '127.0.0.1');

const resolver = new ServiceResolver({ upstreams: [{ address: '127.0.0.1', port: UPSTREAM_PORT }], forwardTimeoutMs: 1000 });
let applied = 0;
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const { networkId, listen, records } = JSON.parse(line) as { networkId: string; listen: ResolverListen; records: DnsRecords };
  resolver.setNetwork(networkId, listen, records).then(
    () => process.stdout.write(`ready ${++applied}\n`),
    (error: Error) => process.stdout.write(`error ${error.message}\n`),
  );
});
lines.on('close', () => {
  void resolver.close().then(() => upstream.close());
});
