// `tsctl get KIND -w`: after the table, one line per change of that kind as it happens, until
// interrupted. The watch starts at a revision read before the table's lists, so no change after
// the table is missed (one just before it may show twice); with several managers the client's
// watch goes on at another manager from its last revision (client.ts, watch-resume.ts).
import type { AnyObject } from '../../common/resources/types.js';
import type { ApiClient } from '../client.js';
import type { WatchEvent__Output } from '../../proto/gen/tessera/api/v1/WatchEvent.js';

/** The kinds `get -w` follows. */
export const WATCHABLE_KINDS = ['Service', 'Task', 'Node'] as const;
export type WatchableKind = (typeof WATCHABLE_KINDS)[number];

export function isWatchable(kind: string): kind is WatchableKind {
  return (WATCHABLE_KINDS as readonly string[]).includes(kind);
}

/** The store's revision now, read through a List of the kind (the API has no cheaper way to ask). */
export async function revisionNow(client: ApiClient, kind: WatchableKind): Promise<number> {
  return Number((await client.list({ kind, allStacks: true })).revision);
}

/** One change as a line: what happened, to which object, and its state where it has one. */
export function changeLine(event: WatchEvent__Output): string {
  let object: AnyObject;
  try {
    object = JSON.parse(event.objectJson) as AnyObject;
  } catch {
    return `${event.type} (revision ${event.revision}): the server sent an object that is not JSON`;
  }
  const stack = object.metadata.stack ? `${object.metadata.stack}/` : '';
  const state = 'status' in object && object.status && typeof object.status === 'object' && 'state' in object.status ? String(object.status.state) : '';
  return `${event.type.padEnd(8)}  ${object.kind.toLowerCase()}/${stack}${object.metadata.name}${state ? `  ${state}` : ''}`;
}

/** Whether a change belongs to what `get KIND [NAME] [--stack S]` shows. */
function shown(object: AnyObject, name: string | undefined, stack: string | undefined): boolean {
  if (stack !== undefined && (object.metadata.stack ?? '') !== stack) return false;
  if (name === undefined) return true;
  if (object.kind === 'Task') return object.spec.serviceName === name || `${object.spec.serviceStack}/${object.spec.serviceName}` === name;
  return object.metadata.name === name || `${object.metadata.stack ?? ''}/${object.metadata.name}` === name;
}

/** Prints every change of `kind` after revision `since` until the process is interrupted. */
export async function printChanges(
  client: ApiClient,
  kind: WatchableKind,
  since: number,
  filter: { name?: string; stack?: string },
  out: (line: string) => void,
): Promise<void> {
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await client.watch(
      { kind, allStacks: true, fromRevision: since + 1 },
      (event) => {
        let object: AnyObject | undefined;
        try {
          object = JSON.parse(event.objectJson) as AnyObject;
        } catch {
          object = undefined; // changeLine says so
        }
        if (object === undefined || shown(object, filter.name, filter.stack)) out(changeLine(event));
      },
      abort.signal,
    );
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
