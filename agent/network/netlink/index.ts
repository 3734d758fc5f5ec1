export * from './constants.js';
export { parseLink, type LinkInfo } from './decode.js';
export * from './messages.js';
export { NetlinkError, NetlinkSocket, netlinkBatch, netlinkBatchSync, describeNamespace, type NetlinkOutcome, type NetlinkRequest } from './socket.js';
export { configureContainerInterface, type ContainerInterfaceConfig } from './container-interface.js';
export { createContainerVeth, deleteLinkNamed, type ContainerVethConfig } from './veth.js';
