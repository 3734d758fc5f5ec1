// The host side of a container's veth on a node bridge, in the node's namespace: create it with
// its peer born inside the container's namespace, and delete it. One socket and at most three
// acknowledged batches per call, no process.

import { parseLink } from './decode.js';
import { addVeth, deleteLinkByName, getLinkByName } from './messages.js';
import { NetlinkError, NetlinkSocket } from './socket.js';

export interface ContainerVethConfig {
  /** The node's network namespace (e.g. /run/netns/NAME), or null for the agent's own. */
  netnsPath: string | null;
  /** Name of the host end. */
  hostName: string;
  /** Bridge the host end joins. */
  bridge: string;
  /** Name of the end inside the container, e.g. eth0. */
  peerName: string;
  /** The container's init: its network namespace receives the peer. */
  pid: number;
}

/**
 * `ip link add HOST master BRIDGE up type veth peer name PEER netns PID`. A host end left over from
 * an attach interrupted by a crash is deleted and the veth created again.
 */
export async function createContainerVeth(config: ContainerVethConfig): Promise<void> {
  const { hostName, bridge, peerName, pid } = config;
  const lookup = getLinkByName(bridge);
  const socket = NetlinkSocket.open(config.netnsPath);
  try {
    const [found] = await socket.run([{ bytes: lookup, what: `look up bridge ${bridge}` }]);
    const master = parseLink(found?.replies[0] ?? Buffer.alloc(0)).index;
    const add = {
      bytes: addVeth({ name: hostName, master, up: true, peer: { name: peerName, netns: { pid } } }),
      what: `link add ${hostName} master ${bridge} up type veth peer name ${peerName} netns ${pid}`,
    };
    try {
      await socket.run([add]);
    } catch (error) {
      if (!(error instanceof NetlinkError && error.code === 'EEXIST')) throw error;
      await socket.run([{ bytes: deleteLinkByName(hostName), what: `link del ${hostName}`, tolerate: ['ENODEV'] }, add]);
    }
  } finally {
    socket.close();
  }
}

/** `ip link del NAME`; false when there was no such link. */
export async function deleteLinkNamed(netnsPath: string | null, name: string): Promise<boolean> {
  const request = deleteLinkByName(name);
  const socket = NetlinkSocket.open(netnsPath);
  try {
    const [outcome] = await socket.run([{ bytes: request, what: `link del ${name}`, tolerate: ['ENODEV'] }]);
    return outcome?.errno === 0;
  } finally {
    socket.close();
  }
}
