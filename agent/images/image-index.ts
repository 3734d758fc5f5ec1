// The list of named images: one JSON file per reference under <root>/images/, written to a
// temporary file and renamed, so concurrent writers (tsd, `tsctl image load`) never see halves.
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ImageRecord } from '../../common/images/types.js';
import { isNotFound } from '../fs-errors.js';

const recordSchema = z.object({
  reference: z.string(),
  digest: z.string(),
  indexDigest: z.string().optional(),
  configDigest: z.string(),
  layers: z.array(z.string()),
  size: z.number(),
  config: z.object({
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    env: z.array(z.string()).optional(),
    workingDir: z.string().optional(),
    user: z.string().optional(),
    exposedPorts: z.array(z.string()).optional(),
    healthcheck: z
      .object({
        test: z.array(z.string()),
        intervalMs: z.number().optional(),
        timeoutMs: z.number().optional(),
        startPeriodMs: z.number().optional(),
        startIntervalMs: z.number().optional(),
        retries: z.number().optional(),
      })
      .optional(),
  }),
  createdAt: z.string(),
  buildCacheKeys: z.array(z.string().regex(/^sha256:[a-f0-9]{64}$/)).optional(),
});

export class ImageIndexStore {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'images');
  }

  private file(reference: string): string {
    return join(this.dir, `${createHash('sha256').update(reference).digest('hex')}.json`);
  }

  async get(reference: string): Promise<ImageRecord | undefined> {
    return this.read(this.file(reference));
  }

  async put(record: ImageRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
    await rename(temp, this.file(record.reference));
  }

  async remove(reference: string): Promise<void> {
    await rm(this.file(reference), { force: true });
  }

  async list(): Promise<ImageRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      // No images directory yet: no image was ever stored. Anything else is a failure to report.
      if (isNotFound(error)) return [];
      throw new Error(`image index ${this.dir}: ${(error as Error).message}`, { cause: error });
    }
    const records: ImageRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
      const record = await this.read(join(this.dir, name));
      if (record) records.push(record);
    }
    return records.sort((a, b) => a.reference.localeCompare(b.reference));
  }

  private async read(path: string): Promise<ImageRecord | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      // Only a missing record means "no such image"; an unreadable one must not pass for that.
      if (isNotFound(error)) return undefined;
      throw new Error(`image record ${path}: ${(error as Error).message}`, { cause: error });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new Error(`image record ${path} is damaged: ${(error as Error).message}`, { cause: error });
    }
    const parsed = recordSchema.safeParse(json);
    if (!parsed.success) throw new Error(`image record ${path} is damaged: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const { healthcheck, ...config } = parsed.data.config;
    const { buildCacheKeys, ...fields } = parsed.data;
    const record: ImageRecord = { ...fields, config: { ...config } };
    if (buildCacheKeys !== undefined) record.buildCacheKeys = buildCacheKeys;
    if (healthcheck) record.config.healthcheck = stripUndefined(healthcheck);
    return record;
  }
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
