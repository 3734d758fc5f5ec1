// Byte-level checks of the rtnetlink encoder. Each expected payload is what iproute2 6.1 sent
// for the `ip` command in the test's title, captured with `strace -e trace=sendmsg -x ip ...` in a
// scratch namespace (ifindexes as they were there); the netlink header is rebuilt with seq and port
// id 0, which the native transport fills in. Struct sizes agree with the uapi headers: nlmsghdr 16,
// ifinfomsg 16, ifaddrmsg 8, rtmsg 12, nlattr 4.

import test from 'ava';
import {
  addAddress,
  addRoute,
  addVeth,
  deleteAddress,
  deleteLink,
  deleteLinkByName,
  getLinkByName,
  parseLink,
  setLink,
} from '../../agent/network/netlink/index.js';
import { NetworkInputError } from '../../common/network/ipv4.js';
import { message, u32, cString } from '../../agent/network/netlink/wire.js';

function reference(type: number, flags: number, payloadHex: string): string {
  const payload = Buffer.from(payloadHex.replace(/\s+/g, ''), 'hex');
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + payload.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags, 6);
  return Buffer.concat([header, payload]).toString('hex');
}

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const ACK = 0x5; // NLM_F_REQUEST | NLM_F_ACK
const CREATE_EXCL = 0x605;
const CREATE_REPLACE = 0x505;

const cases: Array<[title: string, actual: () => Buffer, type: number, flags: number, payload: string]> = [
  ['ip link set lo up', () => setLink({ index: 1, up: true }), RTM_NEWLINK, ACK, '00000000 01000000 01000000 01000000'],
  ['ip link set b0 up', () => setLink({ index: 2, up: true }), RTM_NEWLINK, ACK, '00000000 02000000 01000000 01000000'],
  ['ip link set b0 down', () => setLink({ index: 2, up: false }), RTM_NEWLINK, ACK, '00000000 02000000 00000000 01000000'],
  ['ip link set b0 name c0', () => setLink({ index: 2, name: 'c0' }), RTM_NEWLINK, ACK, '00000000 02000000 00000000 00000000 0700 0300 63300000'],
  ['ip link set c0 mtu 1400', () => setLink({ index: 2, mtu: 1400 }), RTM_NEWLINK, ACK, '00000000 02000000 00000000 00000000 0800 0400 78050000'],
  [
    'ip link set c0 address 02:00:0a:09:00:05',
    () => setLink({ index: 2, address: '02:00:0a:09:00:05' }),
    RTM_NEWLINK,
    ACK,
    '00000000 02000000 00000000 00000000 0a00 0100 02000a090005 0000',
  ],
  [
    'ip link set c0 mtu 1450 address 02:00:0a:09:00:06 up',
    () => setLink({ index: 2, mtu: 1450, address: '02:00:0A:09:00:06', up: true }),
    RTM_NEWLINK,
    ACK,
    '00000000 02000000 01000000 01000000 0800 0400 aa050000 0a00 0100 02000a090006 0000',
  ],
  [
    'ip link set h0 master br9 up',
    () => setLink({ index: 5, master: 4, up: true }),
    RTM_NEWLINK,
    ACK,
    '00000000 05000000 01000000 01000000 0800 0a00 04000000',
  ],
  ['ip link set a0 netns 2248', () => setLink({ index: 3, netns: { pid: 2248 } }), RTM_NEWLINK, ACK, '00000000 03000000 00000000 00000000 0800 1300 c8080000'],
  [
    'ip link set p1 netns nlref1 (fd 4)',
    () => setLink({ index: 9, netns: { fd: 4 } }),
    RTM_NEWLINK,
    ACK,
    '00000000 09000000 00000000 00000000 0800 1c00 04000000',
  ],
  [
    'ip link set h3 mtu 1400 address 02:00:0a:09:00:08 master br8 netns 12060 name eth9',
    () => setLink({ index: 8, mtu: 1400, address: '02:00:0a:09:00:08', master: 6, netns: { pid: 12060 }, name: 'eth9' }),
    RTM_NEWLINK,
    ACK,
    '00000000 08000000 00000000 00000000 0800 0400 78050000 0a00 0100 02000a090008 0000 0800 0a00 06000000 0800 1300 1c2f0000 0900 0300 65746839 00000000',
  ],
  ['ip link del c0', () => deleteLink(2), RTM_DELLINK, ACK, '00000000 02000000 00000000 00000000'],
  [
    'ip link add h1 type veth peer name eth0 netns 1',
    () => addVeth({ name: 'h1', peer: { name: 'eth0', netns: { pid: 1 } } }),
    RTM_NEWLINK,
    CREATE_EXCL,
    '00000000 00000000 00000000 00000000 0700 0300 68310000 3800 1200 0800 0100 76657468 2c00 0200 2800 0100' +
      '00000000 00000000 00000000 00000000 0800 1300 01000000 0900 0300 65746830 00000000',
  ],
  [
    'ip link add h2 mtu 1450 type veth peer name eth5 mtu 1450 address 02:00:0a:09:00:07 netns 12060',
    () => addVeth({ name: 'h2', mtu: 1450, peer: { name: 'eth5', mtu: 1450, address: '02:00:0a:09:00:07', netns: { pid: 12060 } } }),
    RTM_NEWLINK,
    CREATE_EXCL,
    '00000000 00000000 00000000 00000000 0800 0400 aa050000 0700 0300 68320000 4c00 1200 0800 0100 76657468 4000 0200 3c00 0100' +
      '00000000 00000000 00000000 00000000 0800 0400 aa050000 0a00 0100 02000a090007 0000 0800 1300 1c2f0000 0900 0300 65746835 00000000',
  ],
  [
    'ip link add h3 mtu 1400 master br8 up type veth peer name eth1',
    () => addVeth({ name: 'h3', mtu: 1400, master: 6, up: true, peer: { name: 'eth1' } }),
    RTM_NEWLINK,
    CREATE_EXCL,
    '00000000 00000000 01000000 01000000 0800 0400 78050000 0800 0a00 06000000 0700 0300 68330000 3000 1200 0800 0100 76657468' +
      '2400 0200 2000 0100 00000000 00000000 00000000 00000000 0900 0300 65746831 00000000',
  ],
  [
    'ip addr add 10.9.0.5/24 dev b0',
    () => addAddress({ index: 2, address: '10.9.0.5', prefixLength: 24 }),
    RTM_NEWADDR,
    CREATE_EXCL,
    '02180000 02000000 0800 0200 0a090005 0800 0100 0a090005',
  ],
  [
    'ip addr replace 10.9.0.6/24 dev p0',
    () => addAddress({ index: 10, address: '10.9.0.6', prefixLength: 24 }, 'replace'),
    RTM_NEWADDR,
    CREATE_REPLACE,
    '02180000 0a000000 0800 0200 0a090006 0800 0100 0a090006',
  ],
  [
    'ip addr del 10.9.0.5/24 dev c0',
    () => deleteAddress({ index: 2, address: '10.9.0.5', prefixLength: 24 }),
    RTM_DELADDR,
    ACK,
    '02180000 02000000 0800 0200 0a090005 0800 0100 0a090005',
  ],
  ['ip route add default via 10.9.0.1', () => addRoute({ gateway: '10.9.0.1' }), RTM_NEWROUTE, CREATE_EXCL, '02000000 fe030001 00000000 0800 0500 0a090001'],
  [
    'ip route replace default via 10.9.0.1 dev b0',
    () => addRoute({ gateway: '10.9.0.1', index: 2 }, 'replace'),
    RTM_NEWROUTE,
    CREATE_REPLACE,
    '02000000 fe030001 00000000 0800 0500 0a090001 0800 0400 02000000',
  ],
  [
    'ip route add 10.8.0.0/16 dev b0 scope link',
    () => addRoute({ destination: '10.8.0.0/16', index: 2 }),
    RTM_NEWROUTE,
    CREATE_EXCL,
    '02100000 fe03fd01 00000000 0800 0100 0a080000 0800 0400 02000000',
  ],
  [
    'ip route add 10.7.0.0/16 via 10.6.0.1 dev b0 onlink',
    () => addRoute({ destination: '10.7.0.0/16', gateway: '10.6.0.1', index: 2, onlink: true }),
    RTM_NEWROUTE,
    CREATE_EXCL,
    '02100000 fe030001 04000000 0800 0100 0a070000 0800 0500 0a060001 0800 0400 02000000',
  ],
  [
    'ip route add 10.4.0.0/16 dev p0 table 7',
    () => addRoute({ destination: '10.4.0.0/16', index: 10, table: 7 }),
    RTM_NEWROUTE,
    CREATE_EXCL,
    '02100000 0703fd01 00000000 0800 0100 0a040000 0800 0400 0a000000',
  ],
  [
    'ip route add 10.5.0.0/16 via 10.9.0.1 table 1000',
    () => addRoute({ destination: '10.5.0.0/16', gateway: '10.9.0.1', table: 1000 }),
    RTM_NEWROUTE,
    CREATE_EXCL,
    '02100000 00030001 00000000 0800 0100 0a050000 0800 0500 0a090001 0800 0f00 e8030000',
  ],
  // Not an iproute2 capture (ip asks with extra attributes): ifinfomsg of zeros and IFLA_IFNAME.
  ['RTM_GETLINK eth0', () => getLinkByName('eth0'), RTM_GETLINK, ACK, '00000000 00000000 00000000 00000000 0900 0300 65746830 00000000'],
  ['RTM_DELLINK eth0 (by name)', () => deleteLinkByName('eth0'), RTM_DELLINK, ACK, '00000000 00000000 00000000 00000000 0900 0300 65746830 00000000'],
];

for (const [title, actual, type, flags, payload] of cases) {
  test(`encodes like iproute2: ${title}`, (t) => {
    t.is(actual().toString('hex'), reference(type, flags, payload));
  });
}

test('rejects invalid input with a message naming the field', (t) => {
  const invalid: Array<[() => Buffer, RegExp]> = [
    [() => setLink({ index: 0, up: true }), /index must be a positive ifindex, got 0/],
    [() => setLink({ index: 2, name: 'way-too-long-name' }), /not a valid interface name/],
    [() => setLink({ index: 2, name: 'a/b' }), /not a valid interface name/],
    [() => setLink({ index: 2, mtu: 20 }), /mtu must be an integer from 68 to 65535/],
    [() => setLink({ index: 2, address: '02:00:0a:09:00' }), /not a MAC address/],
    [() => setLink({ index: 2, netns: { pid: 0 } }), /netns pid must be a positive integer/],
    [() => setLink({ index: 2, netns: { fd: -1 } }), /netns must be \{ pid \} or \{ fd \}/],
    [() => addAddress({ index: 2, address: '10.0.0.256', prefixLength: 24 }), /address 10\.0\.0\.256\/24: address: .*above 255/],
    [() => addAddress({ index: 2, address: '10.0.0.2', prefixLength: 33 }), /prefix length must be an integer from 0 to 32/],
    [() => addRoute({ destination: '10.0.0.1/24', index: 2 }), /host bits set/],
    [() => addRoute({ destination: '10.0.0.0', index: 2 }), /destination must be a\.b\.c\.d\/len/],
    [() => addRoute({}), /needs a gateway or an output device/],
    [() => addRoute({ gateway: '10.0.0.1', onlink: true }), /onlink needs an output device/],
    [() => addVeth({ name: 'h1', peer: { name: '' } }), /peer name "" is not a valid interface name/],
    [() => getLinkByName('eth0 '), /not a valid interface name/],
  ];
  for (const [build, pattern] of invalid) {
    const error = t.throws(build, { instanceOf: NetworkInputError });
    t.regex(error.message, pattern);
  }
});

test('parseLink reads index, flags, name and mtu of an RTM_NEWLINK', (t) => {
  const header = Buffer.alloc(16);
  header.writeInt32LE(7, 4);
  header.writeUInt32LE(0x1003, 8);
  const reply = message(RTM_NEWLINK, 0, header, [
    { type: 4, value: u32(1450) },
    { type: 3, value: cString('eth0') },
    { type: 18, value: [{ type: 1, value: Buffer.from('veth') }] },
  ]);
  t.deepEqual(parseLink(reply), { index: 7, name: 'eth0', flags: 0x1003, mtu: 1450 });
  t.throws(() => parseLink(deleteLink(2)), { message: /not an RTM_NEWLINK/ });
});
