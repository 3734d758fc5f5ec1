// The desired state of the overlay on one node, as the dispatcher hands it to the agent. The
// driver converges the kernel to it; calling any method twice with the same input changes nothing.

export interface OverlayNetworkSpec {
  /** Cluster-wide network id; link names are derived from it. */
  id: string;
  /** Human name, for error messages. */
  name: string;
  /** VXLAN network identifier, 1..16777215, unique in the cluster. */
  vni: number;
  /** The network's subnet, e.g. "10.20.0.0/24", the same on every node. */
  subnet: string;
  /** Gateway address, the same on every node; the DNS resolver listens on it. */
  gateway: string;
  /**
   * This node's own address in the subnet, different on every node (like Swarm's per-node
   * load-balancer endpoint). Traffic the node DNATs into the network (VIPs, routing mesh) leaves
   * with it as source, so replies from other nodes find their way back. The bridge's MAC is
   * macForAddress(nodeAddress): other nodes list it among this node's endpoints.
   */
  nodeAddress: string;
  /** MTU of the bridge, VXLAN device and container interfaces; default underlay MTU - 50. */
  mtu?: number;
}

export interface OverlayEndpoint {
  /** Container (or node) address in the network's subnet. */
  address: string;
  /** Its MAC address, lower-case hex with colons. */
  mac: string;
}

export interface OverlayPeer {
  /** The remote node's underlay address, where its VXLAN device listens. */
  nodeUnderlayAddress: string;
  /** Every endpoint on that node in this network, its nodeAddress endpoint included. */
  endpoints: OverlayEndpoint[];
}

export interface OverlayAttachOptions {
  /** The task's address, allocated by the managers. */
  address: string;
  /** Default macForAddress(address). */
  mac?: string;
  /** Name inside the container, default "eth0"; use eth1.. for a task's further networks. */
  interfaceName?: string;
  /** Adds a default route via the network's gateway (only for one of a container's networks). */
  defaultRoute?: boolean;
}

export interface OverlayAttachment {
  networkId: string;
  containerId: string;
  address: string;
  mac: string;
  interfaceName: string;
  /** The node-side end of the container's veth, enslaved to the network's bridge. */
  hostVeth: string;
}

export interface OverlayDriverConfig {
  /** This node's underlay address; VXLAN packets leave from it and peers send to it. */
  localUnderlayAddress: string;
  /** Underlay interface the VXLAN devices bind to; optional, routing decides without it. */
  underlayInterface?: string;
  /** Underlay MTU, default 1500; the overlay MTU defaults to it minus the 50-byte VXLAN header. */
  underlayMtu?: number;
  /** Named netns (/run/netns) to manage instead of the caller's own: tests and `cluster up` nodes. */
  netns?: string;
  /** nftables table (family ip) for isolation and source NAT, default "tessera_overlay". */
  nftTable?: string;
}
