// The audit log of one manager: JSON lines appended to a file that is rotated by size. Entries are
// written in order through one queue, so a burst of requests neither interleaves nor loses lines.
//
// A failed write is reported through `log` and the entries are dropped: record() never throws and
// never waits, so a full or broken audit disk does not fail API requests. This is a deliberate
// choice, the same one Kubernetes' log audit backend makes; a cluster that must refuse requests it
// cannot audit would need record() to be awaited before answering, which this does not offer.
import type { AuditEntry } from './audit-entry.js';
import { openAppendFile, rotateAuditFiles, type AppendFile } from './audit-files.js';
import { auditLine } from './audit-line.js';
import { readRecentEntries } from './audit-read.js';
import { SerialQueue } from './serial-queue.js';

export interface AuditLogOptions {
  /** The current file; rotated ones are `<path>.1` (newest) … `<path>.<keep>`. */
  path: string;
  /** The current file is rotated before it would grow past this; default 10 MiB. */
  maxBytes?: number;
  /** Rotated files kept; default 5. */
  keep?: number;
  /** Where write failures are reported; default stderr, since silence would hide lost entries. */
  log?: (message: string) => void;
}

export interface AuditReadOptions {
  /** At most this many entries (1 … 10,000), the most recent ones. */
  limit: number;
  /** Only entries whose caller contains this text. */
  callerContains?: string;
}

const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
const DEFAULT_KEEP = 5;
const MAX_KEEP = 100;
/** Smaller files would rotate at almost every entry (a large Apply's entry is tens of KiB). */
const MIN_MAX_BYTES = 1024;
const MAX_MAX_BYTES = 1024 * 1024 * 1024;
export const MAX_AUDIT_READ_LIMIT = 10_000;
const MAX_CALLER_FILTER_CHARS = 512;
/** Entries waiting for the disk beyond this are dropped (and reported): memory is not unbounded either. */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** Lines longer than the file bound (one huge entry) are still read back, up to this much more. */
const READ_SLACK_BYTES = 1024 * 1024;

export class AuditLog {
  private readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly log: (message: string) => void;
  private readonly queue = new SerialQueue();
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private drainQueued = false;
  private file: AppendFile | undefined;
  private closed = false;
  /** Entries dropped since the last successful write; reported once when writing works again. */
  private lost = 0;

  constructor(options: AuditLogOptions) {
    if (typeof options.path !== 'string' || options.path === '') throw new Error('audit log: path must be a non-empty file path');
    this.path = options.path;
    this.maxBytes = checkedInteger('audit log maxBytes', options.maxBytes ?? DEFAULT_MAX_BYTES, MIN_MAX_BYTES, MAX_MAX_BYTES);
    this.keep = checkedInteger('audit log keep', options.keep ?? DEFAULT_KEEP, 0, MAX_KEEP);
    this.log = options.log ?? ((message) => console.error(message));
  }

  /** Queues the entry for writing; returns at once and never throws (see the file's comment). */
  record(entry: AuditEntry): void {
    if (this.closed) {
      this.drop(1, `${entry.method} by ${entry.caller} was recorded after the audit log was closed`);
      return;
    }
    const line = Buffer.from(auditLine(entry));
    if (this.pendingBytes + line.length > MAX_PENDING_BYTES) {
      this.drop(1, `more than ${MAX_PENDING_BYTES} bytes of entries are waiting for the disk`);
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.drainQueued) {
      this.drainQueued = true;
      void this.queue.run(() => this.drain());
    }
  }

  /** Resolves once every entry recorded before the call has been written (or reported lost). */
  flush(): Promise<void> {
    return this.queue.run(() => Promise.resolve());
  }

  /** The most recent entries, newest last, including every entry recorded before the call. */
  async read(options: AuditReadOptions): Promise<AuditEntry[]> {
    const limit = checkedInteger('audit read limit', options.limit, 1, MAX_AUDIT_READ_LIMIT);
    const { callerContains } = options;
    if (callerContains !== undefined && (typeof callerContains !== 'string' || callerContains.length > MAX_CALLER_FILTER_CHARS)) {
      throw new Error(`audit read caller filter must be text of at most ${MAX_CALLER_FILTER_CHARS} characters`);
    }
    // Queued behind the writes, so nothing recorded before is missed and no rotation runs meanwhile.
    return this.queue.run(async () => {
      const query = { path: this.path, keep: this.keep, maxFileBytes: this.maxBytes + READ_SLACK_BYTES, limit, callerContains };
      const { entries, skipped } = await readRecentEntries(query);
      if (skipped.length > 0) this.report(`audit log: skipped ${skipped.length} unreadable line(s): ${skipped.slice(0, 5).join(', ')}`);
      return entries;
    });
  }

  /** Writes what is queued and closes the file; entries recorded afterwards are reported and dropped. */
  close(): Promise<void> {
    this.closed = true;
    return this.queue.run(() => this.closeFile());
  }

  private async drain(): Promise<void> {
    this.drainQueued = false;
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    let written = 0;
    try {
      while (written < lines.length) written = await this.appendSome(lines, written);
      if (this.lost > 0) this.report(`audit log ${this.path}: writing works again; ${this.lost} entries were lost`);
      this.lost = 0;
    } catch (err) {
      await this.closeFile();
      this.drop(lines.length - written, `cannot write ${this.path}: ${(err as Error).message}`);
    }
  }

  /**
   * Appends the lines from `from` on that fit in the current file, rotating it first if the first
   * one does not fit; returns the index of the next line. At least one line is always written, so a
   * line larger than a whole file goes alone into a fresh file, and the loop ends whatever happens.
   */
  private async appendSome(lines: readonly Buffer[], from: number): Promise<number> {
    let file = await this.currentFile();
    const first = lines[from]?.length ?? 0;
    if (file.size > 0 && file.size + first > this.maxBytes) {
      await this.closeFile();
      await rotateAuditFiles(this.path, this.keep);
      file = await this.currentFile();
    }
    let end = from + 1;
    let bytes = first;
    for (let next = lines[end]; next !== undefined && file.size + bytes + next.length <= this.maxBytes; next = lines[end]) {
      bytes += next.length;
      end += 1;
    }
    const chunk = Buffer.concat(lines.slice(from, end), bytes);
    await file.handle.appendFile(chunk);
    file.size += chunk.length;
    return end;
  }

  private async currentFile(): Promise<AppendFile> {
    this.file ??= await openAppendFile(this.path);
    return this.file;
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    try {
      await file?.handle.close();
    } catch (err) {
      this.report(`audit log ${this.path}: closing failed: ${(err as Error).message}`);
    }
  }

  /** Passes a message to `log`; a throwing `log` must not turn into an unhandled rejection of the write queue. */
  private report(message: string): void {
    try {
      this.log(message);
    } catch {
      // Deliberately ignored: the log sink is where failures would be reported, so there is nowhere left.
    }
  }

  /** Counts dropped entries; only the first drop of a failing spell is logged, to not flood the log. */
  private drop(count: number, why: string): void {
    if (this.lost === 0) this.report(`audit log: ${count} entries dropped: ${why}; further drops are counted until writing works again`);
    this.lost += count;
  }
}

function checkedInteger(what: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${what} must be a whole number from ${min} to ${max}, not ${String(value)}`);
  return value;
}
