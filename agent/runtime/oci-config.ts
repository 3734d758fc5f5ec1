// Reads and validates a bundle's config.json into the OciSpec subset the runtime honours.
// Fields outside that subset are dropped in this first cut (see types.ts).

import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { linuxResourcesSchema } from './cgroups/resources.js';
import type { OciSpec } from './types.js';

const uint32 = z.number().int().min(0).max(0xffff_fffe);
const absolutePath = z.string().min(1).refine((p) => p.startsWith('/'), 'must be an absolute path');

const ociSpecSchema = z.object({
  ociVersion: z.string().min(1),
  process: z.object({
    terminal: z.boolean().optional(),
    user: z.object({ uid: uint32, gid: uint32, additionalGids: z.array(uint32).optional() }),
    args: z.array(z.string()).min(1, 'must name the program to run'),
    env: z.array(z.string().refine((e) => e.includes('='), 'must be NAME=value')).optional(),
    cwd: absolutePath,
    noNewPrivileges: z.boolean().optional(),
  }),
  root: z.object({ path: z.string().min(1), readonly: z.boolean().optional() }),
  hostname: z.string().max(64).optional(),
  mounts: z
    .array(
      z.object({
        destination: absolutePath,
        type: z.string().optional(),
        source: z.string().optional(),
        options: z.array(z.string()).optional(),
      }),
    )
    .optional(),
  linux: z
    .object({
      namespaces: z
        .array(
          z.object({
            type: z.enum(['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup']),
            path: z.string().optional(),
          }),
        )
        .optional(),
      cgroupsPath: z.string().optional(),
      resources: linuxResourcesSchema.optional(),
      maskedPaths: z.array(absolutePath).optional(),
      readonlyPaths: z.array(absolutePath).optional(),
    })
    .optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** Validates a parsed config.json; errors name `source` and the field path. */
export function parseOciSpec(value: unknown, source: string): OciSpec {
  const result = ociSpecSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new Error(`${source}: invalid OCI config: ${problems.join('; ')}`);
  }
  return result.data;
}

/** Reads <bundleDir>/config.json. */
export async function readBundleConfig(bundleDir: string): Promise<OciSpec> {
  const file = path.join(bundleDir, 'config.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  return parseOciSpec(value, file);
}
