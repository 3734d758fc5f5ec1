import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostVethName } from '../../agent/network/link-names.js';
import { NetworkInputError } from '../../common/network/ipv4.js';
import { baseTableScript, dispatchLines, forwardAcceptLines, serviceChainLines, serviceChainName } from '../../agent/network/nft-rules.js';
import { droppingForwardChains, parseRuleset, rulesTagged } from '../../agent/network/nft-ruleset.js';
import { BridgeNetwork } from '../../agent/network/node-network.js';
import type { NodeNetworkConfig } from '../../agent/network/types.js';

test('host veth names fit IFNAMSIZ and are stable per container', (t) => {
  const name = hostVethName('3f1c0a7e-9d2b-4c51-8a1e-2b7c9d0e1f23');
  t.regex(name, /^tsv[0-9a-f]{12}$/);
  t.true(name.length <= 15);
  t.is(hostVethName('3f1c0a7e-9d2b-4c51-8a1e-2b7c9d0e1f23'), name);
  t.not(hostVethName('another'), name);
});

test('service chain names are nft-safe whatever the key', (t) => {
  t.regex(serviceChainName('stack/web "quoted" ünïcode'), /^svc_[0-9a-f]{16}$/);
  t.not(serviceChainName('a/web'), serviceChainName('b/web'));
});

test('base table: nat hooks jump to the dispatch chain only for local addresses, masquerade rules', (t) => {
  const script = baseTableScript({ table: 'tessera', bridge: 'tessera0', subnet: '10.213.0.0/24' }, ['svc_b', 'svc_a']);
  t.true(script.includes('add chain ip tessera prerouting { type nat hook prerouting priority dstnat; policy accept; }'));
  t.true(script.includes('add chain ip tessera output { type nat hook output priority -100; policy accept; }'));
  t.true(script.includes('add rule ip tessera prerouting fib daddr type local jump services'));
  t.true(script.includes('add rule ip tessera output fib daddr type local jump services'));
  t.true(script.includes('add rule ip tessera postrouting ip saddr 10.213.0.0/24 oifname != "tessera0" masquerade'));
  t.true(script.includes('add rule ip tessera postrouting oifname "tessera0" ip saddr 127.0.0.0/8 masquerade'));
  // Base chains are flushed before being refilled so setup can run again without duplicates.
  t.true(script.indexOf('flush chain ip tessera postrouting') < script.indexOf('add rule ip tessera postrouting'));
  t.true(script.endsWith('add rule ip tessera services jump svc_a\nadd rule ip tessera services jump svc_b\n'));
});

test('service chain: one DNAT rule per port, load-balanced over all backends', (t) => {
  const lines = serviceChainLines(
    'tessera',
    'svc_1',
    [
      { published: 8080, target: 80, protocol: 'tcp' },
      { published: 5353, target: 53, protocol: 'udp' },
    ],
    ['10.0.0.2', '10.0.0.3', '10.0.0.4'],
  );
  t.deepEqual(lines, [
    'add chain ip tessera svc_1',
    'flush chain ip tessera svc_1',
    'add rule ip tessera svc_1 meta l4proto tcp th dport 8080 dnat to numgen random mod 3 map { 0 : 10.0.0.2, 1 : 10.0.0.3, 2 : 10.0.0.4 } : 80',
    'add rule ip tessera svc_1 meta l4proto udp th dport 5353 dnat to numgen random mod 3 map { 0 : 10.0.0.2, 1 : 10.0.0.3, 2 : 10.0.0.4 } : 53',
  ]);
  t.deepEqual(dispatchLines('tessera', []), ['flush chain ip tessera services']);
});

test('forward accept rules are tagged and narrow', (t) => {
  const lines = forwardAcceptLines({ family: 'ip', table: 'filter', name: 'FORWARD' }, 'tessera0', 'tessera:t:tessera0');
  t.is(lines.length, 3);
  for (const line of lines) {
    t.true(line.startsWith('insert rule ip filter FORWARD '));
    t.true(line.endsWith('comment "tessera:t:tessera0"'));
  }
  t.false(
    lines.some((l) => /oifname "tessera0" accept/.test(l)),
    'inbound to containers only for DNAT and replies',
  );
});

test('ruleset parsing finds dropping forward chains of other tables and tagged rules', (t) => {
  const ruleset = parseRuleset({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'ip', name: 'filter', handle: 1 } },
      { chain: { family: 'ip', table: 'filter', name: 'FORWARD', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
      { chain: { family: 'inet', table: 'fw', name: 'fwd', handle: 2, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
      { chain: { family: 'ip', table: 'tessera', name: 'fwd', handle: 3, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
      { rule: { family: 'ip', table: 'filter', chain: 'FORWARD', handle: 7, comment: 'tessera:tessera:tessera0', expr: [] } },
      { rule: { family: 'ip', table: 'filter', chain: 'FORWARD', handle: 8, expr: [] } },
    ],
  });
  t.deepEqual(
    droppingForwardChains(ruleset, 'tessera').map((c) => `${c.family} ${c.table} ${c.name}`),
    ['ip filter FORWARD'],
  );
  t.deepEqual(
    rulesTagged(ruleset, 'tessera:tessera:tessera0').map((r) => r.handle),
    [7],
  );
  t.deepEqual(parseRuleset(undefined), { tables: [], chains: [], rules: [] });
});

const goodConfig: NodeNetworkConfig = { bridge: 'tessera0', subnet: '10.213.0.0/24', nftTable: 'tessera', stateDir: '/nonexistent' };

test('BridgeNetwork rejects bad configuration with clear errors', (t) => {
  t.throws(() => new BridgeNetwork({ ...goodConfig, bridge: 'this-name-is-too-long' }), {
    instanceOf: NetworkInputError,
    message: /bridge "this-name-is-too-long" is not a valid interface name/,
  });
  t.throws(() => new BridgeNetwork({ ...goodConfig, bridge: 'br/0' }), { instanceOf: NetworkInputError });
  t.throws(() => new BridgeNetwork({ ...goodConfig, nftTable: 'bad table' }), { message: /not a valid nftables name/ });
  t.throws(() => new BridgeNetwork({ ...goodConfig, subnet: '10.213.0.0/33' }), { message: /between 8 and 30/ });
  t.throws(() => new BridgeNetwork({ ...goodConfig, stateDir: '' }), { message: /stateDir/ });
  t.throws(() => new BridgeNetwork({ ...goodConfig, netns: 'a b' }), { message: /netns/ });
  t.is(new BridgeNetwork(goodConfig).gateway, '10.213.0.1');
});

test('publish and attach validate their input before touching the system', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnet-unit-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const network = new BridgeNetwork({ ...goodConfig, stateDir });
  const backends = ['10.213.0.2'];
  await t.throwsAsync(network.publish('web', [{ published: 0, target: 80, protocol: 'tcp' }], backends), {
    message: 'ports[0].published must be an integer between 1 and 65535, got 0',
  });
  await t.throwsAsync(network.publish('web', [{ published: 80, target: 65536, protocol: 'tcp' }], backends), {
    message: /ports\[0\]\.target must be an integer between 1 and 65535, got 65536/,
  });
  await t.throwsAsync(network.publish('web', [{ published: 80.5, target: 80, protocol: 'tcp' }], backends), {
    instanceOf: NetworkInputError,
  });
  const sctp = { published: 80, target: 80, protocol: 'sctp' } as unknown as { published: number; target: number; protocol: 'tcp' };
  await t.throwsAsync(network.publish('web', [sctp], backends), { message: /protocol must be "tcp" or "udp"/ });
  await t.throwsAsync(
    network.publish(
      'web',
      [
        { published: 80, target: 80, protocol: 'tcp' },
        { published: 80, target: 81, protocol: 'tcp' },
      ],
      backends,
    ),
    { message: /port 80\/tcp is published twice/ },
  );
  await t.throwsAsync(network.publish('web', [{ published: 80, target: 80, protocol: 'tcp' }], ['10.0.0']), {
    message: /backend "10\.0\.0" is not an IPv4 address/,
  });
  await t.throwsAsync(network.publish('', [], []), { message: /service key/ });
  await t.throwsAsync(network.attach('c', 0), { message: /pid must be a positive integer/ });
  // Valid input without setup() is a usage error, not a kernel error.
  await t.throwsAsync(network.publish('web', [], []), { message: /call setup\(\) first/ });
});
