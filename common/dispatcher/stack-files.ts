// The dispatcher protocol's secrets, configs and volume specs (DESIGN.md "Dispatcher"/"Security"):
// both ends of one delta. The manager records what it sent a node (SentFiles) and encodes each
// object (toStackFile); the agent checks each file it receives (parseStackFile) and keeps them in
// memory only (DeliveredFiles). Which files a node gets is the manager's choice
// (control-plane/dispatcher/secret-delivery.ts).
import { z } from 'zod';

import type { StackFile, StackFile__Output } from '../../proto/gen/tessera/dispatcher/v1/StackFile.js';
import { referenceStacks, type StackFileKind } from '../resources/file-references.js';
import type { Config, Secret, Volume, VolumeSpec } from '../resources/types.js';
import { DNS_LABEL } from '../resources/names.js';

export function fileKey(kind: StackFileKind, stack: string, name: string): string {
  return `${kind}/${stack}/${name}`;
}

// ---- manager side --------------------------------------------------------------------------------

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

/** The wire form of one object. */
export function toStackFile(object: FileObject): StackFile {
  const base = { kind: object.kind, stack: object.metadata.stack ?? '', name: object.metadata.name };
  if (object.kind === 'Volume') return { ...base, volumeSpecJson: JSON.stringify(object.spec) };
  return { ...base, data: Buffer.from(object.spec.data, 'base64') };
}

// ---- agent side ----------------------------------------------------------------------------------

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
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
  if (file.stack !== '' && !DNS_LABEL.test(file.stack)) throw new Error(`${where}: invalid stack`);
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
