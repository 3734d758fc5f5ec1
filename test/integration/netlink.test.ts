// Netlink through the native addon against iproute2 in real namespaces: every test builds twin
// namespaces with the same links, applies a change with our encoder + native socket in one and
// with the equivalent `ip` command in the other, and compares what `ip -j` reports for both.

import test, { type ExecutionContext } from 'ava';
import { closeSync, openSync, readlinkSync } from 'node:fs';
import { runCommand } from '../../agent/network/exec.js';
import {
  NetlinkError,
  NetlinkSocket,
  addAddress,
  addRoute,
  addVeth,
  configureContainerInterface,
  createContainerVeth,
  deleteLinkNamed,
  deleteAddress,
  deleteLink,
  deleteRoute,
  getLinkByName,
  netlinkBatch,
  netlinkBatchSync,
  parseLink,
  setLink,
} from '../../agent/network/netlink/index.js';
import { createNetns, startInNewNetns, type NamespacedProcess, type Netns } from '../helpers/netns.js';

const PREFIX = 'tsnl';

interface Twin {
  ours: Netns;
  reference: Netns;
  /** ifindex of x0 and y0 (equal in both: same creation order in fresh namespaces). */
  x0: number;
  y0: number;
}

/** Two namespaces, each with lo and a veth pair x0/y0 with fixed MACs. */
async function twin(t: ExecutionContext): Promise<Twin> {
  const created: Netns[] = [];
  t.teardown(async () => {
    for (const n of created) await n.delete();
  });
  for (let i = 0; i < 2; i++) {
    const n = await createNetns(PREFIX);
    created.push(n);
    await ip(n, ['link', 'add', 'x0', 'address', '02:00:00:00:00:10', 'type', 'veth', 'peer', 'name', 'y0', 'address', '02:00:00:00:00:11']);
  }
  const [ours, reference] = created as [Netns, Netns];
  return { ours, reference, x0: await ifindex(ours, 'x0'), y0: await ifindex(ours, 'y0') };
}

async function ip(n: Netns, args: string[], input?: string): Promise<string> {
  return (await runCommand(['ip', '-n', n.name, ...args], input)).stdout;
}

async function ifindex(n: Netns, name: string): Promise<number> {
  const [link] = JSON.parse(await ip(n, ['-j', 'link', 'show', 'dev', name])) as Array<{ ifindex: number }>;
  if (!link) throw new Error(`${name} missing in ${n.name}`);
  return link.ifindex;
}

/** What `ip -j` shows of links, addresses and routes (all tables), minus run-time noise. */
async function snapshot(n: Netns): Promise<unknown> {
  const links = JSON.parse(await ip(n, ['-j', '-d', 'link', 'show'])) as Array<Record<string, unknown>>;
  // IPv4 only: IPv6 link-local addresses and routes are the kernel's own, ordered by the timing
  // of links coming up, and none of our requests touch them.
  const addresses = JSON.parse(await ip(n, ['-4', '-j', 'addr', 'show'])) as Array<Record<string, unknown>>;
  const routes = JSON.parse(await ip(n, ['-4', '-j', 'route', 'show', 'table', 'all'])) as unknown[];
  // Carrier state settles asynchronously (linkwatch); the namespace id of a veth's far end is
  // allocated per namespace. Everything configured by the request is kept.
  const quiet = (entry: Record<string, unknown>): Record<string, unknown> => {
    const { operstate: _o, link_netnsid: _n, flags, ...rest } = entry;
    return { ...rest, flags: Array.isArray(flags) ? flags.filter((f) => f !== 'LOWER_UP' && f !== 'NO-CARRIER' && f !== 'M-DOWN') : flags };
  };
  return { links: links.map(quiet), addresses: addresses.map(quiet), routes };
}

async function assertTwinsEqual(t: ExecutionContext, pair: Twin): Promise<void> {
  t.deepEqual(await snapshot(pair.ours), await snapshot(pair.reference));
}

async function run(n: Netns, requests: Buffer[]): Promise<void> {
  const outcomes = await netlinkBatch(`/run/netns/${n.name}`, requests);
  for (const o of outcomes) if (o.errno !== 0) throw new Error(`netlink: ${o.message} ${o.extack}`);
}

test('container interface config equals ip addr/link/route in a twin namespace', async (t) => {
  const pair = await twin(t);
  await configureContainerInterface({
    netnsPath: `/run/netns/${pair.ours.name}`,
    interfaceName: 'y0',
    address: '10.77.0.5',
    prefixLength: 24,
    defaultRoute: { gateway: '10.77.0.1', mode: 'add' },
  });
  await ip(
    pair.reference,
    ['-batch', '-'],
    ['addr add 10.77.0.5/24 dev y0', 'link set y0 up', 'link set lo up', 'route add default via 10.77.0.1 dev y0', ''].join('\n'),
  );
  await assertTwinsEqual(t, pair);
  const routes = JSON.parse(await ip(pair.ours, ['-j', 'route', 'show'])) as Array<{ dst: string; gateway?: string; dev: string }>;
  t.true(routes.some((r) => r.dst === 'default' && r.gateway === '10.77.0.1' && r.dev === 'y0'));
});

test('configures a namespace named by a process (/proc/PID/ns/net), replacing a default route', async (t) => {
  const container = await startInNewNetns(['sleep', '60']);
  t.teardown(() => container.stop());
  const netnsPath = `/proc/${container.pid}/ns/net`;
  await runCommand(['nsenter', `--net=${netnsPath}`, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
  await runCommand(
    ['nsenter', `--net=${netnsPath}`, 'ip', '-batch', '-'],
    'addr add 10.78.0.2/24 dev eth1\nlink set eth1 up\nroute add default via 10.78.0.1\n',
  );
  await configureContainerInterface({
    netnsPath,
    interfaceName: 'eth0',
    address: '10.79.0.2',
    prefixLength: 24,
    defaultRoute: { gateway: '10.79.0.1', mode: 'replace' },
  });
  const { stdout } = await runCommand(['nsenter', `--net=${netnsPath}`, 'ip', '-j', 'route', 'show', 'default']);
  t.deepEqual(
    (JSON.parse(stdout) as Array<{ gateway: string; dev: string }>).map((r) => [r.gateway, r.dev]),
    [['10.79.0.1', 'eth0']],
  );
  const lo = JSON.parse((await runCommand(['nsenter', `--net=${netnsPath}`, 'ip', '-j', 'link', 'show', 'lo'])).stdout) as Array<{ flags: string[] }>;
  t.true(lo[0]?.flags.includes('UP'));
});

test('link changes (mtu, address, rename, down) equal ip link set', async (t) => {
  const pair = await twin(t);
  await run(pair.ours, [
    setLink({ index: pair.x0, mtu: 1400, address: '02:00:00:00:00:20', up: true }),
    setLink({ index: pair.y0, name: 'eth7', mtu: 1400 }),
    setLink({ index: pair.x0, up: false }),
  ]);
  await ip(pair.reference, ['-batch', '-'], 'link set x0 mtu 1400 address 02:00:00:00:00:20 up\nlink set y0 mtu 1400 name eth7\nlink set x0 down\n');
  await assertTwinsEqual(t, pair);
});

test('addresses and routes (on-link, scope link, other table, replace, delete) equal ip addr/route', async (t) => {
  const pair = await twin(t);
  await run(pair.ours, [
    setLink({ index: pair.x0, up: true }),
    setLink({ index: pair.y0, up: true }),
    addAddress({ index: pair.x0, address: '10.80.0.1', prefixLength: 24 }),
    addAddress({ index: pair.x0, address: '10.80.0.9', prefixLength: 24 }),
    addAddress({ index: pair.x0, address: '10.81.0.1', prefixLength: 16 }, 'replace'),
    deleteAddress({ index: pair.x0, address: '10.80.0.9', prefixLength: 24 }),
    addRoute({ destination: '10.90.0.0/16', gateway: '10.80.0.254' }),
    addRoute({ destination: '10.91.0.0/16', gateway: '172.16.0.1', index: pair.x0, onlink: true }),
    addRoute({ destination: '10.92.0.0/16', index: pair.y0 }),
    addRoute({ destination: '10.93.0.0/16', gateway: '10.80.0.254', table: 1000 }),
    addRoute({ destination: '10.94.0.0/16', index: pair.x0, table: 7 }),
    addRoute({ gateway: '10.80.0.254' }),
    addRoute({ gateway: '10.81.0.254', index: pair.x0 }, 'replace'),
    deleteRoute({ destination: '10.90.0.0/16', gateway: '10.80.0.254' }),
  ]);
  await ip(
    pair.reference,
    ['-batch', '-'],
    [
      'link set x0 up',
      'link set y0 up',
      'addr add 10.80.0.1/24 dev x0',
      'addr add 10.80.0.9/24 dev x0',
      'addr replace 10.81.0.1/16 dev x0',
      'addr del 10.80.0.9/24 dev x0',
      'route add 10.90.0.0/16 via 10.80.0.254',
      'route add 10.91.0.0/16 via 172.16.0.1 dev x0 onlink',
      'route add 10.92.0.0/16 dev y0',
      'route add 10.93.0.0/16 via 10.80.0.254 table 1000',
      'route add 10.94.0.0/16 dev x0 table 7',
      'route add default via 10.80.0.254',
      'route replace default via 10.81.0.254 dev x0',
      'route del 10.90.0.0/16 via 10.80.0.254',
      '',
    ].join('\n'),
  );
  await assertTwinsEqual(t, pair);
});

test('veth creation with the peer moved by pid and by namespace fd equals ip link add', async (t) => {
  const pair = await twin(t);
  const peers: Netns[] = [];
  t.teardown(async () => {
    for (const n of peers) await n.delete();
  });
  for (let i = 0; i < 2; i++) peers.push(await createNetns(PREFIX));
  const [ourPeer, referencePeer] = peers as [Netns, Netns];
  const byPid = await startInNewNetns(['sleep', '60']);
  t.teardown(() => byPid.stop());
  await ip(pair.ours, ['link', 'add', 'br0', 'type', 'bridge']);
  await ip(pair.reference, ['link', 'add', 'br0', 'type', 'bridge']);
  const bridge = await ifindex(pair.ours, 'br0');

  const fd = openSync(`/run/netns/${ourPeer.name}`, 'r');
  try {
    await run(pair.ours, [
      addVeth({ name: 'h1', mtu: 1450, master: bridge, up: true, peer: { name: 'eth0', mtu: 1450, address: '02:00:0a:00:00:05', netns: { fd } } }),
      addVeth({ name: 'h2', peer: { name: 'eth1', address: '02:00:0a:00:00:06', netns: { pid: byPid.pid } } }),
    ]);
  } finally {
    closeSync(fd);
  }
  // Both h2 peers go into the one process's namespace, so the reference's is named eth2.
  await ip(
    pair.reference,
    ['-batch', '-'],
    [
      `link add h1 mtu 1450 master br0 up type veth peer name eth0 mtu 1450 address 02:00:0a:00:00:05 netns ${referencePeer.name}`,
      `link add h2 type veth peer name eth2 address 02:00:0a:00:00:06 netns ${byPid.pid}`,
      '',
    ].join('\n'),
  );
  const inPidNs = JSON.parse((await runCommand(['nsenter', `--net=/proc/${byPid.pid}/ns/net`, 'ip', '-j', 'link', 'show'])).stdout) as Array<{
    ifname: string;
    address: string;
    mtu: number;
  }>;
  const peerOf = (name: string): unknown => inPidNs.filter((l) => l.ifname === name).map((l) => [l.address, l.mtu]);
  t.deepEqual(peerOf('eth1'), [['02:00:0a:00:00:06', 1500]]);
  t.deepEqual(peerOf('eth1'), peerOf('eth2'));

  const strip = (s: unknown): unknown => {
    // The host ends' MACs are random (neither side sets them), and so is the bridge's, taken from
    // its first port; h2's peer has a different ifindex in the shared namespace.
    const v = s as { links: Array<Record<string, unknown>>; addresses: Array<Record<string, unknown>>; routes: unknown[] };
    const anon = (l: Record<string, unknown>): Record<string, unknown> =>
      ['h1', 'h2', 'br0'].includes(String(l.ifname)) ? { ...l, address: 'random', link_index: 'varies', linkinfo: 'bridge details vary with MACs' } : l;
    return { links: v.links.map(anon), addresses: v.addresses.map(anon), routes: v.routes };
  };
  t.deepEqual(strip(await snapshot(pair.ours)), strip(await snapshot(pair.reference)));
  t.deepEqual(await snapshot(ourPeer), await snapshot(referencePeer));
  const master = JSON.parse(await ip(pair.ours, ['-j', 'link', 'show', 'dev', 'h1'])) as Array<{ master?: string; flags: string[] }>;
  t.is(master[0]?.master, 'br0');
  t.true(master[0]?.flags.includes('UP'));

  await run(pair.ours, [deleteLink(await ifindex(pair.ours, 'h2'))]);
  await t.throwsAsync(ifindex(pair.ours, 'h2'));
});

test('a container veth on a bridge (peer into the process namespace) equals ip link add/set, and is deleted by name', async (t) => {
  const pair = await twin(t);
  const containers = [await startInNewNetns(['sleep', '60']), await startInNewNetns(['sleep', '60'])];
  t.teardown(async () => {
    for (const c of containers) await c.stop();
  });
  const [ours, reference] = containers as [NamespacedProcess, NamespacedProcess];
  for (const n of [pair.ours, pair.reference]) await ip(n, ['link', 'add', 'br0', 'address', '02:00:00:00:00:30', 'type', 'bridge']);
  const netnsPath = `/run/netns/${pair.ours.name}`;
  await createContainerVeth({ netnsPath, hostName: 'tsvhost', bridge: 'br0', peerName: 'eth0', pid: ours.pid });
  await ip(
    pair.reference,
    ['-batch', '-'],
    `link add tsvhost type veth peer name eth0 netns ${reference.pid}\nlink set tsvhost master br0\nlink set tsvhost up\n`,
  );
  // A leftover host end (an attach interrupted by a crash) is replaced, not an error.
  await ip(pair.ours, ['link', 'del', 'tsvhost']);
  await ip(pair.ours, ['link', 'add', 'tsvhost', 'type', 'veth', 'peer', 'name', 'stale0']);
  await createContainerVeth({ netnsPath, hostName: 'tsvhost', bridge: 'br0', peerName: 'eth0', pid: ours.pid });
  await ip(pair.reference, ['link', 'del', 'tsvhost']);
  await ip(
    pair.reference,
    ['-batch', '-'],
    `link add tsvhost type veth peer name eth0 netns ${reference.pid}\nlink set tsvhost master br0\nlink set tsvhost up\n`,
  );

  const hostEnd = async (n: Netns): Promise<unknown> => {
    const [link] = JSON.parse(await ip(n, ['-j', '-d', 'link', 'show', 'dev', 'tsvhost'])) as Array<Record<string, unknown>>;
    const { address: _a, ifindex: _i, link_index: _l, link_netnsid: _n, operstate: _o, linkinfo, ...rest } = link ?? {};
    const kind = (linkinfo as { info_kind?: string; info_slave_kind?: string } | undefined) ?? {};
    return { ...rest, kind: kind.info_kind, slaveKind: kind.info_slave_kind };
  };
  t.deepEqual(await hostEnd(pair.ours), await hostEnd(pair.reference));
  const inside = async (c: NamespacedProcess): Promise<unknown> => {
    const links = JSON.parse((await runCommand(['nsenter', `--net=/proc/${c.pid}/ns/net`, 'ip', '-j', 'link', 'show'])).stdout) as Array<{
      ifname: string;
      mtu: number;
    }>;
    return links.map((l) => [l.ifname, l.mtu]);
  };
  t.deepEqual(await inside(ours), [
    ['lo', 65536],
    ['eth0', 1500],
  ]);
  t.deepEqual(await inside(ours), await inside(reference));
  t.false((JSON.parse(await ip(pair.ours, ['-j', 'link', 'show'])) as Array<{ ifname: string }>).some((l) => l.ifname === 'stale0'));

  t.true(await deleteLinkNamed(netnsPath, 'tsvhost'));
  t.false(await deleteLinkNamed(netnsPath, 'tsvhost'));
  t.deepEqual(await inside(ours), [['lo', 65536]]);
  const missingBridge = await t.throwsAsync(() => createContainerVeth({ netnsPath, hostName: 'tsvhost', bridge: 'nobr0', peerName: 'eth0', pid: ours.pid }));
  t.regex(missingBridge.message, /look up bridge nobr0 in network namespace .*: No such device \(ENODEV\)/);
});

test('errors carry errno, the request, the namespace and the kernel message; later requests still run', async (t) => {
  const pair = await twin(t);
  const netnsPath = `/run/netns/${pair.ours.name}`;
  const outcomes = await netlinkBatch(netnsPath, [
    addAddress({ index: pair.x0, address: '10.82.0.1', prefixLength: 24 }),
    addAddress({ index: pair.x0, address: '10.82.0.1', prefixLength: 24 }),
    addRoute({ destination: '10.95.0.0/16', gateway: '10.99.0.1' }),
    setLink({ index: pair.x0, up: true }),
  ]);
  t.deepEqual(
    outcomes.map((o) => o.errno),
    [0, 17, 101, 0],
  ); // EEXIST, ENETUNREACH
  t.is(outcomes[1]?.message, 'File exists');
  t.regex(outcomes[2]?.extack ?? '', /Nexthop has invalid gateway/);

  const error = await t.throwsAsync(() => configureContainerInterface({ netnsPath, interfaceName: 'x0', address: '10.82.0.1', prefixLength: 24 }));
  t.true(error instanceof NetlinkError);
  t.is((error as NetlinkError).code, 'EEXIST');
  t.regex(error.message, new RegExp(`addr add 10\\.82\\.0\\.1/24 dev x0 in network namespace ${netnsPath}: File exists \\(EEXIST\\)`));

  const missing = await t.throwsAsync(() => configureContainerInterface({ netnsPath, interfaceName: 'nope0', address: '10.82.0.2', prefixLength: 24 }));
  t.regex(missing.message, /look up interface nope0 in network namespace .*: No such device \(ENODEV\)/);

  const noNs = t.throws(() => NetlinkSocket.open(`/run/netns/${PREFIX}-does-not-exist`));
  t.regex(noNs.message, /open network namespace \/run\/netns\/tsnl-does-not-exist: No such file or directory/);
  t.is((noNs as NetlinkError).code, 'ENOENT');
  const notNs = t.throws(() => NetlinkSocket.open('/proc/self/status'));
  t.regex(notNs.message, /setns into \/proc\/self\/status: Invalid argument/);
});

test('the calling thread stays in its own namespace and each socket stays in the one it was opened in', async (t) => {
  const pair = await twin(t);
  const before = readlinkSync('/proc/thread-self/ns/net');
  const inside = NetlinkSocket.open(`/run/netns/${pair.ours.name}`);
  t.teardown(() => inside.close());
  for (const path of ['/proc/self/status', '/nonexistent', `/run/netns/${pair.reference.name}`]) {
    try {
      NetlinkSocket.open(path).close();
    } catch {
      // failures are the point here
    }
  }
  t.is(readlinkSync('/proc/thread-self/ns/net'), before);
  // x0 exists only in the namespaces; a socket opened there finds it long after the switch back.
  const [found] = await inside.run([{ bytes: getLinkByName('x0'), what: 'look up x0' }]);
  t.is(parseLink(found?.replies[0] ?? Buffer.alloc(0)).index, pair.x0);
  const own = NetlinkSocket.open(null);
  t.teardown(() => own.close());
  t.is((await own.transact([getLinkByName('x0')]))[0]?.errno, 19); // ENODEV: not in the agent's namespace
});

test('concurrent batches on one socket each get their own answers; close waits for them', async (t) => {
  const pair = await twin(t);
  const socket = NetlinkSocket.open(`/run/netns/${pair.ours.name}`);
  const batches = Array.from({ length: 20 }, (_, i) =>
    socket.transact([addAddress({ index: pair.x0, address: `10.83.0.${i + 1}`, prefixLength: 32 }), getLinkByName(i % 2 ? 'x0' : 'y0')]),
  );
  socket.close();
  const results = await Promise.all(batches);
  t.deepEqual(
    results.map((r) => r.map((o) => o.errno)),
    Array.from({ length: 20 }, () => [0, 0]),
  );
  t.deepEqual(
    results.map((r) => parseLink(r[1]?.replies[0] ?? Buffer.alloc(0)).name),
    Array.from({ length: 20 }, (_, i) => (i % 2 ? 'x0' : 'y0')),
  );
  await t.throwsAsync(() => socket.transact([setLink({ index: pair.x0, up: true })]), { message: /is closed/ });
});

test('a batch larger than one send slice (many requests) is acknowledged request by request', async (t) => {
  const pair = await twin(t);
  const requests = Array.from({ length: 1500 }, (_, i) =>
    addAddress({ index: pair.x0, address: `10.${100 + Math.floor(i / 250)}.${i % 250}.1`, prefixLength: 32 }),
  );
  requests.push(requests[0] ?? Buffer.alloc(0));
  const outcomes = await netlinkBatch(`/run/netns/${pair.ours.name}`, requests);
  t.is(outcomes.length, 1501);
  t.is(outcomes.filter((o) => o.errno === 0).length, 1500);
  t.is(outcomes[1500]?.errno, 17);
  const addresses = JSON.parse(await ip(pair.ours, ['-j', 'addr', 'show', 'dev', 'x0'])) as Array<{ addr_info: unknown[] }>;
  t.is(addresses[0]?.addr_info.length, 1500);
});

test('the native transport refuses malformed requests before sending anything', async (t) => {
  const pair = await twin(t);
  const bad = setLink({ index: pair.x0, up: true });
  bad.writeUInt32LE(bad.length + 4, 0);
  await t.throwsAsync(() => netlinkBatch(`/run/netns/${pair.ours.name}`, [setLink({ index: pair.x0, up: true }), bad]), {
    message: /requests\[1\] has nlmsg_len/,
  });
  t.throws(() => netlinkBatchSync(`/run/netns/${pair.ours.name}`, [bad]), { message: /requests\[0\] has nlmsg_len/ });
  const dump = getLinkByName('x0');
  dump.writeUInt16LE(dump.readUInt16LE(6) | 0x300, 6);
  await t.throwsAsync(() => netlinkBatch(null, [dump]), { message: /dump request/ });
  const links = JSON.parse(await ip(pair.ours, ['-j', 'link', 'show', 'dev', 'x0'])) as Array<{ flags: string[] }>;
  t.false(links[0]?.flags.includes('UP'));
});
