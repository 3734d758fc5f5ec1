// Public face of node networking for the agent.
export { BridgeNetwork } from './node-network.js';
export { Ipam, IpamExhaustedError, type IpamState } from './ipam.js';
export { NetworkInputError } from '../../common/network/ipv4.js';
export { CommandError } from './exec.js';
export type { Attachment, NodeNetwork, NodeNetworkConfig, PublishedPort } from './types.js';
