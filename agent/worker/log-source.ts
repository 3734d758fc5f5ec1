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
 * raw-format container) are shown as they are, with no time.
 */
export function logEntry(task: string, line: string): LogEntry {
  const raw: LogEntry = { task, timeMs: 0, stream: 'stdout', text: line };
  if (!line.startsWith('{')) return raw;
  try {
    const entry = JSON.parse(line) as { log?: unknown; time?: unknown; stream?: unknown };
    if (typeof entry.log !== 'string') return raw;
    const time = typeof entry.time === 'string' ? Date.parse(entry.time) : NaN;
    return { task, timeMs: Number.isFinite(time) ? time : 0, stream: entry.stream === 'stderr' ? 'stderr' : 'stdout', text: entry.log.replace(/\n$/, '') };
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
    while (!query.signal.aborted) {
      // -1: no log yet (the task has not started, or its log was removed).
      const size = await unlessAbsent(
        stat(path).then((s) => s.size),
        -1,
      );
      if (size >= 0 && size < offset) offset = 0; // truncated or replaced
      if (size > offset) {
        const read = await this.readFrom(path, offset, size);
        offset = read.offset;
        const all = partial + read.text;
        const complete = all.lastIndexOf('\n');
        partial = complete >= 0 ? all.slice(complete + 1) : all;
        const entries = (complete >= 0 ? lastLines(all.slice(0, complete + 1), 0) : []).map((line) => logEntry(task, line)).filter((e) => inWindow(e, query));
        if (entries.length > 0) emit(first && query.tail > 0 ? entries.slice(-query.tail) : entries);
      }
      if (first) caughtUp();
      first = false;
      if (!query.follow) break;
      // Rejects only with AbortError: the follower was stopped, which the loop's condition sees.
      await sleep(FOLLOW_POLL_MS, undefined, { signal: query.signal }).catch(() => {});
    }
    if (partial && !query.follow) {
      const last = logEntry(task, partial);
      if (inWindow(last, query)) emit([last]);
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
