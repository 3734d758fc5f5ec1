// Reading the most recent audit entries back: the current file from its end, then the rotated ones,
// newest first, until enough entries are found. Lines are parsed newest first and only as many as
// needed, with a pause for the event loop every so often (it also carries Raft heartbeats).
import { setImmediate as nextTurn } from 'node:timers/promises';

import type { AuditEntry } from './audit-entry.js';
import { auditFilePath, readFileTail } from './audit-files.js';
import { parseAuditLine } from './audit-line.js';

/** Lines parsed between two pauses for the event loop. */
const LINES_PER_TURN = 1000;

export interface RecentEntriesQuery {
  /** The current file's path; rotated ones are `<path>.1` … `<path>.<keep>`. */
  path: string;
  keep: number;
  /** How much of each file is read at most (its end). */
  maxFileBytes: number;
  limit: number;
  callerContains?: string;
}

export interface RecentEntries {
  /** Oldest first, newest last. */
  entries: AuditEntry[];
  /** Lines that were not entries (a torn last line, damage); each named `file:line from the end`. */
  skipped: string[];
}

export async function readRecentEntries(query: RecentEntriesQuery): Promise<RecentEntries> {
  const newestFirst: AuditEntry[] = [];
  const skipped: string[] = [];
  for (let n = 0; n <= query.keep && newestFirst.length < query.limit; n++) {
    const file = auditFilePath(query.path, n);
    const text = await readFileTail(file, query.maxFileBytes);
    if (text === undefined) continue;
    await collectNewestFirst(text, query, newestFirst, (lineFromEnd) => skipped.push(`${file}:${lineFromEnd} from the end`));
  }
  return { entries: newestFirst.reverse(), skipped };
}

/** Adds the file's matching entries to `into`, last line first, until `into` holds `limit`. */
async function collectNewestFirst(text: string, query: RecentEntriesQuery, into: AuditEntry[], skip: (lineFromEnd: number) => void): Promise<void> {
  let end = text.endsWith('\n') ? text.length - 1 : text.length;
  for (let lineFromEnd = 1; end > 0 && into.length < query.limit; lineFromEnd++) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(start, end);
    end = start - 1;
    if (lineFromEnd % LINES_PER_TURN === 0) await nextTurn();
    if (line.trim() === '') continue;
    const entry = parseAuditLine(line);
    if (entry === undefined) skip(lineFromEnd);
    else if (query.callerContains === undefined || entry.caller.includes(query.callerContains)) into.push(entry);
  }
}
