// One line of the audit log file, read back. The file is only written by this manager, but it may be
// cut short by a crash or a full disk, or edited by hand, so each line is checked before it is shown.
import { z } from 'zod';

import { MAX_LISTED_OBJECTS } from './request-objects.js';
import type { AuditEntry } from './audit-entry.js';

/** Every field is written much shorter than this; the bound only keeps a damaged file from costing memory. */
const MAX_FIELD_CHARS = 1024;

const field = z.string().max(MAX_FIELD_CHARS);

const auditEntrySchema = z.object({
  time: field,
  caller: field,
  certificateSerial: field.optional(),
  method: field,
  objects: z.array(z.object({ kind: field, stack: field.optional(), name: field })).max(MAX_LISTED_OBJECTS + 1),
  digest: field,
  result: z.union([z.object({ ok: z.literal(true) }), z.object({ ok: z.literal(false), code: field, message: field })]),
  manager: field,
});

/** The entry a line holds, or undefined for a line that is empty, cut short or not an entry. */
export function parseAuditLine(line: string): AuditEntry | undefined {
  if (line.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    // A torn line (the write was cut by a crash or a full disk): the caller counts it as skipped.
    return undefined;
  }
  const checked = auditEntrySchema.safeParse(parsed);
  return checked.success ? checked.data : undefined;
}

/** One entry as a line of the file (JSON, no newline inside: JSON.stringify escapes them). */
export function auditLine(entry: AuditEntry): string {
  return `${JSON.stringify(entry)}\n`;
}
