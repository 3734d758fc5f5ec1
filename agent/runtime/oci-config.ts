// Reads and validates a bundle's config.json into the OciSpec subset the runtime honours.
// Fields outside that subset are dropped in this first cut (see types.ts).

import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CAPABILITY_SETS, isCapabilityName } from './capabilities.js';
import { SECCOMP_ACTIONS, SECCOMP_ARCHITECTURES, SECCOMP_OPERATORS } from './seccomp.js';
import { RLIMIT_NAMES, sysctlProblem } from './security-plan.js';
import { linuxResourcesSchema } from './cgroups/resources.js';
import type { OciSpec } from './types.js';

const uint32 = z.number().int().min(0).max(0xffff_fffe);
const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must be an absolute path');
/** uint64 fields: JSON numbers above 2^53 lose precision but keep their meaning (effectively "no limit"). */
const uint64 = z.number().int().min(0);

const capabilityList = z.array(
  z.string().refine(isCapabilityName, { error: (iss) => `unknown capability '${String(iss.input)}' (expected a CAP_* name such as CAP_CHOWN)` }),
);
const capabilities = z
  .object(
    Object.fromEntries(CAPABILITY_SETS.map((set) => [set, capabilityList.optional()])) as Record<
      (typeof CAPABILITY_SETS)[number],
      z.ZodOptional<typeof capabilityList>
    >,
  )
  .strict();

const rlimit = z
  .object({
    type: z
      .string()
      .refine((t) => RLIMIT_NAMES.includes(t), { error: (iss) => `unknown rlimit type '${String(iss.input)}' (expected one of ${RLIMIT_NAMES.join(', ')})` }),
    hard: uint64,
    soft: uint64,
  })
  .refine((r) => r.soft <= r.hard, 'soft must not exceed hard');

const seccompAction = z.enum(SECCOMP_ACTIONS, { error: `must be one of ${SECCOMP_ACTIONS.join(', ')}` });
const errnoRet = z.number().int().min(1).max(4095);
const seccomp = z.object({
  defaultAction: seccompAction,
  defaultErrnoRet: errnoRet.optional(),
  architectures: z
    .array(z.string().refine((a) => Object.hasOwn(SECCOMP_ARCHITECTURES, a), { error: (iss) => `unknown architecture '${String(iss.input)}'` }))
    .optional(),
  flags: z.array(z.string()).max(0, 'seccomp flags are not supported').optional(),
  listenerPath: z.undefined({ error: 'seccomp notification (listenerPath) is not supported' }).optional(),
  syscalls: z
    .array(
      z.object({
        names: z.array(z.string().regex(/^[a-z0-9_]+$/, 'must be a system call name')).min(1, 'must name at least one system call'),
        action: seccompAction,
        errnoRet: errnoRet.optional(),
        args: z
          .array(
            z.object({
              index: z.number().int().min(0).max(5),
              value: uint64,
              valueTwo: uint64.optional(),
              op: z.enum(SECCOMP_OPERATORS, { error: `must be one of ${SECCOMP_OPERATORS.join(', ')}` }),
            }),
          )
          .optional(),
      }),
    )
    .optional(),
});

const idMappings = z.array(z.object({ containerID: uint32, hostID: uint32, size: z.number().int().min(1).max(0xffff_ffff) })).max(340);

const hook = z.object({
  path: absolutePath,
  args: z.array(z.string()).max(1024).optional(),
  env: z
    .array(z.string().refine((e) => e.indexOf('=') > 0, 'must be NAME=value'))
    .max(1024)
    .optional(),
  timeout: z.number().int().min(1).optional(),
});
const hookList = z.array(hook).max(64).optional();
/** Hooks run in the container's namespaces (createContainer, startContainer) are not implemented. */
const containerHook = z.array(hook).max(0, 'hooks run inside the container are not supported by this runtime').optional();
const hooks = z.object({
  prestart: hookList,
  createRuntime: hookList,
  createContainer: containerHook,
  startContainer: containerHook,
  poststart: hookList,
  poststop: hookList,
});

/** major/minor are required except for a FIFO (runtime-spec config-linux.md#devices). */
const device = z
  .object({
    path: absolutePath.refine((p) => p !== '/' && !p.split('/').some((c) => c === '..' || c === '.'), 'must name a file, without . or .. components'),
    type: z.enum(['c', 'u', 'b', 'p']),
    major: z.number().int().min(0).max(0xfff).optional(),
    minor: z.number().int().min(0).max(0xfffff).optional(),
    fileMode: z.number().int().min(0).max(0o7777).optional(),
    uid: uint32.optional(),
    gid: uint32.optional(),
  })
  .refine((d) => d.type === 'p' || (d.major !== undefined && d.minor !== undefined), 'major and minor are required for c, u and b devices');

const PROPAGATIONS = ['shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate', 'unbindable', 'runbindable'] as const;

const ociSpecSchema = z.object({
  ociVersion: z.string().min(1),
  process: z.object({
    terminal: z.boolean().optional(),
    user: z.object({
      uid: uint32,
      gid: uint32,
      additionalGids: z.array(uint32).optional(),
      umask: z.number().int().min(0).max(0o777).optional(),
      username: z.undefined({ error: 'is Windows-only' }).optional(),
    }),
    args: z.array(z.string()).min(1, 'must name the program to run'),
    env: z.array(z.string().refine((e) => e.includes('='), 'must be NAME=value')).optional(),
    cwd: absolutePath,
    noNewPrivileges: z.boolean().optional(),
    capabilities: capabilities.optional(),
    rlimits: z.array(rlimit).optional(),
    oomScoreAdj: z.number().int().min(-1000).max(1000).optional(),
    apparmorProfile: z.string().max(0, 'AppArmor is not supported by this runtime; remove the field').optional(),
    selinuxLabel: z.string().max(0, 'SELinux is not supported by this runtime; remove the field').optional(),
  }),
  root: z.object({ path: z.string().min(1), readonly: z.boolean().optional() }),
  hostname: z.string().max(64).optional(),
  domainname: z.string().max(64).optional(),
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
      seccomp: seccomp.optional(),
      sysctl: z
        .record(z.string(), z.string())
        .superRefine((sysctls, ctx) => {
          for (const key of Object.keys(sysctls)) {
            const problem = sysctlProblem(key);
            if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: problem });
          }
        })
        .optional(),
      uidMappings: idMappings.optional(),
      gidMappings: idMappings.optional(),
      devices: z.array(device).max(1024).optional(),
      rootfsPropagation: z.enum(PROPAGATIONS).optional(),
      mountLabel: z.string().max(0, 'SELinux mount labels are not supported by this runtime; remove the field').optional(),
    })
    .optional(),
  hooks: hooks.optional(),
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
