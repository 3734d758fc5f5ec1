// Serves container logs from the files the runtime's shims write, for `tsctl logs [-f]`: each line
// a JSON object {time, stream, log}, turned into timed entries so that a manager can merge the
// tasks of many nodes by time.
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import type { LogEntry, LogQuery, LogSource } from '../../common/logs/log-source.js';
import { logPathFor } from './task-runner.js';
import { unlessAbsent } from '../fs-errors.js';

const FOLLOW_POLL_MS = 200;
const READ_CHUNK = 64 * 1024;

/**
 * One line of a log file as an entry. Lines that are not the shim's JSON (logs of an older,
 * raw-format container) are shown as they are, with no time. `place` is the line's place in the
 * file, its sequence when the shim did not number it (an older shim, or a raw log).
 */
export function logEntry(task: string, line: string, place = 0): LogEntry {
  const raw: LogEntry = { task, timeMs: 0, stream: 'stdout', text: line, sequence: place };
  if (!line.startsWith('{')) return raw;
  try {
    const entry = JSON.parse(line) as { log?: unknown; time?: unknown; stream?: unknown; seq?: unknown };
    if (typeof entry.log !== 'string') return raw;
    const time = typeof entry.time === 'string' ? Date.parse(entry.time) : NaN;
    const sequence = typeof entry.seq === 'number' && Number.isSafeInteger(entry.seq) && entry.seq > 0 ? entry.seq : place;
    return {
      task,
      timeMs: Number.isFinite(time) ? time : 0,
      stream: entry.stream === 'stderr' ? 'stderr' : 'stdout',
      text: entry.log.replace(/\n$/, ''),
      sequence,
    };
  } catch {
    // Not JSON (see above): the line is shown as it is.
    return raw;
  }
}

/** The text of one log line (what `logs --no-prefix` prints). */
export function logText(line: string): string {
  return logEntry('', line).text;
}

/** The last `count` lines of text (all when count is 0), without a trailing empty line. */
export function lastLines(text: string, count: number): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return count > 0 ? lines.slice(-count) : lines;
}

/**
 * The entries of one read that the query wants: in its time window, above the task's resume point,
 * and (first read only, for a task not being resumed) the last `tail`. Pure.
 */
export function wanted(entries: LogEntry[], task: string, query: Pick<LogQuery, 'sinceMs' | 'untilMs' | 'tail' | 'afterSequence'>, first: boolean): LogEntry[] {
  const after = query.afterSequence?.get(task);
  const inTime = entries.filter((e) => inWindow(e, query) && (after === undefined || e.sequence > after));
  return first && after === undefined && query.tail > 0 ? inTime.slice(-query.tail) : inTime;
}

/** Whether an entry falls in the query's time window; entries without a time always do. */
export function inWindow(entry: LogEntry, query: Pick<LogQuery, 'sinceMs' | 'untilMs'>): boolean {
  if (entry.timeMs === 0) return true;
  return (query.sinceMs === 0 || entry.timeMs >= query.sinceMs) && (query.untilMs === 0 || entry.timeMs <= query.untilMs);
}

export class FileLogSource implements LogSource {
  constructor(private readonly logsDir: string) {}

  async stream(taskNames: string[], query: LogQuery, emit: (entries: LogEntry[]) => void, onCaughtUp?: () => void): Promise<void> {
    let behind = taskNames.length;
    const caughtUp = () => {
      behind -= 1;
      if (behind === 0) onCaughtUp?.();
    };
    if (behind === 0) onCaughtUp?.();
    await Promise.all(taskNames.map((task) => this.streamOne(task, query, emit, caughtUp)));
  }

  private async streamOne(task: string, query: LogQuery, emit: (entries: LogEntry[]) => void, caughtUp: () => void): Promise<void> {
    const path = logPathFor(this.logsDir, task);
    let offset = 0;
    let partial = '';
    let first = true;
    // Lines of the current file read so far: the sequence of a line the shim did not number.
    let lines = 0;
    while (!query.signal.aborted) {
      // -1: no log yet (the task has not started, or its log was removed).
      const size = await unlessAbsent(
        stat(path).then((s) => s.size),
        -1,
      );
      if (size >= 0 && size < offset) {
        // truncated or replaced (rotated)
        offset = 0;
        lines = 0;
      }
      if (size > offset) {
        const read = await this.readFrom(path, offset, size);
        offset = read.offset;
        const all = partial + read.text;
        const complete = all.lastIndexOf('\n');
        partial = complete >= 0 ? all.slice(complete + 1) : all;
        const whole = complete >= 0 ? lastLines(all.slice(0, complete + 1), 0) : [];
        const entries = wanted(
          whole.map((line, i) => logEntry(task, line, lines + i + 1)),
          task,
          query,
          first,
        );
        lines += whole.length;
        if (entries.length > 0) emit(entries);
      }
      if (first) caughtUp();
      first = false;
      if (!query.follow) break;
      // Rejects only with AbortError: the follower was stopped, which the loop's condition sees.
      await sleep(FOLLOW_POLL_MS, undefined, { signal: query.signal }).catch(() => {});
    }
    if (partial && !query.follow) {
      const last = wanted([logEntry(task, partial, lines + 1)], task, query, false);
      if (last.length > 0) emit(last);
    }
  }

  private async readFrom(path: string, from: number, size: number): Promise<{ text: string; offset: number }> {
    const handle = await open(path, 'r');
    try {
      const text: string[] = [];
      let offset = from;
      while (offset < size) {
        const buffer = Buffer.alloc(Math.min(READ_CHUNK, size - offset));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        text.push(buffer.subarray(0, bytesRead).toString('utf8'));
      }
      return { text: text.join(''), offset };
    } finally {
      await handle.close();
    }
  }
}
