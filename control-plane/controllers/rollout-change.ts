// A one-line summary of what a spec change changed, for `tsctl rollout history`: the image with its
// old and new value (what users look for first), then the names of the other fields that differ.
import type { ServiceSpec } from '../../common/resources/types.js';
import { canonicalJson } from '../store/object-store.js';

/** Fields that do not make a new task; a change to them alone is not a rollout. */
const NOT_TASK_FIELDS = new Set(['replicas', 'updateConfig', 'rollbackConfig']);

export function describeSpecChange(before: ServiceSpec, after: ServiceSpec): string {
  const parts: string[] = [];
  if (before.image !== after.image) parts.push(`image ${before.image} → ${after.image}`);
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const changed = [...keys]
    .filter((k) => k !== 'image' && !NOT_TASK_FIELDS.has(k))
    .filter((k) => canonicalJson((before as unknown as Record<string, unknown>)[k]) !== canonicalJson((after as unknown as Record<string, unknown>)[k]))
    .sort();
  if (changed.length > 0) parts.push(`${changed.join(', ')} changed`);
  return parts.length > 0 ? parts.join('; ') : 'no change to the task template';
}
