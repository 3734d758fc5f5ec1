export * from './types.js';
export { RaftNode, validateConfig } from './raft-node.js';
export { MemoryStorage } from './memory-storage.js';
export { encodeConfChange, decodeConfChange, applyChange } from './conf-change.js';
export { validateMessage } from './validate-message.js';
