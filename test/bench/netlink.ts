// Per-container attach cost, old way against netlink through the native addon:
// - a whole attach to a node bridge: the veth (host end on the bridge, peer into the container)
//   with `ip -n NODE -batch -`, then the container's own namespace (address, link up, lo up,
//   default route) with `nsenter --net=/proc/PID/ns/net ip -batch -`; against the same two steps
//   over netlink, as BridgeNetwork.attach now does them;
// - the in-namespace step alone, and opening a socket in a namespace alone;
// - the whole OverlayDriver.attach as it is now (host veth through its long-lived `ip -batch`
//   session + in-namespace netlink). Run: npm run bench:netlink
// (BENCH_ROUNDS=N to change the sample count). Everything lives in namespaces this script creates
// and removes; the machine is shared and noisy, so compare only numbers of one run.

import { runCommand } from '../../agent/network/exec.js';
import {
  NetlinkSocket,
  configureContainerInterface,
  createContainerVeth,
  deleteLinkNamed,
  deleteAddress,
  getLinkByName,
  parseLink,
  setLink,
} from '../../agent/network/netlink/index.js';
import { createNetns, startInNewNetns, type NamespacedProcess } from '../helpers/netns.js';
import { buildUnderlay, networkSpec, type TestNode } from '../integration/overlay-harness.js';
import { percentile } from './stats.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const ATTACH_ROUNDS = Math.max(10, Math.floor(ROUNDS / 4));
const ADDRESS = '10.171.0.5';
const GATEWAY = '10.171.0.1';

interface Row {
  name: string;
  samples: number[];
}

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

async function timed(rounds: number, reset: () => Promise<void> | void, work: () => Promise<void> | void): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await reset();
    const start = nowMs();
    await work();
    samples.push(nowMs() - start);
  }
  return samples;
}

/** A "container": a process in a fresh netns with an eth0 (one end of a veth pair living there too). */
async function container(cleanups: Array<() => Promise<void> | void>): Promise<NamespacedProcess> {
  const process = await startInNewNetns(['sleep', '3600']);
  cleanups.push(() => process.stop());
  await runCommand(['nsenter', `--net=/proc/${process.pid}/ns/net`, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
  await runCommand(['nsenter', `--net=/proc/${process.pid}/ns/net`, 'ip', 'link', 'set', 'peer0', 'up']);
  return process;
}

async function inNamespaceRows(cleanups: Array<() => Promise<void> | void>): Promise<Row[]> {
  const target = await container(cleanups);
  const netnsPath = `/proc/${target.pid}/ns/net`;
  // Undo an attach (untimed): dropping the address drops the default route through it too.
  const socket = NetlinkSocket.open(netnsPath);
  cleanups.push(() => socket.close());
  const [found] = socket.runSync([{ bytes: getLinkByName('eth0'), what: 'look up eth0' }]);
  const index = parseLink(found?.replies[0] ?? Buffer.alloc(0)).index;
  const reset = (): void => {
    socket.runSync([
      { bytes: deleteAddress({ index, address: ADDRESS, prefixLength: 24 }), what: 'addr del', tolerate: ['EADDRNOTAVAIL'] },
      { bytes: setLink({ index, up: false }), what: 'link down' },
    ]);
  };
  const old = await timed(ROUNDS, reset, async () => {
    await runCommand(
      ['nsenter', `--net=${netnsPath}`, 'ip', '-batch', '-'],
      [`addr add ${ADDRESS}/24 dev eth0`, 'link set eth0 up', 'link set lo up', `route add default via ${GATEWAY}`, ''].join('\n'),
    );
  });
  const netlink = await timed(ROUNDS, reset, () =>
    configureContainerInterface({ netnsPath, interfaceName: 'eth0', address: ADDRESS, prefixLength: 24, defaultRoute: { gateway: GATEWAY, mode: 'add' } }),
  );
  const openOnly = await timed(
    ROUNDS,
    () => undefined,
    () => NetlinkSocket.open(netnsPath).close(),
  );
  const loUp = [setLink({ index: 1, up: true })];
  const batchSync = await timed(
    ROUNDS,
    () => undefined,
    () => void socket.transactSync(loUp),
  );
  const batchPool = await timed(
    ROUNDS,
    () => undefined,
    async () => {
      await socket.transact(loUp);
    },
  );
  return [
    { name: 'in-netns config: nsenter + ip -batch (old)', samples: old },
    { name: 'in-netns config: netlink (new)', samples: netlink },
    { name: '  of which: open socket in netns + close', samples: openOnly },
    { name: 'one-request batch on an open socket, JS thread', samples: batchSync },
    { name: 'one-request batch on an open socket, libuv pool', samples: batchPool },
  ];
}

async function bridgeAttachRows(cleanups: Array<() => Promise<void> | void>): Promise<Row[]> {
  const node = await createNetns('tsnlbr');
  cleanups.push(() => node.delete());
  await runCommand(['ip', '-n', node.name, '-batch', '-'], `link add br0 type bridge\naddr add ${GATEWAY}/24 dev br0\nlink set br0 up\n`);
  const target = await startInNewNetns(['sleep', '3600']);
  cleanups.push(() => target.stop());
  const nodePath = `/run/netns/${node.name}`;
  const netnsPath = `/proc/${target.pid}/ns/net`;
  // Deleting the host end takes the peer, its address and the route with it (untimed).
  const reset = async (): Promise<void> => {
    await deleteLinkNamed(nodePath, 'tsvbench');
  };
  const old = await timed(ROUNDS, reset, async () => {
    await runCommand(
      ['ip', '-n', node.name, '-batch', '-'],
      `link add tsvbench type veth peer name eth0 netns ${target.pid}\nlink set tsvbench master br0\nlink set tsvbench up\n`,
    );
    await runCommand(
      ['nsenter', `--net=${netnsPath}`, 'ip', '-batch', '-'],
      [`addr add ${ADDRESS}/24 dev eth0`, 'link set eth0 up', 'link set lo up', `route add default via ${GATEWAY}`, ''].join('\n'),
    );
  });
  const netlink = await timed(ROUNDS, reset, async () => {
    await createContainerVeth({ netnsPath: nodePath, hostName: 'tsvbench', bridge: 'br0', peerName: 'eth0', pid: target.pid });
    await configureContainerInterface({
      netnsPath,
      interfaceName: 'eth0',
      address: ADDRESS,
      prefixLength: 24,
      defaultRoute: { gateway: GATEWAY, mode: 'add' },
    });
  });
  await reset();
  return [
    { name: 'bridge attach (veth + in-netns config): ip -batch + nsenter ip -batch (old)', samples: old },
    { name: 'bridge attach (veth + in-netns config): netlink (new)', samples: netlink },
  ];
}

async function attachRows(cleanups: Array<() => Promise<void> | void>): Promise<Row[]> {
  const { nodes } = await buildUnderlay((fn) => cleanups.push(fn), 'tsnlb', 1, 61);
  const node = nodes[0] as TestNode;
  await node.driver.ensureNetwork(networkSpec('bench-nl', 700, 172, node));
  const containers: NamespacedProcess[] = [];
  for (let i = 0; i < ATTACH_ROUNDS; i++) {
    const process = await startInNewNetns(['sleep', '3600']);
    cleanups.push(() => process.stop());
    containers.push(process);
  }
  let next = 0;
  const attach = await timed(
    ATTACH_ROUNDS,
    () => undefined,
    async () => {
      const i = next++;
      const process = containers[i] as NamespacedProcess;
      await node.driver.attach('bench-nl', `c${i}`, process.pid, { address: `10.172.0.${10 + i}`, defaultRoute: true });
    },
  );
  return [{ name: 'OverlayDriver.attach, whole (new)', samples: attach }];
}

function print(rows: Row[]): void {
  const header = ['case', 'n', 'median ms', 'p90 ms', 'mean ms'];
  const lines = rows.map((r) => {
    const mean = r.samples.reduce((a, b) => a + b, 0) / r.samples.length;
    return [r.name, String(r.samples.length), percentile(r.samples, 50).toFixed(3), percentile(r.samples, 90).toFixed(3), mean.toFixed(3)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const format = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(format(header));
  for (const line of lines) console.log(format(line));
  console.log('');
  for (let i = 0; i + 1 < rows.length; i++) {
    const old = rows[i];
    const now = rows[i + 1];
    if (!old?.name.endsWith('(old)') || !now?.name.endsWith('(new)')) continue;
    const ratio = percentile(old.samples, 50) / percentile(now.samples, 50);
    console.log(`${old.name.replace(/:.*$/, '')}: median old / new = ${ratio.toFixed(1)}x`);
  }
}

async function main(): Promise<void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const rows = [...(await bridgeAttachRows(cleanups)), ...(await inNamespaceRows(cleanups)), ...(await attachRows(cleanups))];
    print(rows);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

await main();
