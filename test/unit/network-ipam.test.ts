import test from 'ava';
import { Ipam, IpamExhaustedError } from '../../agent/network/ipam.js';
import { NetworkInputError, parseCidr, parseIpv4, formatIpv4 } from '../../common/network/ipv4.js';

test('allocates from .2 on, skipping network, gateway and broadcast', (t) => {
  const ipam = new Ipam('10.1.2.0/29');
  t.is(ipam.gateway, '10.1.2.1');
  t.is(ipam.capacity, 5);
  const got = ['a', 'b', 'c', 'd', 'e'].map((id) => ipam.allocate(id));
  t.deepEqual(got, ['10.1.2.2', '10.1.2.3', '10.1.2.4', '10.1.2.5', '10.1.2.6']);
  t.throws(() => ipam.allocate('f'), { instanceOf: IpamExhaustedError, message: /10\.1\.2\.0\/29 has no free address/ });
});

test('allocate is idempotent per container', (t) => {
  const ipam = new Ipam('10.0.0.0/24');
  t.is(ipam.allocate('x'), ipam.allocate('x'));
  t.is(ipam.leases().size, 1);
});

test('a released address is reused only after the others', (t) => {
  const ipam = new Ipam('10.0.0.0/29');
  ipam.allocate('a');
  ipam.allocate('b');
  t.true(ipam.release('a'));
  t.false(ipam.release('a'));
  t.is(ipam.allocate('c'), '10.0.0.4');
  ipam.allocate('d');
  ipam.allocate('e');
  // Wrapped around: the only free address left is the one released first.
  t.is(ipam.allocate('f'), '10.0.0.2');
});

test('/30 leaves exactly one container address', (t) => {
  const ipam = new Ipam('192.168.9.4/30');
  t.is(ipam.allocate('only'), '192.168.9.6');
  t.throws(() => ipam.allocate('second'), { instanceOf: IpamExhaustedError });
});

test('serialise and restore keep leases and the cursor', (t) => {
  const ipam = new Ipam('10.9.0.0/24');
  ipam.allocate('a');
  ipam.allocate('b');
  ipam.release('a');
  const state = JSON.parse(JSON.stringify(ipam.serialise())) as ReturnType<Ipam['serialise']>;
  t.deepEqual(state, { version: 1, subnet: '10.9.0.0/24', leases: { b: '10.9.0.3' }, cursor: '10.9.0.4' });
  const restored = Ipam.restore(state);
  t.is(restored.lookup('b'), '10.9.0.3');
  t.is(restored.lookup('a'), undefined);
  t.is(restored.allocate('c'), '10.9.0.4');
});

test('claim records existing addresses and rejects conflicts', (t) => {
  const ipam = new Ipam('10.0.0.0/24');
  ipam.claim('a', '10.0.0.7');
  ipam.claim('a', '10.0.0.7');
  t.throws(() => ipam.claim('b', '10.0.0.7'), { message: /already leased/ });
  t.throws(() => ipam.claim('a', '10.0.0.8'), { message: /already holds 10\.0\.0\.7/ });
  t.throws(() => ipam.claim('c', '10.0.0.1'), { message: /not assignable/ });
  t.throws(() => ipam.claim('c', '10.0.0.255'), { message: /not assignable/ });
  t.throws(() => ipam.claim('c', '10.0.1.5'), { message: /not assignable/ });
});

test('restore rejects leases outside the subnet', (t) => {
  t.throws(() => Ipam.restore({ version: 1, subnet: '10.0.0.0/24', leases: { a: '10.0.9.9' }, cursor: '10.0.0.2' }), {
    instanceOf: NetworkInputError,
  });
});

test('container ids are validated', (t) => {
  const ipam = new Ipam('10.0.0.0/24');
  t.throws(() => ipam.allocate(''), { instanceOf: NetworkInputError });
  t.throws(() => ipam.allocate('has space'), { instanceOf: NetworkInputError });
});

test('CIDR parsing gives clear errors', (t) => {
  t.deepEqual(parseCidr('10.213.0.0/16'), { network: parseIpv4('10.213.0.0'), prefixLength: 16, text: '10.213.0.0/16' });
  t.throws(() => parseCidr('10.213.0.0'), { message: /expected a\.b\.c\.d\/prefix/ });
  t.throws(() => parseCidr('10.213.0.5/24'), { message: /host bits are set \(did you mean 10\.213\.0\.0\/24\?\)/ });
  t.throws(() => parseCidr('10.0.0.0/31'), { message: /between 8 and 30/ });
  t.throws(() => parseCidr('10.0.0.0/x'), { message: /not a number/ });
  t.throws(() => parseCidr('300.0.0.0/8'), { message: /above 255/ });
  t.throws(() => parseCidr('010.0.0.0/8'), { message: /leading zero/ });
});

test('addresses round-trip through integers', (t) => {
  for (const text of ['0.0.0.0', '10.213.0.1', '255.255.255.255', '192.168.1.254']) {
    t.is(formatIpv4(parseIpv4(text)), text);
  }
  t.throws(() => parseIpv4('1.2.3'), { instanceOf: NetworkInputError });
});
