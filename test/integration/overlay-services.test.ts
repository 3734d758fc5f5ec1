// Service discovery, VIP load balancing and the routing mesh over a real VXLAN overlay: three
// "node" namespaces on a "switch" namespace, busybox httpd "containers" in namespaces of their
// own, the DNS resolver running inside a node's namespace (overlay-resolver-host.ts).

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { VipBalancer } from '../../agent/network/vip/vip-balancer.js';
import type { DnsRecords } from '../../common/network/dns-records.js';
import { runCommand } from '../../agent/network/exec.js';
import {
  attachContainer,
  attachmentNode,
  buildUnderlay,
  canFetch,
  eventually,
  fetchFrom,
  networkSpec,
  peersFor,
  startContainer,
  type TestContainer,
  type TestNode,
} from './overlay-harness.js';

const APP = 'net-app';
const OTHER = 'net-other';
const INGRESS = 'net-ingress';
const VIP = '10.110.0.100';

/** Distinct answers of `requests` requests, sorted. */
async function responders(fetch: () => Promise<string>, requests: number): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < requests; i++) seen.add(await fetch());
  return [...seen].sort();
}

async function nslookup(container: TestContainer, name: string, server: string): Promise<string[]> {
  const { stdout } = await runCommand(
    ['nsenter', `--net=/proc/${container.process.pid}/ns/net`, '/bin/busybox', 'nslookup', '-type=a', name, server],
    undefined,
    5000,
  );
  // busybox prints the server's own "Address:" first (with :53), then the answers.
  return stdout
    .split('\n')
    .map((l) => /^Address:\s*(\d+\.\d+\.\d+\.\d+)$/.exec(l.trim())?.[1])
    .filter((a): a is string => a !== undefined)
    .sort();
}

/** Starts the resolver host inside the node's namespace; resolves once the records are served. */
async function startResolver(
  t: ExecutionContext,
  node: TestNode,
  networks: Array<{ networkId: string; listen: { address: string }; records: DnsRecords }>,
): Promise<void> {
  const script = fileURLToPath(new URL('./overlay-resolver-host.ts', import.meta.url));
  const child = spawn('/usr/bin/ip', ['netns', 'exec', node.netns.name, process.execPath, '--import', 'tsx', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(async () => {
    child.stdin.end();
    if (child.exitCode === null) child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('error')) reject(new Error(output));
      if (output.includes(`ready ${networks.length}`)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`resolver host exited with ${String(code)}: ${output}`)));
    for (const network of networks) child.stdin.write(JSON.stringify(network) + '\n');
  });
}

test('service name → VIP, tasks.NAME, dnsrr and forwarding; the VIP reaches every replica across nodes; the routing mesh answers on every node', async (t) => {
  const cleanup = t.teardown.bind(t);
  const { nodes } = await buildUnderlay(cleanup, 'tsovs', 3, 53);
  const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];

  // APP and INGRESS span all three nodes (the ingress network is on every node, like Swarm's);
  // OTHER exists on node 1 only, with a client that must not reach APP's VIP.
  for (const node of nodes) {
    await node.driver.ensureNetwork(networkSpec(APP, 110, 110, node));
    await node.driver.ensureNetwork(networkSpec(INGRESS, 120, 120, node));
  }
  await n1.driver.ensureNetwork(networkSpec(OTHER, 130, 130, n1));

  // Replicas of "web" on nodes 2 and 3 (none on node 1), each on APP and on INGRESS; a client on node 1.
  const [web2, web3, client, outsider] = await Promise.all(['web2', 'web3', 'client', 'outsider'].map((name) => startContainer(cleanup, name)));
  const appAttachments = [
    await attachContainer(n2, APP, web2!, '10.110.0.12'),
    await attachContainer(n3, APP, web3!, '10.110.0.13'),
    await attachContainer(n1, APP, client!, '10.110.0.50'),
  ];
  const ingressAttachments = [
    await n2.driver.attach(INGRESS, 'web2', web2!.process.pid, { address: '10.120.0.12', interfaceName: 'eth1' }),
    await n3.driver.attach(INGRESS, 'web3', web3!.process.pid, { address: '10.120.0.13', interfaceName: 'eth1' }),
  ];
  attachmentNode.set(ingressAttachments[0]!, n2);
  attachmentNode.set(ingressAttachments[1]!, n3);
  await attachContainer(n1, OTHER, outsider!, '10.130.0.50', true);
  for (const node of nodes) {
    await node.driver.setPeers(APP, peersFor(APP, 110, nodes, appAttachments));
    await node.driver.setPeers(INGRESS, peersFor(INGRESS, 120, nodes, ingressAttachments));
  }

  // Every node balances the VIP and publishes port 8080 → 80 of web through the ingress network.
  const balancers = nodes.map((node) => {
    const balancer = new VipBalancer({ netns: node.netns.name });
    t.teardown(() => balancer.close());
    return balancer;
  });
  const state = {
    vips: [{ key: 'default/web', networkId: APP, vip: VIP, backends: ['10.110.0.12', '10.110.0.13'] }],
    published: [{ key: 'default/web', ports: [{ published: 8080, target: 80, protocol: 'tcp' as const }], backends: ['10.120.0.12', '10.120.0.13'] }],
  };
  for (const balancer of balancers) await balancer.converge(state);
  await balancers[0]!.converge(state); // idempotent

  // DNS on node 1's APP gateway: the client asks by name.
  const records: DnsRecords = {
    services: [
      { names: ['web'], endpointMode: 'vip', vip: VIP, tasks: ['10.110.0.12', '10.110.0.13'] },
      { names: ['web-rr'], endpointMode: 'dnsrr', tasks: ['10.110.0.12', '10.110.0.13'] },
    ],
    aliases: [{ name: 'client', addresses: ['10.110.0.50'] }],
  };
  await startResolver(t, n1, [{ networkId: APP, listen: { address: '10.110.0.1' }, records }]);
  t.deepEqual(await eventually(() => nslookup(client!, 'web', '10.110.0.1')), [VIP]);
  t.deepEqual(await nslookup(client!, 'tasks.web', '10.110.0.1'), ['10.110.0.12', '10.110.0.13']);
  t.deepEqual(await nslookup(client!, 'web-rr', '10.110.0.1'), ['10.110.0.12', '10.110.0.13']);
  t.deepEqual(await nslookup(client!, 'client', '10.110.0.1'), ['10.110.0.50']);
  t.deepEqual(await nslookup(client!, 'example.test', '10.110.0.1'), ['203.0.113.7']);

  // The VIP from a container on node 1 (no replica there) reaches both replicas on nodes 2 and 3.
  t.deepEqual(await responders(() => eventually(() => fetchFrom(client!, `http://${VIP}/`)), 24), ['web2', 'web3']);
  // A container on another network does not get through the node to APP's VIP or tasks.
  t.false(await canFetch(outsider!, `http://${VIP}/`));
  t.false(await canFetch(outsider!, 'http://10.110.0.12/'));

  // Routing mesh: port 8080 answers on every node's underlay address, node 1 included, from
  // another node's namespace and from the node itself (loopback), spread over both replicas.
  for (const node of nodes) {
    const other = nodes[node.index % 3]!;
    const url = `http://${node.underlayAddress}:8080/`;
    const seen = await responders(() => eventually(async () => (await other.netns.exec('/bin/busybox', ['wget', '-qO-', url])).stdout.trim()), 16);
    t.deepEqual(seen, ['web2', 'web3'], `via node ${node.index}`);
  }
  t.regex((await n1.netns.exec('/bin/busybox', ['wget', '-qO-', 'http://127.0.0.1:8080/'])).stdout, /^web[23]/);

  // Only healthy replicas: web3 drops out of the VIP and the mesh at once, atomically.
  const onlyWeb2 = {
    vips: [{ ...state.vips[0]!, backends: ['10.110.0.12'] }],
    published: [{ ...state.published[0]!, backends: ['10.120.0.12'] }],
  };
  for (const balancer of balancers) await balancer.converge(onlyWeb2);
  t.deepEqual(await responders(() => fetchFrom(client!, `http://${VIP}/`), 6), ['web2']);
  t.deepEqual(await responders(async () => (await n2.netns.exec('/bin/busybox', ['wget', '-qO-', `http://${n1.underlayAddress}:8080/`])).stdout.trim(), 6), [
    'web2',
  ]);

  // Invalid state is rejected whole, naming the problem; the previous rules stay in force.
  await t.throwsAsync(balancers[0]!.converge({ vips: [{ ...state.vips[0]!, vip: 'nope' }], published: [] }), { message: /vips\[0\].*not an IPv4 address/ });
  t.is(await fetchFrom(client!, `http://${VIP}/`), 'web2');

  // Removing the service removes its VIP address and rules.
  for (const balancer of balancers) await balancer.teardown();
  t.false(await canFetch(client!, `http://${VIP}/`));
  const { stdout } = await n1.netns.exec('ip', ['-4', '-o', 'addr', 'show']);
  t.false(stdout.includes(VIP));
});
