// UpdateCluster's request (issue 15) checked and turned into the settings change it asks for. One
// field per setting, empty meaning "leave it": a later setting (e.g. autolock) adds its field here
// and to ClusterSettingsChange, and the same call and command carry it.
import { ADMISSION_LEVELS, isAdmissionLevel } from '../../common/resources/admission-levels.js';
import type { ClusterSettingsChange } from '../../common/resources/admission-settings.js';
import type { ClusterUpdateRequest__Output } from '../../proto/gen/tessera/api/v1/ClusterUpdateRequest.js';
import { invalidArgument } from './errors.js';

export function validateClusterUpdate(req: ClusterUpdateRequest__Output): ClusterSettingsChange {
  const change: ClusterSettingsChange = {};
  if (req.defaultAdmission !== '') {
    if (!isAdmissionLevel(req.defaultAdmission))
      throw invalidArgument(
        `cluster update: default admission must be one of ${ADMISSION_LEVELS.join(', ')}, got ${JSON.stringify(req.defaultAdmission.slice(0, 40))}`,
      );
    change.defaultAdmission = req.defaultAdmission;
  }
  if (Object.keys(change).length === 0) throw invalidArgument('cluster update: nothing to change (e.g. --default-admission restricted)');
  return change;
}
