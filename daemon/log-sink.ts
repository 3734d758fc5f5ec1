// Where tsd's log lines go: stderr, as `<ISO time> message`. Under systemd, whose journal stamps
// each line itself, stderr is the journal's stream (JOURNAL_STREAM names its device and inode):
// lines then carry a syslog priority prefix instead of a time, so `journalctl -p err` works.
import { fstatSync } from 'node:fs';

export type LogPriority = 'info' | 'error';
const SYSLOG_PRIORITY: Record<LogPriority, number> = { info: 6, error: 3 };

/** Whether this JOURNAL_STREAM value names the file behind this stderr's device and inode. Pure. */
export function isJournalStream(journalStream: string | undefined, stderr: { dev: number; ino: number } | undefined): boolean {
  if (journalStream === undefined || stderr === undefined) return false;
  const [dev, ino] = journalStream.split(':');
  return dev === String(stderr.dev) && ino === String(stderr.ino);
}

function stderrIdentity(): { dev: number; ino: number } | undefined {
  try {
    return fstatSync(2);
  } catch {
    return undefined; // stderr closed: nothing can be logged there anyway
  }
}

const toJournal = isJournalStream(process.env['JOURNAL_STREAM'], stderrIdentity());

/** One log line, formatted for where stderr leads. */
export function formatLogLine(message: string, priority: LogPriority, journal = toJournal, now = new Date()): string {
  return journal ? `<${SYSLOG_PRIORITY[priority]}>${message}\n` : `${now.toISOString()} ${message}\n`;
}

export function log(message: string, priority: LogPriority = 'info'): void {
  process.stderr.write(formatLogLine(message, priority));
}
