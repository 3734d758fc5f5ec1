// Whether a process we started is still running. kill(pid, 0) alone is not enough: it succeeds on a
// zombie (exited, not yet reaped — on some machines PID 1 reaps orphans only after a second or
// more), and on a PID the kernel has since given to another process. /proc/PID/stat tells both:
// its state (field 3) and its start time in clock ticks since boot (field 22).
import { readFileSync } from 'node:fs';

/** What /proc/PID/stat says of a process, undefined when there is no such process (or no /proc). */
export interface ProcStat {
  /** One letter: R running, S sleeping, D disk wait, Z zombie, T stopped, ... */
  state: string;
  /** Clock ticks after boot when the process started; with the PID it names one process for good. */
  startTime: number;
}

/**
 * Parses /proc/PID/stat's text. The command name (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so fields are counted from the last ")". Throws on text that is not one.
 */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('no ")" after the command name');
  // After ")": field 3 (state) is index 0, so field N is index N - 3.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const state = fields[0];
  const startTime = Number(fields[22 - 3]);
  if (state === undefined || !/^[A-Za-z]$/.test(state)) throw new Error(`state field "${state ?? ''}" is not a letter`);
  if (!Number.isSafeInteger(startTime) || startTime < 0) throw new Error(`start time field "${fields[22 - 3] ?? ''}" is not a whole number`);
  return { state, startTime };
}

/** The process's state and start time; undefined when it does not exist. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return undefined; // no such process (any more)
    throw err;
  }
  return parseProcStat(text);
}

/** The start time to record beside a PID just started; undefined if it has already gone. */
export function processStartTime(pid: number): number | undefined {
  return procStat(pid)?.startTime;
}

function signalProbe(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process runs: it exists, is not a zombie, and (when `startTime` is given, as recorded
 * when it was started) started at that time, so a reused PID does not count. Where /proc is not
 * mounted, only the signal probe can answer.
 */
export function processAlive(pid: number, startTime?: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (!signalProbe(pid)) return false;
  let stat: ProcStat | undefined;
  try {
    stat = procStat(pid);
  } catch (err) {
    // No readable /proc here: the probe's answer is all there is (the zombie case stays open).
    if ((err as NodeJS.ErrnoException).code === 'EACCES' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return true;
    throw err;
  }
  if (stat === undefined) return false; // exited between the probe and the read
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}
