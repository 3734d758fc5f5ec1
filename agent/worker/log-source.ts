// Serves container logs from the files the runtime writes, for `tsctl logs [-f]`.
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Task } from '../../common/resources/types.js';
import type { LogSource } from '../../common/logs/log-source.js';
import { logPathFor } from './task-runner.js';
import { unlessAbsent } from '../fs-errors.js';

const FOLLOW_POLL_MS = 200;
const READ_CHUNK = 64 * 1024;

/**
 * The text of one log line as the shim writes it: a JSON object {time, stream, log}. Lines that are
 * not such objects (logs of an older, raw-format container) are shown as they are.
 */
export function logText(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as { log?: unknown };
    return typeof entry.log === 'string' ? entry.log.replace(/\n$/, '') : line;
  } catch {
    // Not JSON (see above): the line is shown as it is.
    return line;
  }
}

/** The last `count` lines of text (all when count is 0), without a trailing empty line. */
export function lastLines(text: string, count: number): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return count > 0 ? lines.slice(-count) : lines;
}

export class FileLogSource implements LogSource {
  constructor(private readonly logsDir: string) {}

  async stream(tasks: Task[], options: { follow: boolean; tail: number; signal: AbortSignal }, emit: (task: string, line: string) => void): Promise<void> {
    const ordered = [...tasks].sort((a, b) => a.spec.slot - b.spec.slot || a.status.timestamp.localeCompare(b.status.timestamp));
    await Promise.all(ordered.map((task) => this.streamOne(task.metadata.name, options, (line) => emit(task.metadata.name, line))));
  }

  private async streamOne(taskName: string, options: { follow: boolean; tail: number; signal: AbortSignal }, emit: (line: string) => void): Promise<void> {
    const path = logPathFor(this.logsDir, taskName);
    let offset = 0;
    let partial = '';
    let first = true;
    while (!options.signal.aborted) {
      // -1: no log yet (the task has not started, or its log was removed).
      const size = await unlessAbsent(
        stat(path).then((s) => s.size),
        -1,
      );
      if (size >= 0 && size < offset) offset = 0; // truncated or replaced
      if (size > offset) {
        const handle = await open(path, 'r');
        try {
          const text: string[] = [];
          while (offset < size) {
            const buffer = Buffer.alloc(Math.min(READ_CHUNK, size - offset));
            const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
            if (bytesRead === 0) break;
            offset += bytesRead;
            text.push(buffer.subarray(0, bytesRead).toString('utf8'));
          }
          const all = partial + text.join('');
          const complete = all.lastIndexOf('\n');
          partial = complete >= 0 ? all.slice(complete + 1) : all;
          const lines = complete >= 0 ? lastLines(all.slice(0, complete + 1), first ? options.tail : 0) : [];
          for (const line of lines) emit(logText(line));
        } finally {
          await handle.close();
        }
      }
      first = false;
      if (!options.follow) break;
      // Rejects only with AbortError: the follower was stopped, which the loop's condition sees.
      await sleep(FOLLOW_POLL_MS, undefined, { signal: options.signal }).catch(() => {});
    }
    if (partial && !options.follow) emit(logText(partial));
  }
}
