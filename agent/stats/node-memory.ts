// The node's memory as the kernel counts it (/proc/meminfo), for the node memory pressure alert:
// MemAvailable is the kernel's own estimate of what can be allocated without swapping (free memory
// plus the page cache and slab it can reclaim), the figure node_exporter and the kubelet use.
import { readFile } from 'node:fs/promises';

export interface NodeMemory {
  totalBytes: number;
  availableBytes: number;
}

/** MemTotal and MemAvailable of /proc/meminfo (in kB there), in bytes; undefined if either is missing. */
export function parseMeminfo(text: string): NodeMemory | undefined {
  const kb = (field: string): number | undefined => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const totalBytes = kb('MemTotal');
  const availableBytes = kb('MemAvailable');
  return totalBytes === undefined || availableBytes === undefined ? undefined : { totalBytes, availableBytes };
}

export async function readNodeMemory(procRoot = '/proc'): Promise<NodeMemory> {
  const text = await readFile(`${procRoot}/meminfo`, 'utf8');
  const memory = parseMeminfo(text);
  if (!memory) throw new Error(`${procRoot}/meminfo has no MemTotal or MemAvailable line`);
  return memory;
}
