// The stored admission settings (issue 15): the cluster default, in the cluster settings object
// that other cluster-wide switches may join, and a stack's level once declared. Both are JSON
// objects in the replicated store; this parses and updates their text. Pure: the store I/O is the
// API server's (control-plane/api/admission-store.ts). A value that does not parse refuses the
// Apply rather than admitting at a looser level than intended.
import { isAdmissionLevel, type AdmissionLevel } from './admission-levels.js';

/** Cluster-wide settings an admin changes with `tsctl cluster update`; keys this version does not know are kept as they are. */
export interface ClusterSettings {
  /** Absent: DEFAULT_CLUSTER_ADMISSION. */
  defaultAdmission?: AdmissionLevel;
}

/** A stack's own settings, kept after its objects declared them. */
export interface StackSettings {
  admission?: AdmissionLevel;
}

/** The change `tsctl cluster update` asks for: each field absent leaves that setting as it is. */
export interface ClusterSettingsChange {
  defaultAdmission?: AdmissionLevel;
}

/** The stored text as an object; `what` names the key in the error. */
function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${what}: not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what}: not a JSON object`);
  return value as Record<string, unknown>;
}

function levelField(object: Record<string, unknown>, field: string, what: string): AdmissionLevel | undefined {
  const value = object[field];
  if (value === undefined) return undefined;
  if (!isAdmissionLevel(value)) throw new Error(`${what}: ${field} is not an admission level`);
  return value;
}

export function parseClusterSettings(text: string | undefined, what: string): ClusterSettings {
  if (text === undefined) return {};
  const defaultAdmission = levelField(parseObject(text, what), 'defaultAdmission', what);
  return defaultAdmission ? { defaultAdmission } : {};
}

export function parseStackSettings(text: string | undefined, what: string): StackSettings {
  if (text === undefined) return {};
  const admission = levelField(parseObject(text, what), 'admission', what);
  return admission ? { admission } : {};
}

/**
 * The stored text with `change` made, every other key kept (a newer manager's settings survive an
 * older one's write). A stored value that is not a JSON object is replaced: it holds nothing to
 * keep, and an admin's update is the way out of the refusals it causes.
 */
export function updateClusterSettingsText(text: string | undefined, change: ClusterSettingsChange, what: string): string {
  let object: Record<string, unknown> = {};
  try {
    if (text !== undefined) object = parseObject(text, what);
  } catch {
    // Deliberately replaced, as said above.
  }
  return JSON.stringify({ ...object, ...change });
}

export function updateStackSettingsText(text: string | undefined, admission: AdmissionLevel, what: string): string {
  const object = text === undefined ? {} : parseObject(text, what);
  return JSON.stringify({ ...object, admission });
}
