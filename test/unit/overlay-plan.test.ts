// Pure planning of the overlay and of the VIP/routing-mesh table: the exact commands and rules,
// without a kernel (the integration tests run them for real).

import test from 'ava';
import { macForAddress } from '../../common/network/mac-address.js';
import { overlayBridgeName, overlayVethName } from '../../agent/network/overlay/names.js';
import {
  desiredPeerState,
  diffPeerState,
  emptyPeerState,
  overlayTableScript,
  peerStateFromKernel,
  validateNetworkSpec,
} from '../../agent/network/overlay/overlay-plan.js';
import { balancerTableScript, validateBalancerState } from '../../agent/network/vip/balancer-rules.js';

const SPEC = { id: 'n1', name: 'app', vni: 4096, subnet: '10.1.0.0/24', gateway: '10.1.0.1', nodeAddress: '10.1.0.250' };
const network = validateNetworkSpec(SPEC, 1500);

test('names and MACs are deterministic and fit IFNAMSIZ', (t) => {
  t.is(macForAddress('10.1.0.12'), '02:42:0a:01:00:0c');
  t.is(overlayBridgeName('n1').length, 15);
  t.is(overlayBridgeName('n1'), overlayBridgeName('n1'));
  t.not(overlayVethName('n1', 'c1'), overlayVethName('n2', 'c1'));
});

test('network specs are validated with the field at fault; MTU defaults to underlay - 50', (t) => {
  t.is(network.mtu, 1450);
  t.is(validateNetworkSpec(SPEC, 9000).mtu, 8950);
  t.throws(() => validateNetworkSpec({ ...SPEC, vni: 1 << 24 }, 1500), { message: /"app": vni must be an integer/ });
  t.throws(() => validateNetworkSpec({ ...SPEC, gateway: '10.2.0.1' }, 1500), { message: /gateway 10\.2\.0\.1 is outside 10\.1\.0\.0\/24/ });
  t.throws(() => validateNetworkSpec({ ...SPEC, nodeAddress: '10.1.0.1' }, 1500), { message: /nodeAddress must differ/ });
  t.throws(() => validateNetworkSpec({ ...SPEC, subnet: '10.1.0.5/24' }, 1500), { message: /subnet: .*host bits/ });
});

test('peer state skips the local node and rejects duplicates', (t) => {
  const state = desiredPeerState(network, '192.168.0.1', [
    { nodeUnderlayAddress: '192.168.0.1', endpoints: [{ address: '10.1.0.10', mac: macForAddress('10.1.0.10') }] },
    { nodeUnderlayAddress: '192.168.0.2', endpoints: [{ address: '10.1.0.20', mac: '02:42:0A:01:00:14' }] },
    { nodeUnderlayAddress: '192.168.0.3', endpoints: [] },
  ]);
  t.deepEqual([...state.flood], ['192.168.0.2', '192.168.0.3']);
  t.deepEqual([...state.macs], [['02:42:0a:01:00:14', '192.168.0.2']]);
  t.deepEqual([...state.neighbours], [['10.1.0.20', '02:42:0a:01:00:14']]);
  const peer = (endpoints: Array<{ address: string; mac: string }>) => [{ nodeUnderlayAddress: '192.168.0.2', endpoints }];
  t.throws(() => desiredPeerState(network, '192.168.0.1', peer([{ address: '10.1.0.20', mac: '01:00:00:00:00:01' }])), {
    message: /endpoints\[0\]\.mac: .* multicast/,
  });
  t.throws(
    () =>
      desiredPeerState(
        network,
        '192.168.0.1',
        peer([
          { address: '10.1.0.20', mac: '02:00:00:00:00:01' },
          { address: '10.1.0.21', mac: '02:00:00:00:00:01' },
        ]),
      ),
    { message: /MAC 02:00:00:00:00:01 is also used by 10\.1\.0\.20/ },
  );
  t.throws(() => desiredPeerState(network, '192.168.0.1', peer([{ address: '10.1.0.1', mac: '02:00:00:00:00:01' }])), { message: /is the gateway/ });
});

test('diff adds before it removes, and an unchanged state gives no commands', (t) => {
  const before = desiredPeerState(network, '192.168.0.1', [
    { nodeUnderlayAddress: '192.168.0.2', endpoints: [{ address: '10.1.0.20', mac: macForAddress('10.1.0.20') }] },
  ]);
  const after = desiredPeerState(network, '192.168.0.1', [
    { nodeUnderlayAddress: '192.168.0.3', endpoints: [{ address: '10.1.0.30', mac: macForAddress('10.1.0.30') }] },
  ]);
  const { fdb, neighbours } = diffPeerState(before, after, 'vx');
  t.deepEqual(
    fdb.map((l) => l.command),
    [
      'fdb append 00:00:00:00:00:00 dev vx dst 192.168.0.3 self permanent',
      'fdb replace 02:42:0a:01:00:1e dev vx dst 192.168.0.3 self permanent',
      'fdb del 02:42:0a:01:00:14 dev vx self',
      'fdb del 00:00:00:00:00:00 dev vx dst 192.168.0.2 self',
    ],
  );
  t.deepEqual(
    neighbours.map((l) => l.command),
    ['neigh replace 10.1.0.30 lladdr 02:42:0a:01:00:1e dev vx nud permanent', 'neigh del 10.1.0.20 dev vx'],
  );
  t.deepEqual(diffPeerState(after, after, 'vx'), { fdb: [], neighbours: [] });
  t.deepEqual(diffPeerState(emptyPeerState(), emptyPeerState(), 'vx'), { fdb: [], neighbours: [] });
});

test('kernel state is read back from bridge/ip JSON, ignoring entries without a remote', (t) => {
  const state = peerStateFromKernel(
    [
      { mac: '4a:30:3c:55:0b:40', flags: [], master: 'br', state: 'permanent' },
      { mac: '02:42:0A:01:00:14', dst: '192.168.0.2', flags: ['self'] },
      { mac: '00:00:00:00:00:00', dst: '192.168.0.2', flags: ['self'] },
    ],
    [{ dst: '10.1.0.20', lladdr: '02:42:0a:01:00:14', state: ['PERMANENT'] }],
  );
  t.deepEqual([...state.flood], ['192.168.0.2']);
  t.deepEqual([...state.macs], [['02:42:0a:01:00:14', '192.168.0.2']]);
  t.deepEqual([...state.neighbours], [['10.1.0.20', '02:42:0a:01:00:14']]);
});

test('overlay table: isolation between overlay bridges and SNAT of DNATed traffic to the node address', (t) => {
  const script = overlayTableScript('tov', [
    { bridge: 'tsobB', nodeAddress: '10.2.0.250' },
    { bridge: 'tsobA', nodeAddress: '10.1.0.250' },
  ]);
  t.is(
    script,
    [
      'add table ip tov',
      'delete table ip tov',
      'add table ip tov',
      'add chain ip tov forward { type filter hook forward priority filter; policy accept; }',
      'add chain ip tov postrouting { type nat hook postrouting priority srcnat; policy accept; }',
      'add rule ip tov forward ct status dnat accept',
      'add rule ip tov forward iifname "tsobA" oifname "tsob*" oifname != "tsobA" drop',
      'add rule ip tov forward iifname "tsobB" oifname "tsob*" oifname != "tsobB" drop',
      'add rule ip tov postrouting oifname "tsobA" ct status dnat snat to 10.1.0.250',
      'add rule ip tov postrouting oifname "tsobB" ct status dnat snat to 10.2.0.250',
      '',
    ].join('\n'),
  );
});

test('balancer: VIP rules only on their bridge, mesh on local addresses, empty backends give no rule', (t) => {
  const state = validateBalancerState({
    vips: [
      { key: 'web', networkId: 'n1', vip: '10.1.0.100', backends: ['10.1.0.12', '10.1.0.11', '10.1.0.12'] },
      { key: 'idle', networkId: 'n1', vip: '10.1.0.101', backends: [] },
    ],
    published: [{ key: 'web', ports: [{ published: 8080, target: 80, protocol: 'tcp' }], backends: ['10.9.0.5'] }],
  });
  const br = overlayBridgeName('n1');
  t.deepEqual(
    balancerTableScript('lb', state)
      .split('\n')
      .filter((l) => l.startsWith('add rule')),
    [
      `add rule ip lb prerouting iifname "${br}" ip daddr 10.1.0.100 meta l4proto { tcp, udp } dnat to numgen random mod 2 map { 0 : 10.1.0.11, 1 : 10.1.0.12 }`,
      'add rule ip lb output ip daddr 10.1.0.100 meta l4proto { tcp, udp } dnat to numgen random mod 2 map { 0 : 10.1.0.11, 1 : 10.1.0.12 }',
      'add rule ip lb prerouting fib daddr type local meta l4proto tcp th dport 8080 dnat to numgen random mod 1 map { 0 : 10.9.0.5 } : 80',
      'add rule ip lb output fib daddr type local meta l4proto tcp th dport 8080 dnat to numgen random mod 1 map { 0 : 10.9.0.5 } : 80',
    ],
  );
  t.throws(
    () =>
      validateBalancerState({
        vips: [
          { key: 'a', networkId: 'n1', vip: '10.1.0.100', backends: [] },
          { key: 'b', networkId: 'n1', vip: '10.1.0.100', backends: [] },
        ],
        published: [],
      }),
    { message: /vips\[1\] \("b"\): VIP 10\.1\.0\.100 is already used by "a"/ },
  );
  const port = { published: 8080, target: 80, protocol: 'tcp' as const };
  t.throws(
    () =>
      validateBalancerState({
        vips: [],
        published: [
          { key: 'a', ports: [port], backends: [] },
          { key: 'b', ports: [port], backends: [] },
        ],
      }),
    { message: /port 8080\/tcp is already published by "a"/ },
  );
});
