// Where typed objects live in the key space. One layout for every backend, so a store written by
// one manager version is read the same way by the next, and a prefix range lists one kind (or one
// kind in one stack) without touching anything else.
//
//   /tessera/objects/<kind>/<stack or "_">/<name>
//
// <kind> is the kind in lower case ("service", "task", "node"). The default stack "" is spelled
// "_" so the key keeps a fixed number of segments; names and stacks are validated elsewhere never
// to contain "/" and never to be "_".
import type { Kind } from '../../common/resources/types.js';

export const OBJECTS_PREFIX = '/tessera/objects/';
const DEFAULT_STACK_SEGMENT = '_';

function kindSegment(kind: Kind): string {
  return kind.toLowerCase();
}

function stackSegment(stack: string | undefined): string {
  return stack === undefined || stack === '' ? DEFAULT_STACK_SEGMENT : stack;
}

/** The key of one object. */
export function objectKey(kind: Kind, stack: string | undefined, name: string): string {
  return `${OBJECTS_PREFIX}${kindSegment(kind)}/${stackSegment(stack)}/${name}`;
}

/** The prefix of every object of a kind, or of a kind within one stack when stack is given. */
export function kindPrefix(kind: Kind, stack?: string): string {
  const base = `${OBJECTS_PREFIX}${kindSegment(kind)}/`;
  return stack === undefined ? base : `${base}${stackSegment(stack)}/`;
}

export interface ParsedObjectKey {
  /** Kind segment as stored (lower case). */
  kindSegment: string;
  /** "" for the default stack. */
  stack: string;
  name: string;
}

/** The inverse of objectKey; undefined for keys outside the object layout. */
export function parseObjectKey(key: string): ParsedObjectKey | undefined {
  if (!key.startsWith(OBJECTS_PREFIX)) return undefined;
  const parts = key.slice(OBJECTS_PREFIX.length).split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  const [kind, stack, name] = parts as [string, string, string];
  return { kindSegment: kind, stack: stack === DEFAULT_STACK_SEGMENT ? '' : stack, name };
}
