// Validation of OCI linux.resources. Shared by the config.json parser and the cgroup drivers, so a
// bad value is refused before any cgroup directory exists, with the field named.

import { z } from 'zod';
import type { LinuxResources } from '../types.js';

const int = z.number().int();
const deviceNumber = int.min(0).max(0xffff_ffff);
/** -1 means "unlimited" for most byte limits in the OCI spec. */
const bytesOrUnlimited = int.refine((n) => n === -1 || n > 0, 'must be a positive number of bytes or -1 (unlimited)');
const blkioWeight = int.min(10).max(1000);

const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
const cpuList = z
  .string()
  .refine((s) => CPU_LIST.test(s), 'must be a list like "0-2,4"')
  .refine(
    (s) =>
      s.split(',').every((r) => {
        const [a, b] = r.split('-').map(Number);
        return b === undefined || (a !== undefined && a <= b);
      }),
    'a range must not run backwards',
  );

const throttle = z.strictObject({ major: deviceNumber, minor: deviceNumber, rate: int.min(0) });

const memorySchema = z.strictObject({
  limit: bytesOrUnlimited.optional(),
  reservation: int.refine((n) => n >= -1, 'must be >= 0 bytes or -1 (none)').optional(),
  swap: bytesOrUnlimited.optional(),
  kernel: int.optional(),
  kernelTCP: int.optional(),
  swappiness: int.min(0).max(100).optional(),
  disableOOMKiller: z.boolean().optional(),
  useHierarchy: z.boolean().optional(),
  checkBeforeUpdate: z.boolean().optional(),
});

const cpuSchema = z.strictObject({
  // The kernel clamps cpu.shares to 2..262144; refusing outside it keeps v1 and v2 identical.
  shares: int.min(2).max(262_144).optional(),
  quota: int.refine((n) => n === -1 || n >= 1000, 'must be >= 1000 microseconds or -1 (unlimited)').optional(),
  period: int.min(1000).max(1_000_000).optional(),
  realtimeRuntime: int.min(-1).optional(),
  realtimePeriod: int.min(1).optional(),
  cpus: cpuList.optional(),
  mems: cpuList.optional(),
  idle: int.min(0).max(1).optional(),
});

const blockIOSchema = z.strictObject({
  weight: blkioWeight.optional(),
  leafWeight: blkioWeight.optional(),
  weightDevice: z
    .array(z.strictObject({ major: deviceNumber, minor: deviceNumber, weight: blkioWeight.optional(), leafWeight: blkioWeight.optional() }))
    .optional(),
  throttleReadBpsDevice: z.array(throttle).optional(),
  throttleWriteBpsDevice: z.array(throttle).optional(),
  throttleReadIOPSDevice: z.array(throttle).optional(),
  throttleWriteIOPSDevice: z.array(throttle).optional(),
});

const deviceRule = z.strictObject({
  allow: z.boolean(),
  type: z.enum(['a', 'c', 'b']).optional(),
  // OCI leaves major/minor out for "any"; runc writes -1 for the same thing.
  major: int.min(-1).optional(),
  minor: int.min(-1).optional(),
  access: z
    .string()
    .refine((a) => /^[rwm]{1,3}$/.test(a) && new Set(a).size === a.length, 'must be a combination of r, w and m')
    .optional(),
});

const hugepageLimit = z.strictObject({
  pageSize: z.string().regex(/^\d+(KB|MB|GB)$/, 'must be like "2MB" or "1GB"'),
  limit: int.min(0),
});

/** Files that move processes or reshape the tree: the runtime owns them, a spec may not write them. */
const RESERVED_UNIFIED = new Set(['cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control', 'cgroup.kill', 'cgroup.type']);
const UNIFIED_KEY = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;

export const linuxResourcesSchema = z
  .strictObject({
    memory: memorySchema.optional(),
    cpu: cpuSchema.optional(),
    pids: z.strictObject({ limit: int }).optional(),
    blockIO: blockIOSchema.optional(),
    devices: z.array(deviceRule).optional(),
    hugepageLimits: z.array(hugepageLimit).optional(),
    unified: z.record(z.string(), z.string()).optional(),
  })
  .superRefine((r, ctx) => {
    const m = r.memory;
    if (m !== undefined) {
      const limit = m.limit;
      if (m.swap !== undefined && m.swap !== -1) {
        if (limit === undefined || limit === -1)
          ctx.addIssue({ code: 'custom', path: ['memory', 'swap'], message: 'a swap limit needs memory.limit too (swap is memory+swap)' });
        else if (m.swap < limit)
          ctx.addIssue({ code: 'custom', path: ['memory', 'swap'], message: `must be >= memory.limit (${limit}): it counts memory+swap` });
      }
      if (m.reservation !== undefined && m.reservation > 0 && limit !== undefined && limit > 0 && m.reservation > limit) {
        ctx.addIssue({ code: 'custom', path: ['memory', 'reservation'], message: `must not exceed memory.limit (${limit})` });
      }
    }
    const c = r.cpu;
    if (c?.realtimeRuntime !== undefined && c.realtimeRuntime > 0 && c.realtimePeriod !== undefined && c.realtimeRuntime > c.realtimePeriod) {
      ctx.addIssue({ code: 'custom', path: ['cpu', 'realtimeRuntime'], message: `must not exceed cpu.realtimePeriod (${c.realtimePeriod})` });
    }
    for (const key of Object.keys(r.unified ?? {})) {
      if (!UNIFIED_KEY.test(key))
        ctx.addIssue({ code: 'custom', path: ['unified', key], message: 'must be a cgroup v2 interface file name like "memory.high"' });
      else if (RESERVED_UNIFIED.has(key))
        ctx.addIssue({ code: 'custom', path: ['unified', key], message: `${key} is managed by the runtime and cannot be set` });
    }
    const seen = new Set<string>();
    (r.hugepageLimits ?? []).forEach((h, i) => {
      if (seen.has(h.pageSize)) ctx.addIssue({ code: 'custom', path: ['hugepageLimits', i, 'pageSize'], message: `${h.pageSize} is listed twice` });
      seen.add(h.pageSize);
    });
  });

/**
 * Validates linux.resources from untrusted input. Errors name every bad field as
 * `<field>.<path>: <problem>`, e.g. "linux.resources.memory.swap: must be >= memory.limit".
 */
export function validateResources(value: unknown, field = 'linux.resources'): LinuxResources {
  const result = linuxResourcesSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const where = [field, ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))].join('.').replace(/\.\[/g, '[');
      return `${where}: ${issue.message}`;
    });
    throw new Error(`invalid resources: ${problems.join('; ')}`);
  }
  return result.data;
}
