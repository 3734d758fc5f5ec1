// Public face of the VXLAN overlay for the agent.
export { OverlayDriver } from './overlay-driver.js';
export { BatchSession, BatchCommandError, type BatchLine } from './batch-session.js';
export { overlayBridgeName, overlayVxlanName, overlayVethName } from './names.js';
export type { OverlayAttachOptions, OverlayAttachment, OverlayDriverConfig, OverlayEndpoint, OverlayNetworkSpec, OverlayPeer } from './types.js';
