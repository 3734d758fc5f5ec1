// `tsctl cluster update --default-admission LEVEL`: cluster-wide settings, for admins (the server
// decides; this only asks). Every setting is one option of ClusterUpdateOptions and one field of
// the request, so a later setting (e.g. --autolock) is an option, a field and a line of output.
import { type Command, InvalidArgumentError } from 'commander';

import { ADMISSION_LEVELS, isAdmissionLevel, type AdmissionLevel } from '../../common/resources/admission-levels.js';
import type { ClusterUpdateRequest } from '../../proto/gen/tessera/api/v1/ClusterUpdateRequest.js';
import type { ClusterUpdateResponse__Output } from '../../proto/gen/tessera/api/v1/ClusterUpdateResponse.js';
import type { WithClient } from '../with-client.js';
import { AUTOLOCK_OPTION_HELP, parseAutolockFlag, updateAutolock } from './cluster-autolock.js';

/** What `cluster update` was asked to change; an absent field is left as it is. */
export interface ClusterUpdateOptions {
  defaultAdmission?: AdmissionLevel;
  /** Not a field of the request: autolock has a service of its own (cluster-autolock.ts), which a locked manager serves alone. */
  autolock?: boolean;
}

function admissionLevel(value: string): AdmissionLevel {
  if (!isAdmissionLevel(value)) throw new InvalidArgumentError(`expected ${ADMISSION_LEVELS.join(', ')}, got ${JSON.stringify(value.slice(0, 40))}`);
  return value;
}

/** The request for `options`; throws when it would change nothing. */
export function clusterUpdateRequest(options: ClusterUpdateOptions): ClusterUpdateRequest {
  const request: ClusterUpdateRequest = {};
  if (options.defaultAdmission !== undefined) request.defaultAdmission = options.defaultAdmission;
  if (Object.keys(request).length === 0) throw new Error('cluster update: nothing to change; give --default-admission LEVEL or --autolock true|false');
  return request;
}

/** The settings as the server reports them after the change, one line each. */
export function clusterUpdateLines(response: ClusterUpdateResponse__Output): string[] {
  return [`default admission level: ${response.defaultAdmission}`];
}

export function registerClusterUpdateCommand(cluster: Command, withClient: WithClient): void {
  cluster
    .command('update')
    .description('change cluster-wide settings (admins only)')
    .option(
      '--default-admission <level>',
      `the least admission level every stack is held to: ${ADMISSION_LEVELS.join(', ')} (operators are never held to less than baseline)`,
      admissionLevel,
    )
    .option('--autolock <true|false>', AUTOLOCK_OPTION_HELP, parseAutolockFlag)
    .action(async (options: ClusterUpdateOptions, command: Command) => {
      const { autolock, ...settings } = options;
      if (autolock === undefined || Object.keys(settings).length > 0) {
        const request = clusterUpdateRequest(settings);
        await withClient(async (client) => {
          for (const line of clusterUpdateLines(await client.updateCluster(request))) process.stdout.write(`${line}\n`);
        });
      }
      if (autolock !== undefined) for (const line of await updateAutolock(command, autolock)) process.stdout.write(`${line}\n`);
    });
}
