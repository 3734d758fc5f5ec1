// Parsers for cgroup interface files (pure: text in, numbers out).

import type { ContainerStats } from '../types.js';

/** v1 reports "unlimited" as a page-rounded LLONG_MAX; anything this large is no limit. */
const UNLIMITED_FLOOR = 2 ** 62;

/** A single number, or undefined for "max"/empty/garbage. */
export function parseNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  return Number(t);
}

/** A limit: undefined when "max" or v1's huge "unlimited". */
export function parseLimit(text: string | undefined): number | undefined {
  const n = parseNumber(text);
  return n === undefined || n >= UNLIMITED_FLOOR ? undefined : n;
}

/** "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control). */
export function parseKeyValues(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const [key, value, extra] = line.trim().split(/\s+/);
    if (key === undefined || value === undefined || extra !== undefined || !/^\d+$/.test(value)) continue;
    out.set(key, Number(value));
  }
  return out;
}

/** cpuacct.usage_percpu: space-separated nanoseconds. */
export function parsePerCpu(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const parts = text
    .trim()
    .split(/\s+/)
    .filter((p) => p !== '');
  if (parts.length === 0 || !parts.every((p) => /^\d+$/.test(p))) return undefined;
  return parts.map(Number);
}

type BlkDevice = ContainerStats['blockIO']['devices'][number];

function device(map: Map<string, BlkDevice>, key: string): BlkDevice | undefined {
  const m = /^(\d+):(\d+)$/.exec(key);
  if (m === null) return undefined;
  let d = map.get(key);
  if (d === undefined) {
    d = { major: Number(m[1]), minor: Number(m[2]), readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
    map.set(key, d);
  }
  return d;
}

/** v1 blkio.throttle.io_service_bytes(_recursive) and io_serviced(_recursive): "8:0 Read 4096". */
export function parseBlkio(bytesText: string | undefined, opsText: string | undefined): BlkDevice[] {
  const map = new Map<string, BlkDevice>();
  const apply = (text: string | undefined, read: 'readBytes' | 'readOps', write: 'writeBytes' | 'writeOps') => {
    for (const line of (text ?? '').split('\n')) {
      const [dev, op, value] = line.trim().split(/\s+/);
      if (dev === undefined || op === undefined || value === undefined || !/^\d+$/.test(value)) continue;
      const d = device(map, dev);
      if (d === undefined) continue;
      if (op === 'Read') d[read] += Number(value);
      else if (op === 'Write') d[write] += Number(value);
    }
  };
  apply(bytesText, 'readBytes', 'writeBytes');
  apply(opsText, 'readOps', 'writeOps');
  return [...map.values()];
}

/** v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". */
export function parseIoStat(text: string | undefined): BlkDevice[] {
  const map = new Map<string, BlkDevice>();
  const fields = { rbytes: 'readBytes', wbytes: 'writeBytes', rios: 'readOps', wios: 'writeOps' } as const;
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    if (dev === undefined || dev === '') continue;
    const d = device(map, dev);
    if (d === undefined) continue;
    for (const pair of pairs) {
      const [k, v] = pair.split('=');
      if (k !== undefined && k in fields && v !== undefined && /^\d+$/.test(v)) d[fields[k as keyof typeof fields]] = Number(v);
    }
  }
  return [...map.values()];
}
