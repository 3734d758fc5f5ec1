// Single-node networking: one bridge per node, a veth per container, nftables DNAT for published ports.

export interface NodeNetworkConfig {
  /** Linux bridge name, e.g. "tessera0". Tests use a unique one. */
  bridge: string;
  /** Node-local container subnet in CIDR form, e.g. "10.213.0.0/24"; .1 is the gateway. */
  subnet: string;
  /** nftables table name (family ip), e.g. "tessera". */
  nftTable: string;
  /** Directory for lease state, so addresses survive a tsd restart. */
  stateDir: string;
  /**
   * Named network namespace (under /run/netns) to manage instead of the caller's own: nodes of
   * `tsctl cluster up` and integration tests run a whole node inside one. Absent in production.
   */
  netns?: string;
}

export interface Attachment {
  containerId: string;
  /** Container address without prefix length. */
  address: string;
  hostVeth: string;
}

export interface PublishedPort {
  published: number;
  target: number;
  protocol: 'tcp' | 'udp';
}

export interface NodeNetwork {
  /** Creates the bridge, enables forwarding and installs the base nftables table. Idempotent. */
  setup(): Promise<void>;
  /** Gives the container (by its init pid) a veth on the bridge, an address and a default route. */
  attach(containerId: string, pid: number): Promise<Attachment>;
  /** Removes the container's veth and releases its address. Idempotent. */
  detach(containerId: string): Promise<void>;
  /**
   * Sets the full set of published ports for one service: DNAT from every local address
   * (127.0.0.1 included) to the given backend addresses, load-balanced. An empty backend list
   * or empty ports removes the service's rules.
   */
  publish(serviceKey: string, ports: PublishedPort[], backends: string[]): Promise<void>;
  /** Removes the bridge, all veths and the nftables table. */
  teardown(): Promise<void>;
}
