// The objects a stack is made of, fetched kind by kind, and their removal (`tsctl stack rm`).
// A kind the server does not know yet (it learns Secret, Config and Volume over time) simply has
// no objects, so these commands work against older and newer servers alike.
import * as grpc from '@grpc/grpc-js';

import type { StackKind, StackObject, Task } from '../../common/resources/types.js';
import { STACK_KINDS } from '../../common/resources/types.js';
import { ApiCallError, type ApiClient } from '../client.js';

function unknownKind(err: unknown): boolean {
  return err instanceof ApiCallError && err.code === grpc.status.INVALID_ARGUMENT && /unknown kind/i.test(err.message);
}

/** Objects of one kind, in one stack or (stack undefined) in all; [] for a kind the server lacks. */
export async function listKind<T extends StackObject | Task>(client: ApiClient, kind: T['kind'], stack: string | undefined): Promise<T[]> {
  try {
    const res = await client.list(stack === undefined ? { kind, allStacks: true } : { kind, stack });
    return res.objectsJson.map((j) => JSON.parse(j) as T);
  } catch (err) {
    if (unknownKind(err)) return [];
    throw err;
  }
}

/** Every stack object (services, networks, volumes, secrets, configs) of a stack, or of all stacks. */
export async function listStackObjects(client: ApiClient, stack: string | undefined): Promise<StackObject[]> {
  const all: StackObject[] = [];
  for (const kind of STACK_KINDS) all.push(...(await listKind<StackObject>(client, kind, stack)));
  return all;
}

export function stackNotFound(name: string): Error {
  return new Error(`nothing found in stack "${name}" (no services, networks, volumes, secrets or configs)`);
}

// Services go first so their tasks stop; what the tasks used goes once they are gone.
const REMOVAL_ORDER: readonly StackKind[] = ['Service', 'Secret', 'Config', 'Network', 'Volume'];

export interface RemoveOptions {
  detach: boolean;
  timeoutMs: number;
  out: (line: string) => void;
  pollMs?: number;
}

async function deleteObjects(client: ApiClient, objects: readonly StackObject[], out: (line: string) => void): Promise<void> {
  if (objects.length === 0) return;
  for (const o of objects) out(`Removing ${o.kind.toLowerCase()} ${o.metadata.stack}_${o.metadata.name}`);
  await client.delete({ refs: objects.map((o) => ({ kind: o.kind, stack: o.metadata.stack ?? '', name: o.metadata.name })) });
}

async function waitForNoTasks(client: ApiClient, stack: string, options: RemoveOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const tasks = await listKind<Task>(client, 'Task', stack);
    if (tasks.length === 0) return;
    if (Date.now() >= deadline) {
      const states = tasks.map((t) => `${t.metadata.name} (${t.status.state})`).join(', ');
      throw new Error(`stack "${stack}": ${tasks.length} task(s) still there after ${options.timeoutMs / 1000}s: ${states}`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 300));
  }
}

/**
 * Removes every object of each named stack. Without detach, waits for the services' tasks to be
 * gone before removing the networks, secrets, configs and volumes they used. Stacks that have no
 * objects are reported together at the end (the others are still removed).
 */
export async function removeStacks(client: ApiClient, names: readonly string[], options: RemoveOptions): Promise<void> {
  const missing: string[] = [];
  for (const name of names) {
    const objects = await listStackObjects(client, name);
    if (objects.length === 0 && (await listKind<Task>(client, 'Task', name)).length === 0) {
      missing.push(name);
      continue;
    }
    const ofKind = (kind: StackKind) => objects.filter((o) => o.kind === kind);
    if (options.detach) {
      for (const kind of REMOVAL_ORDER) await deleteObjects(client, ofKind(kind), options.out);
      continue;
    }
    await deleteObjects(client, ofKind('Service'), options.out);
    await waitForNoTasks(client, name, options);
    for (const kind of REMOVAL_ORDER.slice(1)) await deleteObjects(client, ofKind(kind), options.out);
  }
  if (missing.length === 1) throw stackNotFound(missing[0]!);
  if (missing.length > 1) throw new Error(`nothing found in stacks ${missing.map((m) => `"${m}"`).join(', ')}`);
}
