// What `tsctl diff` prints for each object, from the server's dry-run plan and the stored objects.
// Pure: the command fetches, this decides and renders.
import { stringify } from 'yaml';
import type { StackObject } from '../../common/resources/types.js';
import { unifiedDiff } from './line-diff.js';

export type PlannedAction = 'created' | 'configured' | 'unchanged' | 'pruned';

export interface ObjectChange {
  kind: string;
  stack: string;
  name: string;
  action: PlannedAction;
  /** The object as stored now (absent for created). */
  current?: StackObject;
  /** The object as the apply would leave it (absent for pruned). */
  planned?: StackObject;
}

/** The user-owned part of an object that apply changes: labels and spec (never status or server metadata). */
function comparable(object: StackObject | undefined): string {
  if (!object) return '';
  const labels = object.metadata.labels;
  return stringify({ ...(labels && Object.keys(labels).length > 0 ? { metadata: { labels } } : {}), spec: object.spec }, { sortMapEntries: true });
}

export function objectLabel(change: Pick<ObjectChange, 'kind' | 'stack' | 'name'>): string {
  return `${change.kind.toLowerCase()}/${change.stack ? `${change.stack}/` : ''}${change.name}`;
}

/** One object's section of the diff output, and whether it is a difference. */
export function renderChange(change: ObjectChange): { text: string; differs: boolean } {
  const label = objectLabel(change);
  if (change.action === 'unchanged') return { text: `${label} unchanged\n`, differs: false };
  const before = change.action === 'created' ? '' : comparable(change.current);
  const after = change.action === 'pruned' ? '' : comparable(change.planned);
  const diff = unifiedDiff(before, after, {
    oldLabel: change.action === 'created' ? '/dev/null' : `${label} (cluster)`,
    newLabel: change.action === 'pruned' ? '/dev/null' : `${label} (files)`,
  });
  // "configured" with no visible change happens when only server-side fields moved; say so plainly.
  return { text: `${label} ${change.action}\n${diff}`, differs: true };
}
