// What to write where, for v1 and v2, as pure functions of validated linux.resources.
// The drivers do the I/O; tests check these lists exactly.

import type { LinuxResources } from '../types.js';
import { planDeviceWrites } from './devices.js';

export type V1Controller = 'memory' | 'cpu' | 'cpuacct' | 'cpuset' | 'pids' | 'blkio' | 'devices' | 'hugetlb';

export interface ControlWrite {
  /** Interface file, e.g. "memory.limit_in_bytes". */
  file: string;
  value: string;
  /** The spec field this write comes from, for error messages. */
  field: string;
  /** Written only when the kernel has the file (a default, not something the spec asked for). */
  ifExists?: boolean;
  /** Alternatives to `file`, tried in order when it does not exist (e.g. blkio.bfq.weight). */
  alternatives?: Array<{ file: string; value: string }>;
}

export interface V1Write extends ControlWrite {
  controller: V1Controller;
}

const F = 'linux.resources';

function unlimited(n: number): string {
  return n === -1 ? '-1' : String(n);
}

export function planV1(r: LinuxResources): V1Write[] {
  const w: V1Write[] = [];
  const add = (controller: V1Controller, file: string, value: string, field: string, extra: Partial<ControlWrite> = {}) =>
    w.push({ controller, file, value, field: `${F}.${field}`, ...extra });

  const m = r.memory;
  if (m !== undefined) {
    if (m.limit !== undefined) {
      // memsw must stay >= limit at every step: when lowering, set memsw after; the kernel
      // refuses memsw < limit. A fresh cgroup has both unlimited, so limit first then memsw.
      add('memory', 'memory.limit_in_bytes', unlimited(m.limit), 'memory.limit');
      // OCI swap is memory+swap. Unset means no swap beyond the limit, so an OOM is an OOM.
      if (m.swap !== undefined) add('memory', 'memory.memsw.limit_in_bytes', unlimited(m.swap), 'memory.swap');
      else add('memory', 'memory.memsw.limit_in_bytes', unlimited(m.limit), 'memory.limit', { ifExists: true });
    } else if (m.swap === -1) {
      add('memory', 'memory.memsw.limit_in_bytes', '-1', 'memory.swap');
    }
    if (m.reservation !== undefined) add('memory', 'memory.soft_limit_in_bytes', unlimited(m.reservation), 'memory.reservation');
    if (m.swappiness !== undefined) add('memory', 'memory.swappiness', String(m.swappiness), 'memory.swappiness');
    if (m.disableOOMKiller === true) add('memory', 'memory.oom_control', '1', 'memory.disableOOMKiller');
  }

  const c = r.cpu;
  if (c !== undefined) {
    if (c.shares !== undefined) add('cpu', 'cpu.shares', String(c.shares), 'cpu.shares');
    // Period before quota: the kernel checks quota against the current period.
    if (c.period !== undefined) add('cpu', 'cpu.cfs_period_us', String(c.period), 'cpu.period');
    if (c.quota !== undefined) add('cpu', 'cpu.cfs_quota_us', unlimited(c.quota), 'cpu.quota');
    if (c.realtimePeriod !== undefined) add('cpu', 'cpu.rt_period_us', String(c.realtimePeriod), 'cpu.realtimePeriod');
    if (c.realtimeRuntime !== undefined) add('cpu', 'cpu.rt_runtime_us', String(c.realtimeRuntime), 'cpu.realtimeRuntime');
    if (c.idle !== undefined) add('cpu', 'cpu.idle', String(c.idle), 'cpu.idle');
    if (c.cpus !== undefined) add('cpuset', 'cpuset.cpus', c.cpus, 'cpu.cpus');
    if (c.mems !== undefined) add('cpuset', 'cpuset.mems', c.mems, 'cpu.mems');
  }

  if (r.pids !== undefined) add('pids', 'pids.max', r.pids.limit > 0 ? String(r.pids.limit) : 'max', 'pids.limit');

  const b = r.blockIO;
  if (b !== undefined) {
    if (b.weight !== undefined)
      add('blkio', 'blkio.weight', String(b.weight), 'blockIO.weight', {
        alternatives: [{ file: 'blkio.bfq.weight', value: String(b.weight) }],
      });
    if (b.leafWeight !== undefined) add('blkio', 'blkio.leaf_weight', String(b.leafWeight), 'blockIO.leafWeight');
    (b.weightDevice ?? []).forEach((d, i) => {
      if (d.weight !== undefined)
        add('blkio', 'blkio.weight_device', `${d.major}:${d.minor} ${d.weight}`, `blockIO.weightDevice[${i}].weight`, {
          alternatives: [{ file: 'blkio.bfq.weight_device', value: `${d.major}:${d.minor} ${d.weight}` }],
        });
      if (d.leafWeight !== undefined)
        add('blkio', 'blkio.leaf_weight_device', `${d.major}:${d.minor} ${d.leafWeight}`, `blockIO.weightDevice[${i}].leafWeight`);
    });
    const throttles = [
      ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device'],
      ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device'],
      ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device'],
      ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device'],
    ] as const;
    for (const [key, file] of throttles) {
      (b[key] ?? []).forEach((d, i) => add('blkio', file, `${d.major}:${d.minor} ${d.rate}`, `blockIO.${key}[${i}]`));
    }
  }

  for (const d of planDeviceWrites(r.devices)) add('devices', d.file, d.value, 'devices');

  (r.hugepageLimits ?? []).forEach((h, i) => add('hugetlb', `hugetlb.${h.pageSize}.limit_in_bytes`, String(h.limit), `hugepageLimits[${i}]`));

  if (r.unified !== undefined && Object.keys(r.unified).length > 0) {
    throw new Error(`${F}.unified: only valid on cgroup v2; this host uses cgroup v1`);
  }
  return w;
}

export interface V2Plan {
  /** Controllers that must be enabled in every ancestor's cgroup.subtree_control. */
  controllers: Set<string>;
  writes: ControlWrite[];
  /** Things the spec asked for that v2 cannot do; the container runs without them. */
  warnings: string[];
}

/** runc's conversion of cpu.shares (2..262144) to cpu.weight (1..10000). */
export function sharesToWeight(shares: number): number {
  return Math.floor(1 + ((shares - 2) * 9999) / 262_142);
}

/** runc's conversion of a blkio weight (10..1000) to io.weight (1..10000). */
export function blkioToIoWeight(weight: number): number {
  return Math.floor(1 + ((weight - 10) * 9999) / 990);
}

export function planV2(r: LinuxResources): V2Plan {
  const plan: V2Plan = { controllers: new Set(), writes: [], warnings: [] };
  const add = (controller: string, file: string, value: string, field: string, extra: Partial<ControlWrite> = {}) => {
    plan.controllers.add(controller);
    plan.writes.push({ file, value, field: `${F}.${field}`, ...extra });
  };
  const max = (n: number) => (n === -1 ? 'max' : String(n));

  const m = r.memory;
  if (m !== undefined) {
    if (m.limit !== undefined) {
      add('memory', 'memory.max', max(m.limit), 'memory.limit');
      // v2 counts swap alone, OCI counts memory+swap: swap.max = swap - limit.
      if (m.swap !== undefined) add('memory', 'memory.swap.max', m.swap === -1 || m.limit === -1 ? 'max' : String(m.swap - m.limit), 'memory.swap');
      else add('memory', 'memory.swap.max', m.limit === -1 ? 'max' : '0', 'memory.limit', { ifExists: true });
    } else if (m.swap === -1) {
      add('memory', 'memory.swap.max', 'max', 'memory.swap');
    }
    if (m.reservation !== undefined) add('memory', 'memory.low', m.reservation === -1 ? '0' : String(m.reservation), 'memory.reservation');
    if (m.swappiness !== undefined) plan.warnings.push(`${F}.memory.swappiness: cgroup v2 has no per-cgroup swappiness; ignored`);
    // v2 has no switch to turn the OOM killer off for a cgroup.
    if (m.disableOOMKiller === true) plan.warnings.push(`${F}.memory.disableOOMKiller: not available on cgroup v2; ignored`);
  }

  const c = r.cpu;
  if (c !== undefined) {
    if (c.shares !== undefined) add('cpu', 'cpu.weight', String(sharesToWeight(c.shares)), 'cpu.shares');
    if (c.quota !== undefined || c.period !== undefined) {
      const quota = c.quota === undefined || c.quota === -1 ? 'max' : String(c.quota);
      add('cpu', 'cpu.max', `${quota} ${c.period ?? 100_000}`, c.quota !== undefined ? 'cpu.quota' : 'cpu.period');
    }
    if (c.realtimeRuntime !== undefined || c.realtimePeriod !== undefined) {
      throw new Error(`${F}.cpu.realtimeRuntime/realtimePeriod: real-time CPU bandwidth has no cgroup v2 interface`);
    }
    if (c.idle !== undefined) add('cpu', 'cpu.idle', String(c.idle), 'cpu.idle');
    if (c.cpus !== undefined) add('cpuset', 'cpuset.cpus', c.cpus, 'cpu.cpus');
    if (c.mems !== undefined) add('cpuset', 'cpuset.mems', c.mems, 'cpu.mems');
  }

  if (r.pids !== undefined) add('pids', 'pids.max', r.pids.limit > 0 ? String(r.pids.limit) : 'max', 'pids.limit');

  const b = r.blockIO;
  if (b !== undefined) {
    // io.bfq.weight takes the blkio range as is; io.weight is the 1..10000 scale.
    if (b.weight !== undefined) {
      add('io', 'io.bfq.weight', String(b.weight), 'blockIO.weight', { alternatives: [{ file: 'io.weight', value: `default ${blkioToIoWeight(b.weight)}` }] });
    }
    if (b.leafWeight !== undefined) plan.warnings.push(`${F}.blockIO.leafWeight: cgroup v2 has no leaf weight; ignored`);
    (b.weightDevice ?? []).forEach((d, i) => {
      if (d.weight !== undefined) add('io', 'io.weight', `${d.major}:${d.minor} ${blkioToIoWeight(d.weight)}`, `blockIO.weightDevice[${i}].weight`);
    });
    const throttles = [
      ['throttleReadBpsDevice', 'rbps'],
      ['throttleWriteBpsDevice', 'wbps'],
      ['throttleReadIOPSDevice', 'riops'],
      ['throttleWriteIOPSDevice', 'wiops'],
    ] as const;
    for (const [key, name] of throttles) {
      (b[key] ?? []).forEach((d, i) => add('io', 'io.max', `${d.major}:${d.minor} ${name}=${d.rate === 0 ? 'max' : d.rate}`, `blockIO.${key}[${i}]`));
    }
  }

  // linux.resources.devices: no file on v2; the driver attaches a BPF program (device-bpf.ts).

  (r.hugepageLimits ?? []).forEach((h, i) => add('hugetlb', `hugetlb.${h.pageSize}.max`, String(h.limit), `hugepageLimits[${i}]`));

  for (const [file, value] of Object.entries(r.unified ?? {})) {
    const controller = file.slice(0, file.indexOf('.'));
    if (controller === 'cgroup') plan.writes.push({ file, value, field: `${F}.unified.${file}` });
    else add(controller, file, value, `unified.${file}`);
  }
  return plan;
}
