// cgroups for containers: v1 and v2 drivers behind one interface, chosen at start-up.

export { detectCgroupMode, openCgroupDriver, V2_REQUIRED_CONTROLLERS, type CgroupMode } from './detect.js';
export { wholeDisksBacking, type BlockDevice } from './block-devices.js';
export { normalizeCgroupsPath, type CgroupCreateOptions, type CgroupDriver, type CgroupRecord } from './driver.js';
export { DEFAULT_ALLOWED_DEVICES } from './devices.js';
export { linuxResourcesSchema, validateResources } from './resources.js';
export { CgroupsV1 } from './v1.js';
export { CgroupsV2 } from './v2.js';
