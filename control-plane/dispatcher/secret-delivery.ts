// Which secrets, configs and volume specs a node gets (DESIGN.md "Dispatcher"/"Security"): only
// those its own live tasks use, sent with the tasks that need them and withdrawn when none there
// uses them any more. The selection is pure; the manager reads the objects from the store. How
// they travel and what each side keeps of them is common/dispatcher/stack-files.ts.
import type { FileObject } from '../../common/dispatcher/stack-files.js';
import { referenceStacks, type StackFileKind } from '../../common/resources/file-references.js';
import { isTerminal, type Task } from '../../common/resources/types.js';
import { referencesOf } from '../api/stack-objects.js';

/** One reference a task needs, with the stacks it may resolve in (its own first, then the default). */
export interface NeededFile {
  kind: StackFileKind;
  name: string;
  stacks: string[];
}

/** A task still needs its files while it is meant to run and has not ended. */
function needsFiles(task: Task): boolean {
  return task.desiredState === 'running' && !isTerminal(task.status.state);
}

/** Pure: the distinct references of the node's live tasks, in a stable order. */
export function filesNeededBy(tasks: readonly Task[]): NeededFile[] {
  const out = new Map<string, NeededFile>();
  for (const task of tasks) {
    if (!needsFiles(task)) continue;
    const stacks = referenceStacks(task.spec.serviceStack);
    for (const ref of referencesOf(task.spec.spec)) {
      const id = `${ref.kind}/${stacks.join(',')}/${ref.name}`;
      if (!out.has(id)) out.set(id, { kind: ref.kind, name: ref.name, stacks });
    }
  }
  return [...out.values()].sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
}

/**
 * Resolves the needed references with `lookup` (the first stack that has the object wins) and
 * returns the objects. A reference that resolves nowhere is left out: the agent then fails the task
 * naming it.
 */
export async function resolveNeeded(
  needed: readonly NeededFile[],
  lookup: (kind: StackFileKind, stack: string, name: string) => Promise<FileObject | undefined>,
): Promise<FileObject[]> {
  const out: FileObject[] = [];
  for (const ref of needed) {
    for (const stack of ref.stacks) {
      const object = await lookup(ref.kind, stack, ref.name);
      if (object) {
        out.push(object);
        break;
      }
    }
  }
  return out;
}
