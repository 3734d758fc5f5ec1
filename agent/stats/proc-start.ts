// When a container's init process started, from procfs (pure parsers plus one reader): field 22 of
// /proc/<pid>/stat is its start in clock ticks after boot, and /proc/stat's btime is the boot in
// seconds since the epoch. Read from the kernel rather than remembered by tsd, so a container a
// restarted tsd took over reports its real start (container_start_time_seconds).
import { readKernelFile } from './kernel-file.js';

/** USER_HZ: 100 on every Linux architecture tsd runs on (the kernel fixes it for userspace). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** Field 22 (starttime) of /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses. */
export function parseStartTicks(statText: string): number | undefined {
  const close = statText.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") " come fields 3 (state), 4 … : starttime, field 22, is the 20th of them.
  const value = statText
    .slice(close + 1)
    .trim()
    .split(/\s+/)[19];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** The "btime SECONDS" line of /proc/stat. */
export function parseBootTime(procStatText: string): number | undefined {
  const m = /^btime (\d+)$/m.exec(procStatText);
  return m ? Number(m[1]) : undefined;
}

export function startSeconds(statText: string, procStatText: string, ticksPerSecond = CLOCK_TICKS_PER_SECOND): number | undefined {
  return startSecondsAfterBoot(statText, parseBootTime(procStatText), ticksPerSecond);
}

/** The same with the boot time already known. */
export function startSecondsAfterBoot(statText: string, bootSeconds: number | undefined, ticksPerSecond = CLOCK_TICKS_PER_SECOND): number | undefined {
  const ticks = parseStartTicks(statText);
  return ticks === undefined || bootSeconds === undefined ? undefined : bootSeconds + ticks / ticksPerSecond;
}

/** /proc/stat and one process's stat are a few KiB; nothing more is kept. */
const MAX_STAT_BYTES = 64 * 1024;

/** The boot time in seconds since the epoch, from /proc/stat. */
export async function bootTimeSeconds(procRoot = '/proc'): Promise<number | undefined> {
  const text = readKernelFile(`${procRoot}/stat`, MAX_STAT_BYTES);
  if (text === undefined) throw new Error(`${procRoot}/stat is missing`);
  return parseBootTime(text);
}

/**
 * The start of process `pid` in seconds since the epoch; undefined when it has gone. `bootTime`
 * lets a caller that asks for many processes at once read /proc/stat once for all of them (the
 * kernel sums every interrupt counter to write that file).
 */
export async function processStartSeconds(pid: number, procRoot = '/proc', bootTime = () => bootTimeSeconds(procRoot)): Promise<number | undefined> {
  const stat = readKernelFile(`${procRoot}/${pid}/stat`, MAX_STAT_BYTES);
  if (stat === undefined) return undefined;
  return startSecondsAfterBoot(stat, await bootTime());
}
