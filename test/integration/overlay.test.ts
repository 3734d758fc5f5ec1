// The VXLAN overlay against the real kernel: three "node" namespaces on an underlay bridge in a
// fourth "switch" namespace, "containers" as busybox httpd in namespaces of their own. Nothing
// runs in or changes the host's own network namespace.

import test from 'ava';
import { spawn } from 'node:child_process';
import { OverlayDriver } from '../../agent/network/overlay/overlay-driver.js';
import { macForAddress } from '../../common/network/mac-address.js';
import {
  attachContainer,
  attachmentNode,
  buildUnderlay,
  canFetch,
  eventually,
  fetchFrom,
  networkSpec,
  nodeAddressOf,
  peersFor,
  ping,
  startContainer,
  type TestNode,
} from './overlay-harness.js';

const A = 'net-a';
const B = 'net-b';

async function fdbMacs(node: TestNode, networkId: string): Promise<string[]> {
  const { vxlan } = OverlayDriver.linkNames(networkId);
  const { stdout } = await node.netns.exec('bridge', ['-j', 'fdb', 'show', 'dev', vxlan]);
  return (JSON.parse(stdout) as Array<{ mac: string; dst?: string }>)
    .filter((e) => e.dst)
    .map((e) => `${e.mac}>${e.dst ?? ''}`)
    .sort();
}

async function neighbours(node: TestNode, networkId: string): Promise<string[]> {
  const { vxlan } = OverlayDriver.linkNames(networkId);
  const { stdout } = await node.netns.exec('ip', ['-j', 'neigh', 'show', 'dev', vxlan]);
  return (JSON.parse(stdout) as Array<{ dst: string; lladdr: string }>).map((e) => `${e.dst}>${e.lladdr}`).sort();
}

test('containers on one overlay reach each other across nodes, other overlays stay isolated, entries follow endpoints', async (t) => {
  const { nodes } = await buildUnderlay(t.teardown.bind(t), 'tsovl', 3, 51);
  const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
  for (const node of [n1, n2]) await node.driver.ensureNetwork(networkSpec(A, 100, 100, node));
  for (const node of [n1, n3]) await node.driver.ensureNetwork(networkSpec(B, 200, 200, node));
  // Idempotent: the same desired state again changes nothing and does not fail.
  await n1.driver.ensureNetwork(networkSpec(A, 100, 100, n1));

  const [a1, a2, b1, b3] = await Promise.all(['a1', 'a2', 'b1', 'b3'].map((name) => startContainer(t.teardown.bind(t), name)));
  const attA1 = await attachContainer(n1, A, a1!, '10.100.0.10', true);
  const attA2 = await attachContainer(n2, A, a2!, '10.100.0.20', true);
  const attB1 = await attachContainer(n1, B, b1!, '10.200.0.10', true);
  const attB3 = await attachContainer(n3, B, b3!, '10.200.0.30', true);
  const onA = [attA1, attA2];
  const onB = [attB1, attB3];
  for (const node of [n1, n2]) await node.driver.setPeers(A, peersFor(A, 100, [n1, n2], onA));
  for (const node of [n1, n3]) await node.driver.setPeers(B, peersFor(B, 200, [n1, n3], onB));
  await n1.driver.setPeers(A, peersFor(A, 100, [n1, n2], onA)); // idempotent

  // Forwarding entries: flood to the other node, each remote MAC to its node; ARP proxy entries.
  t.deepEqual(
    await fdbMacs(n1, A),
    [
      `00:00:00:00:00:00>${n2.underlayAddress}`,
      `${attA2.mac}>${n2.underlayAddress}`,
      `02:42:0a:64:00:f8>${n2.underlayAddress}`, // n2's node address 10.100.0.248
    ].sort(),
  );
  t.deepEqual(await neighbours(n1, A), [`10.100.0.20>${attA2.mac}`, `${nodeAddressOf(100, 2)}>02:42:0a:64:00:f8`].sort());

  // Same overlay, different nodes: ping and TCP both ways.
  t.true(await eventually(async () => (await ping(a1!, '10.100.0.20')) || Promise.reject(new Error('no ping'))));
  t.is(await fetchFrom(a1!, 'http://10.100.0.20/'), 'a2');
  t.is(await fetchFrom(a2!, 'http://10.100.0.10/'), 'a1');
  t.is(await eventually(() => fetchFrom(b1!, 'http://10.200.0.30/')), 'b3');
  // The node's own address on the network is reachable from a remote container (VIP/mesh replies need it).
  t.true(await ping(a2!, nodeAddressOf(100, 1)));

  // Different overlays: neither across nodes nor on the same node, though every container has a
  // default route via its gateway and node 1 holds an address on both networks.
  t.false(await canFetch(a1!, 'http://10.200.0.10/'));
  t.false(await canFetch(a1!, 'http://10.200.0.30/'));
  t.false(await canFetch(b1!, 'http://10.100.0.10/'));
  t.false(await canFetch(b3!, 'http://10.100.0.20/'));
  t.false(await ping(a2!, '10.200.0.30'));

  // An endpoint goes away: its entries disappear and it is unreachable; a new one appears.
  await n2.driver.detach(A, 'a2');
  await n2.driver.detach(A, 'a2'); // idempotent
  for (const node of [n1, n2]) await node.driver.setPeers(A, peersFor(A, 100, [n1, n2], [attA1]));
  t.false((await fdbMacs(n1, A)).some((e) => e.startsWith(attA2.mac)));
  t.false((await neighbours(n1, A)).some((e) => e.startsWith('10.100.0.20>')));
  t.false(await canFetch(a1!, 'http://10.100.0.20/'));

  const a2b = await startContainer(t.teardown.bind(t), 'a2b');
  const attA2b = await attachContainer(n2, A, a2b, '10.100.0.21', true);
  for (const node of [n1, n2]) await node.driver.setPeers(A, peersFor(A, 100, [n1, n2], [attA1, attA2b]));
  t.true((await neighbours(n1, A)).includes(`10.100.0.21>${attA2b.mac}`));
  t.is(await eventually(() => fetchFrom(a1!, 'http://10.100.0.21/')), 'a2b');

  // A node that leaves the network: its flood entry goes too.
  await n1.driver.setPeers(A, peersFor(A, 100, [n1], [attA1]));
  t.deepEqual(await fdbMacs(n1, A), []);
  t.deepEqual(await neighbours(n1, A), []);
});

test('a restarted driver adopts existing links and entries, and retainNetworks/teardown remove the rest', async (t) => {
  const { nodes } = await buildUnderlay(t.teardown.bind(t), 'tsovr', 2, 52);
  const [n1, n2] = nodes as [TestNode, TestNode];
  for (const node of nodes) await node.driver.ensureNetwork(networkSpec(A, 100, 100, node));
  await n1.driver.ensureNetwork(networkSpec(B, 200, 200, n1));
  const [a1, a2] = await Promise.all(['a1', 'a2'].map((name) => startContainer(t.teardown.bind(t), name)));
  const attA1 = await attachContainer(n1, A, a1!, '10.100.0.10');
  const attA2 = await attachContainer(n2, A, a2!, '10.100.0.20');
  for (const node of nodes) await node.driver.setPeers(A, peersFor(A, 100, nodes, [attA1, attA2]));
  const before = await fdbMacs(n1, A);

  // tsd restarts: a new driver instance with no memory of what the old one did.
  n1.driver.close();
  const restarted = new OverlayDriver({ localUnderlayAddress: n1.underlayAddress, underlayInterface: 'ul0', netns: n1.netns.name });
  t.teardown(() => restarted.close());
  await restarted.ensureNetwork(networkSpec(A, 100, 100, n1));
  await restarted.setPeers(A, peersFor(A, 100, nodes, [attA2])); // a2 only: nothing else changes
  t.deepEqual(await fdbMacs(n1, A), before);
  t.is(await eventually(() => fetchFrom(a1!, 'http://10.100.0.20/')), 'a2'); // a1's veth survived

  // Network B was not re-announced after the restart: retainNetworks removes it.
  await restarted.retainNetworks([A]);
  const { stdout } = await n1.netns.exec('ip', ['-j', 'link', 'show']);
  const names = (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
  t.false(names.includes(OverlayDriver.linkNames(B).bridge));
  t.true(names.includes(OverlayDriver.linkNames(A).bridge));

  await t.throwsAsync(restarted.setPeers(A, [{ nodeUnderlayAddress: n2.underlayAddress, endpoints: [{ address: '10.9.9.9', mac: '02:00:00:00:00:01' }] }]), {
    message: /10\.9\.9\.9 is outside 10\.100\.0\.0\/24/,
  });
  await t.throwsAsync(restarted.ensureNetwork({ ...networkSpec(A, 100, 100, n1), vni: 0 }), { message: /vni must be an integer/ });

  await restarted.teardown();
  const after = await n1.netns.exec('ip', ['-j', 'link', 'show']);
  t.deepEqual((JSON.parse(after.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort(), ['lo', 'ul0']);
  const tables = await n1.netns.exec('nft', ['list', 'tables']);
  t.is(tables.stdout.trim(), '');
});

// `bridge -batch` resolves a device name to its ifindex once and caches it for the life of the
// process: a VXLAN device deleted and created again under the same name (a network that leaves a
// node when its last task there goes and comes back with the next one — what the e2e test
// "killing a node's tsd ..." hit on a restarted worker) must not leave the driver programming the
// old ifindex ("unknown ifindex") forever.
test('a restarted driver programs a network again after it left the node and came back under the same link names', async (t) => {
  const { nodes } = await buildUnderlay(t.teardown.bind(t), 'tsovx', 2, 54);
  const [n1, n2] = nodes as [TestNode, TestNode];
  for (const node of nodes) await node.driver.ensureNetwork(networkSpec(A, 100, 100, node));
  const [a1, a2] = await Promise.all(['x1', 'x2'].map((name) => startContainer(t.teardown.bind(t), name)));
  const attA1 = await attachContainer(n1, A, a1!, '10.100.0.10');
  const attA2 = await attachContainer(n2, A, a2!, '10.100.0.20');
  for (const node of nodes) await node.driver.setPeers(A, peersFor(A, 100, nodes, [attA1, attA2]));

  // tsd on node 1 is killed and restarted: the new driver adopts the links and programs peers.
  n1.driver.close();
  const restarted = new OverlayDriver({ localUnderlayAddress: n1.underlayAddress, underlayInterface: 'ul0', netns: n1.netns.name });
  t.teardown(() => restarted.close());
  await restarted.ensureNetwork(networkSpec(A, 100, 100, n1));
  await restarted.setPeers(A, peersFor(A, 100, nodes, [attA1]));
  await restarted.setPeers(A, peersFor(A, 100, nodes, [attA1, attA2])); // peers change while it runs
  t.is(await eventually(() => fetchFrom(a1!, 'http://10.100.0.20/')), 'x2');

  // Node 1's tasks on the network go away, so the network leaves the node; later it comes back.
  await restarted.detach(A, 'x1');
  await restarted.retainNetworks([]);
  await restarted.ensureNetwork(networkSpec(A, 100, 100, n1));
  await restarted.setPeers(A, peersFor(A, 100, nodes, [attA2]));
  const a1b = await startContainer(t.teardown.bind(t), 'x1b');
  const attA1b = await restarted.attach(A, 'x1b', a1b.process.pid, { address: '10.100.0.11' });
  attachmentNode.set(attA1b, n1);
  await restarted.setPeers(A, peersFor(A, 100, nodes, [attA1b, attA2]));
  await n2.driver.setPeers(A, peersFor(A, 100, nodes, [attA1b, attA2]));
  t.true((await fdbMacs(n1, A)).includes(`${attA2.mac}>${n2.underlayAddress}`));
  t.is(await eventually(() => fetchFrom(a1b, 'http://10.100.0.20/')), 'x2');
});

test('the bridge is created with its MAC already set, so udev cannot replace it (MACAddressPolicy=persistent)', async (t) => {
  // systemd-udevd gives a new link whose address the kernel picked at random a "persistent" one
  // (Debian's default policy) some time after it appears. There is no udevd here, so the test reads
  // the kernel's own announcement of the new bridge: it must already carry the node address's MAC
  // (the kernel then marks it set by its creator, which udev leaves alone), not a random one that a
  // later `link set address` would have to win a race against.
  const { nodes } = await buildUnderlay(t.teardown.bind(t), 'tsovm', 1, 57);
  const [n1] = nodes as [TestNode];
  const { bridge } = OverlayDriver.linkNames(A);
  const monitor = spawn('ip', ['netns', 'exec', n1.netns.name, 'ip', '-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (monitor.pid !== undefined && monitor.exitCode === null) process.kill(monitor.pid, 'SIGTERM');
  });
  let seen = '';
  monitor.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
  // The monitor must be listening before the bridge exists: a probe link it reports proves it is.
  // Each attempt makes the probe anew, since one made before the monitor listened is never reported.
  await eventually(async () => {
    await n1.netns.exec('ip', ['link', 'add', 'tsovmprobe', 'type', 'bridge']);
    await n1.netns.exec('ip', ['link', 'del', 'tsovmprobe']);
    if (!seen.includes('tsovmprobe')) throw new Error('ip monitor is not listening yet');
  }, 100);
  const spec = networkSpec(A, 100, 100, n1);
  await n1.driver.ensureNetwork(spec);
  await eventually(async () => {
    if (!seen.includes(`${bridge}:`)) throw new Error(`no announcement of ${bridge} yet`);
  }, 50);
  const first = seen.split('\n').find((line) => line.includes(`${bridge}:`)) ?? '';
  t.regex(first, new RegExp(`link/ether ${macForAddress(spec.nodeAddress)} `), `the first announcement of ${bridge}: ${first}`);
});
