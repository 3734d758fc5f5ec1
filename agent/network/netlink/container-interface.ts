// Configures a container's end of its veth from inside the container's network namespace: address,
// link up, loopback up, default route. One socket opened in the namespace and two acknowledged
// batches (look up the interface's ifindex, then configure), no process.

import * as K from './constants.js';
import { parseLink } from './decode.js';
import { addAddress, addRoute, getLinkByName, setLink } from './messages.js';
import { NetlinkSocket } from './socket.js';

export interface ContainerInterfaceConfig {
  /** The container's network namespace, e.g. /proc/PID/ns/net. */
  netnsPath: string;
  /** The interface already moved into that namespace (the veth peer), e.g. eth0. */
  interfaceName: string;
  address: string;
  prefixLength: number;
  /** Default route through the interface; 'replace' overwrites one another network set. */
  defaultRoute?: { gateway: string; mode: 'add' | 'replace' };
}

/** The equivalent of `ip addr add; ip link set IF up; ip link set lo up; ip route add default via GW dev IF`. */
export async function configureContainerInterface(config: ContainerInterfaceConfig): Promise<void> {
  const { interfaceName: name, address, prefixLength, defaultRoute } = config;
  // Encoded before the socket is opened, so invalid input fails without touching the namespace.
  const lookup = getLinkByName(name);
  const socket = NetlinkSocket.open(config.netnsPath);
  try {
    const [found] = await socket.run([{ bytes: lookup, what: `look up interface ${name}` }]);
    const reply = found?.replies[0];
    if (reply === undefined) throw new Error(`look up interface ${name} in network namespace ${config.netnsPath}: the kernel sent no link`);
    const index = parseLink(reply).index;
    await socket.run([
      { bytes: addAddress({ index, address, prefixLength }), what: `addr add ${address}/${prefixLength} dev ${name}` },
      { bytes: setLink({ index, up: true }), what: `link set ${name} up` },
      { bytes: setLink({ index: K.LOOPBACK_IFINDEX, up: true }), what: 'link set lo up' },
      ...(defaultRoute
        ? [
            {
              bytes: addRoute({ gateway: defaultRoute.gateway, index }, defaultRoute.mode),
              what: `route ${defaultRoute.mode} default via ${defaultRoute.gateway} dev ${name}`,
            },
          ]
        : []),
    ]);
  } finally {
    socket.close();
  }
}
