// The admission levels' side of the store (issue 15): the cluster settings object and each stack's
// settings, read for an Apply and written with it in its one transaction, and the cluster default's
// compare-and-swap for `tsctl cluster update`. Kept apart from the cluster's identity meta
// (/tessera/cluster/, control-plane/ca/), which carries trust, not policy. The decisions are
// common/resources/admission*.ts's.
import * as grpc from '@grpc/grpc-js';

import { changeStackLevel, decideLevel, DEFAULT_CLUSTER_ADMISSION, type AdmissionLevel, type AdmissionRole } from '../../common/resources/admission-levels.js';
import { admissionProblems, type AdmissionObject } from '../../common/resources/admission.js';
import {
  parseClusterSettings,
  parseStackSettings,
  updateClusterSettingsText,
  updateStackSettingsText,
  type ClusterSettings,
  type ClusterSettingsChange,
} from '../../common/resources/admission-settings.js';
import type { Compare, Store, TxnOp } from '../store/store.js';
import { ApiError } from './errors.js';

export const CLUSTER_SETTINGS_KEY = '/tessera/settings/cluster';
const STACK_SETTINGS_PREFIX = '/tessera/settings/stacks/';
const MAX_CAS_ATTEMPTS = 10;

/** The default stack "" is spelled "_", as in object keys (store/keys.ts); stack names are DNS labels, never "_". */
export function stackSettingsKey(stack: string): string {
  return `${STACK_SETTINGS_PREFIX}${stack === '' ? '_' : stack}`;
}

/** The cluster default in force: the stored one, or DEFAULT_CLUSTER_ADMISSION. */
export function clusterDefaultOf(settings: ClusterSettings): AdmissionLevel {
  return settings.defaultAdmission ?? DEFAULT_CLUSTER_ADMISSION;
}

/**
 * The cluster default for ClusterInfo. A settings value that does not parse is reported, not
 * thrown: ClusterInfo is how a joining manager starts, and Apply refuses on such a value anyway.
 */
export async function describeClusterDefault(store: Store): Promise<string> {
  const kv = await store.get(CLUSTER_SETTINGS_KEY);
  try {
    return clusterDefaultOf(parseClusterSettings(kv?.value, CLUSTER_SETTINGS_KEY));
  } catch (err) {
    return `unreadable (${(err as Error).message})`;
  }
}

/** Changes the cluster settings by compare-and-swap on the key's revision; returns them as written. */
export async function updateClusterSettings(store: Store, change: ClusterSettingsChange): Promise<ClusterSettings> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const kv = await store.get(CLUSTER_SETTINGS_KEY);
    const value = updateClusterSettingsText(kv?.value, change, CLUSTER_SETTINGS_KEY);
    const response = await store.txn({
      compare: [{ key: CLUSTER_SETTINGS_KEY, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 }],
      success: [{ type: 'put', key: CLUSTER_SETTINGS_KEY, value }],
    });
    if (response.succeeded) return parseClusterSettings(value, CLUSTER_SETTINGS_KEY);
  }
  throw new ApiError(grpc.status.ABORTED, 'cluster update: the cluster settings kept changing underneath; try again');
}

export interface AdmissionRequest {
  role: AdmissionRole;
  objects: readonly AdmissionObject[];
  /** Stack → the level the Apply's objects declare (declaredStackLevels). */
  declared: ReadonlyMap<string, AdmissionLevel>;
}

/**
 * Decides each object's level from the caller's role, the cluster default and its stack's level,
 * and returns every refusal (a stack level the caller may not set, fields the level does not
 * allow). Adds to the Apply's transaction a compare on each settings key it read, so a default or
 * stack level changed meanwhile makes the Apply plan again, and a put for each stack level declared
 * anew: the objects and their stack's level are written together or not at all.
 */
export async function planAdmission(store: Store, request: AdmissionRequest, compare: Compare[], success: TxnOp[]): Promise<string[]> {
  const clusterKv = await store.get(CLUSTER_SETTINGS_KEY);
  compare.push({ key: CLUSTER_SETTINGS_KEY, target: 'modRevision', op: '=', value: clusterKv?.modRevision ?? 0 });
  const clusterDefault = clusterDefaultOf(parseClusterSettings(clusterKv?.value, CLUSTER_SETTINGS_KEY));
  const stacks = new Set([...request.objects.map((o) => o.metadata.stack ?? ''), ...request.declared.keys()]);
  const refusals: string[] = [];
  const levels = new Map<string, AdmissionLevel | undefined>();
  for (const stack of [...stacks].sort()) {
    const key = stackSettingsKey(stack);
    const kv = await store.get(key);
    compare.push({ key, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 });
    const stored = parseStackSettings(kv?.value, key).admission;
    const requested = request.declared.get(stack);
    const change = changeStackLevel({ stack, role: request.role, ...(stored ? { stored } : {}), ...(requested ? { requested } : {}) });
    if (!change.allowed) {
      refusals.push(change.reason);
      continue;
    }
    levels.set(stack, change.level);
    if (change.write && change.level) success.push({ type: 'put', key, value: updateStackSettingsText(kv?.value, change.level, key) });
  }
  for (const object of request.objects) {
    const stack = object.metadata.stack ?? '';
    const stackLevel = levels.get(stack);
    const decision = decideLevel({ role: request.role, clusterDefault, stack, ...(stackLevel ? { stackLevel } : {}) });
    refusals.push(...admissionProblems(object, decision));
  }
  return refusals;
}
