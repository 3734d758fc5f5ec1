// Single-node networking against the real kernel. Each test builds a whole "node" inside a
// network namespace of its own, with "containers" that are busybox httpd processes in fresh
// network namespaces; nothing runs in or changes the host's own namespace.

import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostVethName } from '../../agent/network/link-names.js';
import { BridgeNetwork } from '../../agent/network/node-network.js';
import type { NodeNetworkConfig } from '../../agent/network/types.js';
import { createNetns, execInPidNetns, httpGet, spawnInNetns, startInNewNetns, type NamespacedProcess, type Netns } from '../helpers/netns.js';

const SUBNET = '10.213.0.0/24';
const GATEWAY = '10.213.0.1';
const NODE_ADDRESS = '192.168.213.1';
const CLIENT_ADDRESS = '192.168.213.2';
const UPLINK = 'tsuplink0';
const TABLE = 'tessera_test';
const BRIDGE = 'tsbr0';
const WEB = [{ published: 18080, target: 80, protocol: 'tcp' as const }];

interface TestNode {
  netns: Netns;
  config: NodeNetworkConfig;
  network: BridgeNetwork;
}

async function startNode(t: ExecutionContext): Promise<TestNode> {
  const netns = await createNetns('tsnet');
  t.teardown(() => netns.delete());
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnet-state-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const config: NodeNetworkConfig = { bridge: BRIDGE, subnet: SUBNET, nftTable: TABLE, stateDir, netns: netns.name };
  const network = new BridgeNetwork(config);
  await network.setup();
  return { netns, config, network };
}

/** A "container": httpd as the init of its own network namespace, serving its name. */
async function startReplica(t: ExecutionContext, name: string): Promise<NamespacedProcess> {
  const root = await mkdtemp(join(tmpdir(), `tsnet-${name}-`));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'index.html'), `${name}\n`);
  const replica = await startInNewNetns(['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', root]);
  t.teardown(() => replica.stop());
  return replica;
}

/** Another host on the node's underlay: a namespace linked to the node by a veth pair. */
async function connectClient(t: ExecutionContext, node: TestNode): Promise<Netns> {
  const client = await createNetns('tsnetcl');
  t.teardown(() => client.delete());
  await node.netns.exec(
    'ip',
    ['-batch', '-'],
    [`link add ${UPLINK} type veth peer name ${UPLINK} netns ${client.name}`, `addr add ${NODE_ADDRESS}/24 dev ${UPLINK}`, `link set ${UPLINK} up`].join('\n') +
      '\n',
  );
  await client.exec('ip', ['-batch', '-'], [`addr add ${CLIENT_ADDRESS}/24 dev ${UPLINK}`, `link set ${UPLINK} up`].join('\n') + '\n');
  return client;
}

async function linkNames(netns: Netns): Promise<string[]> {
  const { stdout } = await netns.exec('ip', ['-j', 'link', 'show']);
  return (JSON.parse(stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

async function tableNames(netns: Netns): Promise<string[]> {
  const { stdout } = await netns.exec('nft', ['-j', 'list', 'tables']);
  if (stdout.trim() === '') return [];
  const entries = (JSON.parse(stdout) as { nftables: Array<{ table?: { family: string; name: string } }> }).nftables;
  return entries.flatMap((e) => (e.table ? [`${e.table.family} ${e.table.name}`] : []));
}

async function responders(netns: Netns, url: string, requests: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < requests; i++) {
    const body = await httpGet(netns, url);
    counts.set(body, (counts.get(body) ?? 0) + 1);
  }
  return counts;
}

async function refuses(netns: Netns, url: string): Promise<boolean> {
  return httpGet(netns, url, 3000).then(
    () => false,
    () => true,
  );
}

test('attach gives each container its own address, eth0, a default route and the gateway', async (t) => {
  const node = await startNode(t);
  const replicas = await Promise.all(['r1', 'r2', 'r3'].map((name) => startReplica(t, name)));
  const attachments = [];
  for (const [index, replica] of replicas.entries()) {
    attachments.push(await node.network.attach(`container-${index}`, replica.pid));
  }
  const addresses = attachments.map((a) => a.address);
  t.is(new Set(addresses).size, 3, `distinct addresses: ${addresses.join(', ')}`);
  for (const address of addresses) t.regex(address, /^10\.213\.0\.\d+$/);
  t.false(addresses.includes(GATEWAY));

  for (const [index, replica] of replicas.entries()) {
    const { stdout: addr } = await execInPidNetns(replica.pid, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    t.true(addr.includes(`${addresses[index]}/24`), addr);
    const { stdout: route } = await execInPidNetns(replica.pid, 'ip', ['route', 'show', 'default']);
    t.true(route.includes(`via ${GATEWAY}`), route);
    await t.notThrowsAsync(execInPidNetns(replica.pid, '/bin/busybox', ['ping', '-c', '1', '-W', '2', GATEWAY]));
  }
  // Containers on one bridge reach each other directly.
  const { stdout: page } = await execInPidNetns(replicas[0]!.pid, '/bin/busybox', ['wget', '-qO-', `http://${addresses[1]}/`]);
  t.is(page.trim(), 'r2');

  const { stdout: bridgePorts } = await node.netns.exec('ip', ['-j', 'link', 'show', 'master', BRIDGE]);
  t.deepEqual((JSON.parse(bridgePorts) as Array<{ ifname: string }>).map((l) => l.ifname).sort(), attachments.map((a) => a.hostVeth).sort());

  await node.network.detach('container-0');
  await node.network.detach('container-0'); // idempotent
  t.false((await linkNames(node.netns)).includes(hostVethName('container-0')));
  await t.throwsAsync(execInPidNetns(replicas[0]!.pid, 'ip', ['link', 'show', 'eth0']));
  // The released address is not handed out again at once.
  const reattached = await node.network.attach('container-0', replicas[0]!.pid);
  t.not(reattached.address, addresses[0]);

  await node.network.teardown();
  t.deepEqual(await linkNames(node.netns), ['lo']);
  t.deepEqual(await tableNames(node.netns), []);
});

test('a published port answers on 127.0.0.1, the node address and from another host, load-balanced', async (t) => {
  const node = await startNode(t);
  const client = await connectClient(t, node);
  const replicas = await Promise.all(['r1', 'r2', 'r3'].map((name) => startReplica(t, name)));
  const backends: string[] = [];
  for (const [index, replica] of replicas.entries()) {
    backends.push((await node.network.attach(`web-${index}`, replica.pid)).address);
  }

  await node.network.publish('default/web', WEB, backends);
  const loopback = `http://127.0.0.1:18080/`;
  const nodeAddress = `http://${NODE_ADDRESS}:18080/`;
  t.regex(await httpGet(node.netns, loopback), /^r[123]$/);
  t.regex(await httpGet(node.netns, nodeAddress), /^r[123]$/);
  t.regex(await httpGet(client, nodeAddress), /^r[123]$/);
  const spread = await responders(node.netns, loopback, 30);
  t.true(spread.size > 1, `one backend answered all: ${JSON.stringify([...spread])}`);
  const remoteSpread = await responders(client, nodeAddress, 15);
  t.true(remoteSpread.size > 1, `one backend answered all: ${JSON.stringify([...remoteSpread])}`);

  // Hairpin: a container reaching the published port through the gateway.
  const { stdout: hairpin } = await execInPidNetns(replicas[0]!.pid, '/bin/busybox', ['wget', '-qO-', `http://${GATEWAY}:18080/`]);
  t.regex(hairpin.trim(), /^r[123]$/);

  // A second service on another port is not disturbed by changes to the first.
  const otherPorts = [
    { published: 18081, target: 80, protocol: 'tcp' as const },
    { published: 18081, target: 80, protocol: 'udp' as const },
  ];
  await node.network.publish('default/other', otherPorts, [backends[2]!]);
  await node.network.publish('default/web', WEB, [backends[1]!]);
  t.deepEqual([...(await responders(node.netns, loopback, 8)).keys()], ['r2']);
  t.deepEqual([...(await responders(client, nodeAddress, 4)).keys()], ['r2']);
  t.is(await httpGet(node.netns, 'http://127.0.0.1:18081/'), 'r3');

  await t.throwsAsync(node.network.publish('default/thief', WEB, [backends[0]!]), { message: /already published by "default\/web"/ });

  await node.network.publish('default/web', WEB, []);
  t.true(await refuses(node.netns, loopback));
  t.true(await refuses(client, nodeAddress));
  t.is(await httpGet(node.netns, 'http://127.0.0.1:18081/'), 'r3');

  await node.network.teardown();
  t.deepEqual(await linkNames(node.netns), ['lo', UPLINK]);
  t.deepEqual(await tableNames(node.netns), []);
});

test('published traffic passes a foreign forward drop policy, and teardown removes only our rules', async (t) => {
  const node = await startNode(t);
  // Stands in for a host firewall (e.g. iptables-nft FORWARD policy DROP) that is not ours.
  await node.netns.exec('nft', ['-f', '-'], 'table ip hostfw {\n chain forward { type filter hook forward priority filter; policy drop; }\n}\n');
  const client = await connectClient(t, node);
  const replica = await startReplica(t, 'solo');
  const { address } = await node.network.attach('solo', replica.pid);
  await node.network.publish('default/solo', WEB, [address]);
  // Loopback does not pass the forward hook; traffic from another host does and is dropped.
  t.is(await httpGet(node.netns, 'http://127.0.0.1:18080/'), 'solo');
  t.true(await refuses(client, `http://${NODE_ADDRESS}:18080/`));

  await node.network.setup(); // sees the foreign chain now
  t.is(await httpGet(client, `http://${NODE_ADDRESS}:18080/`), 'solo');

  await node.network.setup(); // idempotent: no duplicate accept rules
  const { stdout } = await node.netns.exec('nft', ['-j', 'list', 'chain', 'ip', 'hostfw', 'forward']);
  const rules = (JSON.parse(stdout) as { nftables: Array<{ rule?: unknown }> }).nftables.filter((e) => e.rule);
  t.is(rules.length, 3);

  await node.network.teardown();
  t.deepEqual(await tableNames(node.netns), ['ip hostfw']);
  const { stdout: after } = await node.netns.exec('nft', ['list', 'chain', 'ip', 'hostfw', 'forward']);
  t.true(after.includes('policy drop'), after);
  t.false(after.includes('tessera'), after);
});

test('setup is idempotent and a restarted network keeps its leases and service rules', async (t) => {
  const node = await startNode(t);
  const replica = await startReplica(t, 'kept');
  const { address } = await node.network.attach('kept', replica.pid);
  await node.network.publish('default/kept', WEB, [address]);
  const before = await node.netns.exec('nft', ['list', 'table', 'ip', TABLE]);

  const restarted = new BridgeNetwork(node.config);
  await restarted.setup();
  await restarted.setup();
  const after = await node.netns.exec('nft', ['list', 'table', 'ip', TABLE]);
  t.is(after.stdout, before.stdout);
  t.is(await httpGet(node.netns, 'http://127.0.0.1:18080/'), 'kept');

  // The lease survived: a second container does not get the same address.
  const other = await startReplica(t, 'other');
  const second = await restarted.attach('other', other.pid);
  t.not(second.address, address);

  // Services nobody re-published after the restart are dropped on request.
  await restarted.retainServices([]);
  t.true(await refuses(node.netns, 'http://127.0.0.1:18080/'));

  await restarted.teardown();
  await restarted.teardown(); // idempotent
  t.deepEqual(await linkNames(node.netns), ['lo']);
  t.deepEqual(await tableNames(node.netns), []);
});

test('containers reach other hosts masqueraded as the node', async (t) => {
  const node = await startNode(t);
  const client = await connectClient(t, node);
  // The other host answers with the source address it sees, via a busybox httpd CGI script.
  const root = await mkdtemp(join(tmpdir(), 'tsnet-echo-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'cgi-bin'));
  await writeFile(join(root, 'cgi-bin', 'peer'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n', { mode: 0o755 });
  const echo = spawnInNetns(client, ['/bin/busybox', 'httpd', '-f', '-p', '8000', '-h', root]);
  t.teardown(() => echo.stop());
  const replica = await startReplica(t, 'egress');
  await node.network.attach('egress', replica.pid);

  // The client has no route to the container subnet, so only a masqueraded request is answered.
  const seen = await retry(async () => {
    const { stdout } = await execInPidNetns(replica.pid, '/bin/busybox', ['wget', '-qO-', `http://${CLIENT_ADDRESS}:8000/cgi-bin/peer`]);
    return stdout.trim();
  });
  // busybox httpd listens dual-stack and reports IPv4 peers as IPv4-mapped IPv6.
  t.is(seen.replace(/^\[::ffff:(.*)\]$/, '$1'), NODE_ADDRESS);
});

/** Retries while a just-started server is not listening yet. */
async function retry<T>(attempt: () => Promise<T>, tries = 20): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
