// A multi-node underlay on one machine for overlay tests and the overlay benchmark: a "switch"
// namespace with a bridge, and N "node" namespaces each linked to it by a veth pair with an
// address 192.168.X.N/24. Containers are processes in fresh network namespaces. Everything is
// created in namespaces of our own, named with a unique prefix, and removed by the cleanups the
// caller registers (ava's t.teardown), also when a test fails.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../agent/network/exec.js';
import { OverlayDriver } from '../../agent/network/overlay/overlay-driver.js';
import { macForAddress } from '../../common/network/mac-address.js';
import type { OverlayAttachment, OverlayNetworkSpec, OverlayPeer } from '../../agent/network/overlay/types.js';
import { createNetns, execInPidNetns, startInNewNetns, type NamespacedProcess, type Netns } from '../helpers/netns.js';

export type Cleanup = (fn: () => Promise<void> | void) => void;

export const UNDERLAY_IFNAME = 'ul0';
const SWITCH_BRIDGE = 'sw0';

export interface TestNode {
  index: number;
  netns: Netns;
  underlayAddress: string;
  driver: OverlayDriver;
}

export interface Underlay {
  switchNs: Netns;
  nodes: TestNode[];
}

/** `octet` picks 192.168.<octet>.0/24; node i (from 1) gets .i. */
export async function buildUnderlay(cleanup: Cleanup, prefix: string, count: number, octet: number, mtu = 1500): Promise<Underlay> {
  const switchNs = await createNetns(`${prefix}sw`);
  cleanup(() => switchNs.delete());
  await switchNs.exec('ip', ['-batch', '-'], `link add ${SWITCH_BRIDGE} mtu ${mtu} type bridge\nlink set ${SWITCH_BRIDGE} up\n`);
  const nodes: TestNode[] = [];
  for (let index = 1; index <= count; index++) {
    const netns = await createNetns(`${prefix}n${index}`);
    cleanup(() => netns.delete());
    const underlayAddress = `192.168.${octet}.${index}`;
    const port = `p${index}`;
    await switchNs.exec(
      'ip',
      ['-batch', '-'],
      [`link add ${port} mtu ${mtu} type veth peer name ${UNDERLAY_IFNAME} mtu ${mtu} netns ${netns.name}`, `link set ${port} master ${SWITCH_BRIDGE} up`].join(
        '\n',
      ) + '\n',
    );
    await netns.exec('ip', ['-batch', '-'], `addr add ${underlayAddress}/24 dev ${UNDERLAY_IFNAME}\nlink set ${UNDERLAY_IFNAME} up\n`);
    const driver = new OverlayDriver({ localUnderlayAddress: underlayAddress, underlayInterface: UNDERLAY_IFNAME, underlayMtu: mtu, netns: netns.name });
    cleanup(() => driver.close());
    nodes.push({ index, netns, underlayAddress, driver });
  }
  return { switchNs, nodes };
}

/** A network spec with node i's own address at .(250 - i) of a /24. */
export function networkSpec(id: string, vni: number, thirdOctet: number, node: TestNode): OverlayNetworkSpec {
  return {
    id,
    name: id,
    vni,
    subnet: `10.${thirdOctet}.0.0/24`,
    gateway: `10.${thirdOctet}.0.1`,
    nodeAddress: nodeAddressOf(thirdOctet, node.index),
  };
}

export function nodeAddressOf(thirdOctet: number, nodeIndex: number): string {
  return `10.${thirdOctet}.0.${250 - nodeIndex}`;
}

/**
 * What the dispatcher would compute: for one network, every node that has it, with its node
 * address endpoint and its attached containers.
 */
export function peersFor(networkId: string, thirdOctet: number, members: TestNode[], attachments: OverlayAttachment[]): OverlayPeer[] {
  return members.map((node) => {
    const nodeAddress = nodeAddressOf(thirdOctet, node.index);
    return {
      nodeUnderlayAddress: node.underlayAddress,
      endpoints: [
        { address: nodeAddress, mac: macForAddress(nodeAddress) },
        ...attachments.filter((a) => a.networkId === networkId && attachmentNode.get(a) === node).map((a) => ({ address: a.address, mac: a.mac })),
      ],
    };
  });
}

/** Which node an attachment was made on (tests keep this; the store does in production). */
export const attachmentNode = new WeakMap<OverlayAttachment, TestNode>();

export interface TestContainer {
  name: string;
  process: NamespacedProcess;
}

/** A "container": busybox httpd as init of its own netns, serving its name on port 80. */
export async function startContainer(cleanup: Cleanup, name: string): Promise<TestContainer> {
  const root = await mkdtemp(join(tmpdir(), `tsov-${name}-`));
  cleanup(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, 'index.html'), `${name}\n`);
  const process = await startInNewNetns(['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', root]);
  cleanup(() => process.stop());
  return { name, process };
}

export async function attachContainer(
  node: TestNode,
  networkId: string,
  container: TestContainer,
  address: string,
  defaultRoute = false,
): Promise<OverlayAttachment> {
  const attachment = await node.driver.attach(networkId, container.name, container.process.pid, { address, defaultRoute });
  attachmentNode.set(attachment, node);
  return attachment;
}

/** busybox wget from inside a container, killed after timeoutMs (busybox's -T is broken). */
export async function fetchFrom(container: TestContainer, url: string, timeoutMs = 3000): Promise<string> {
  const { stdout } = await execInPidNetnsTimed(container.process.pid, ['/bin/busybox', 'wget', '-qO-', url], timeoutMs);
  return stdout.trim();
}

export async function canFetch(container: TestContainer, url: string, timeoutMs = 2000): Promise<boolean> {
  return fetchFrom(container, url, timeoutMs).then(
    () => true,
    () => false,
  );
}

export async function ping(container: TestContainer, address: string): Promise<boolean> {
  return execInPidNetns(container.process.pid, '/bin/busybox', ['ping', '-c', '1', '-W', '1', address]).then(
    () => true,
    () => false,
  );
}

function execInPidNetnsTimed(pid: number, argv: string[], timeoutMs: number): Promise<{ stdout: string }> {
  return runCommand(['nsenter', `--net=/proc/${pid}/ns/net`, ...argv], undefined, timeoutMs);
}

// Retries an attempt that may fail while the kernel settles (first ARP, a server starting).
export { retry as eventually } from '../helpers/eventually.js';
