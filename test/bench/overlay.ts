// Overlay benchmark: TCP throughput (iperf3) and round-trip latency (busybox ping -A) between two
// containers on different nodes over the VXLAN overlay, against the raw veth path between the two
// node namespaces on the same underlay in the same run. Run: npm run bench:overlay.
// Everything lives in namespaces this script creates and removes; nothing touches the host's.

import { spawn } from 'node:child_process';
import { runCommand } from '../../agent/network/exec.js';
import { attachContainer, buildUnderlay, eventually, networkSpec, peersFor, type TestNode } from '../integration/overlay-harness.js';
import { startInNewNetns } from '../helpers/netns.js';
import { median } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PINGS = 200;
const NETWORK = 'bench-net';

type Prefix = string[];

async function iperf(serverPrefix: Prefix, clientPrefix: Prefix, address: string): Promise<number> {
  const server = spawn(serverPrefix[0]!, [...serverPrefix.slice(1), 'iperf3', '-s', '-1', '-B', address], { stdio: 'ignore' });
  try {
    const { stdout } = await eventually(
      () => runCommand([...clientPrefix, 'iperf3', '-c', address, '-t', String(SECONDS), '-J'], undefined, (SECONDS + 20) * 1000),
      50,
      100,
    );
    const result = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
    return result.end.sum_received.bits_per_second / 1e9;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

async function rtt(clientPrefix: Prefix, address: string): Promise<number> {
  const { stdout } = await runCommand([...clientPrefix, '/bin/busybox', 'ping', '-A', '-q', '-c', String(PINGS), address], undefined, 60_000);
  const match = /min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(stdout);
  if (!match) throw new Error(`no ping summary in: ${stdout}`);
  return Number(match[1]) * 1000;
}

async function main(): Promise<void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const { nodes } = await buildUnderlay((fn) => cleanups.push(fn), 'tsovb', 2, 60);
    const [n1, n2] = nodes as [TestNode, TestNode];
    for (const node of nodes) await node.driver.ensureNetwork(networkSpec(NETWORK, 600, 160, node));
    const containers = [];
    for (const name of ['c1', 'c2']) {
      const process = await startInNewNetns(['/bin/busybox', 'sleep', '3600']);
      cleanups.push(() => process.stop());
      containers.push({ name, process });
    }
    const a1 = await attachContainer(n1, NETWORK, containers[0]!, '10.160.0.11');
    const a2 = await attachContainer(n2, NETWORK, containers[1]!, '10.160.0.12');
    for (const node of nodes) await node.driver.setPeers(NETWORK, peersFor(NETWORK, 160, nodes, [a1, a2]));

    const inNode = (node: TestNode): Prefix => ['ip', 'netns', 'exec', node.netns.name];
    const inContainer = (pid: number): Prefix => ['nsenter', `--net=/proc/${pid}/ns/net`];
    const raw = { server: inNode(n2), client: inNode(n1), address: n2.underlayAddress };
    const overlay = { server: inContainer(containers[1]!.process.pid), client: inContainer(containers[0]!.process.pid), address: a2.address };

    const results = { raw: { gbit: [] as number[], rtt: [] as number[] }, overlay: { gbit: [] as number[], rtt: [] as number[] } };
    // Alternate the two paths so drift in the machine's load hits both alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, path] of [
        ['raw', raw],
        ['overlay', overlay],
      ] as const) {
        results[name].gbit.push(await iperf(path.server, path.client, path.address));
        results[name].rtt.push(await rtt(path.client, path.address));
      }
    }
    const rawGbit = median(results.raw.gbit);
    const overlayGbit = median(results.overlay.gbit);
    const rawRtt = median(results.raw.rtt);
    const overlayRtt = median(results.overlay.rtt);
    const rows = [
      ['metric', 'raw veth (node↔node)', 'overlay (container↔container)', 'overlay / raw'],
      ['TCP throughput, Gbit/s (iperf3, median)', rawGbit.toFixed(2), overlayGbit.toFixed(2), (overlayGbit / rawGbit).toFixed(2)],
      ['ICMP round trip, µs (ping -A, median of avg)', rawRtt.toFixed(0), overlayRtt.toFixed(0), (overlayRtt / rawRtt).toFixed(2)],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));
    console.log(`\n${ROUNDS} rounds of ${SECONDS} s each; overlay MTU ${1500 - 50} over an underlay of 1500; goal: throughput ratio >= 0.9`);
    console.log(
      `all rounds, Gbit/s: raw ${results.raw.gbit.map((v) => v.toFixed(2)).join(' ')}; overlay ${results.overlay.gbit.map((v) => v.toFixed(2)).join(' ')}`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  }
}

await main();
