// Which secrets, configs and volume specs a node gets (DESIGN.md "Dispatcher"/"Security"): only
// those its own live tasks use, sent with the tasks that need them and withdrawn when none there
// uses them any more. The selection and the bookkeeping are pure; the manager reads the objects
// from the store, the agent keeps what it received in memory only (DeliveredFiles).
import { z } from 'zod';

import type { StackFile, StackFile__Output } from '../../proto/gen/tessera/dispatcher/v1/StackFile.js';
import { referenceStacks, referencesOf, type StackFileKind } from '../api/stack-objects.js';
import { isTerminal, type Config, type Secret, type Task, type Volume, type VolumeSpec } from '../resources/types.js';

export function fileKey(kind: StackFileKind, stack: string, name: string): string {
  return `${kind}/${stack}/${name}`;
}

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
    const stacks = referenceStacks(task.spec.serviceStack ?? '');
    for (const ref of referencesOf(task.spec.spec)) {
      const id = `${ref.kind}/${stacks.join(',')}/${ref.name}`;
      if (!out.has(id)) out.set(id, { kind: ref.kind, name: ref.name, stacks });
    }
  }
  return [...out.values()].sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
}

export type FileObject = Secret | Config | Volume;

/** What a node has been sent: file key → the object as sent. */
export class SentFiles {
  private readonly sent = new Map<string, FileObject>();

  /**
   * The object as last sent, while the node still has it. Secrets, configs and volume options are
   * immutable and cannot be deleted while a task uses them, so the dispatcher need not read the
   * store again for what a node already holds.
   */
  held(kind: StackFileKind, stack: string, name: string): FileObject | undefined {
    return this.sent.get(fileKey(kind, stack, name));
  }

  /** The files to send (new or changed) and the keys to withdraw, given everything the node needs now; records them as sent. */
  next(current: readonly FileObject[]): { send: FileObject[]; withdraw: string[] } {
    const send: FileObject[] = [];
    const seen = new Set<string>();
    for (const object of current) {
      const key = fileKey(object.kind, object.metadata.stack ?? '', object.metadata.name);
      if (seen.has(key)) continue;
      seen.add(key);
      const version = object.metadata.resourceVersion ?? '';
      if (this.sent.get(key)?.metadata.resourceVersion !== version || !this.sent.has(key)) {
        send.push(object);
        this.sent.set(key, object);
      }
    }
    const withdraw = [...this.sent.keys()].filter((k) => !seen.has(k));
    for (const key of withdraw) this.sent.delete(key);
    return { send, withdraw };
  }
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

/** The wire form of one object. */
export function toStackFile(object: FileObject): StackFile {
  const base = { kind: object.kind, stack: object.metadata.stack ?? '', name: object.metadata.name };
  if (object.kind === 'Volume') return { ...base, volumeSpecJson: JSON.stringify(object.spec) };
  return { ...base, data: Buffer.from(object.spec.data, 'base64') };
}

// ---- agent side ----------------------------------------------------------------------------------

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const STACK = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$/;
const volumeSpecSchema = z.strictObject({
  driver: z.literal('local').optional(),
  driverOpts: z.record(z.string(), z.string()).optional(),
});
const MAX_FILE_BYTES = 500 * 1024;

export interface DeliveredFile {
  kind: StackFileKind;
  stack: string;
  name: string;
  /** Secret/Config content. */
  data: Buffer;
  /** Volume options. */
  volume?: VolumeSpec;
}

/** Validates one received file; throws with what was wrong. */
export function parseStackFile(file: StackFile__Output): DeliveredFile {
  const where = `file ${file.kind}/${file.stack}/${file.name}`;
  if (file.kind !== 'Secret' && file.kind !== 'Config' && file.kind !== 'Volume') throw new Error(`${where}: unknown kind`);
  if (!NAME.test(file.name)) throw new Error(`${where}: invalid name`);
  if (!STACK.test(file.stack)) throw new Error(`${where}: invalid stack`);
  if (file.kind === 'Volume') {
    let raw: unknown;
    try {
      raw = JSON.parse(file.volumeSpecJson);
    } catch (err) {
      throw new Error(`${where}: volume spec is not JSON: ${(err as Error).message}`);
    }
    const spec = volumeSpecSchema.safeParse(raw);
    if (!spec.success) throw new Error(`${where}: invalid volume spec: ${spec.error.issues[0]?.message ?? 'invalid'}`);
    return { kind: 'Volume', stack: file.stack, name: file.name, data: Buffer.alloc(0), volume: spec.data as VolumeSpec };
  }
  if (file.data.length > MAX_FILE_BYTES) throw new Error(`${where}: ${file.data.length} bytes exceed ${MAX_FILE_BYTES}`);
  return { kind: file.kind, stack: file.stack, name: file.name, data: Buffer.from(file.data) };
}

/** What the agent may ask of the delivered files: the object a task's reference resolves to. */
export interface FileLookup {
  resolve(kind: StackFileKind, taskStack: string, name: string): DeliveredFile | undefined;
}

/** Agent side: the node's delivered files, in memory only, from a full set followed by deltas. */
export class DeliveredFiles implements FileLookup {
  private readonly files = new Map<string, DeliveredFile>();

  apply(full: boolean, upserts: readonly DeliveredFile[], removed: readonly string[]): void {
    if (full) this.clear();
    for (const file of upserts) this.files.set(fileKey(file.kind, file.stack, file.name), file);
    for (const key of removed) {
      const file = this.files.get(key);
      // Overwrite secret bytes before letting go of them, so they do not linger in freed memory.
      file?.data.fill(0);
      this.files.delete(key);
    }
  }

  resolve(kind: StackFileKind, taskStack: string, name: string): DeliveredFile | undefined {
    for (const stack of referenceStacks(taskStack)) {
      const file = this.files.get(fileKey(kind, stack, name));
      if (file) return file;
    }
    return undefined;
  }

  keys(): string[] {
    return [...this.files.keys()].sort();
  }

  private clear(): void {
    for (const file of this.files.values()) file.data.fill(0);
    this.files.clear();
  }
}
