// `tsctl cluster audit` as a table: TIME CALLER METHOD OBJECTS RESULT. Entries come from the
// server, and their object names from whoever sent the request, so every field is escaped before it
// reaches the terminal: a name must not be able to move the cursor, recolour the screen or reorder
// text. Pure.
import { renderTable, truncate } from '../output/table.js';

/** Objects listed in full in one cell; the rest are counted. */
const LISTED_OBJECTS = 3;
const MAX_OBJECTS_CHARS = 80;
const MAX_RESULT_CHARS = 160;

// Control characters (C0, DEL, C1), format characters (bidi overrides, zero-width), line and
// paragraph separators, lone surrogates, and the backslash so that an escape cannot be forged.
const UNSAFE = /[\\\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;

/** The text with every character that could act on a terminal written as an escape (`\x1b`, `\u{202e}`, `\\`). */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, (char) => {
    if (char === '\\') return '\\\\';
    const code = char.codePointAt(0)!;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(entry: Fields, key: string): string {
  const value = entry[key];
  return typeof value === 'string' ? value : '?';
}

/** `2024-05-01T10:00:00.123Z` without its milliseconds: a table line is read by a person. */
function shortTime(time: string): string {
  return time.replace(/\.\d+Z$/, 'Z');
}

function objectName(object: Fields): string {
  const kind = field(object, 'kind').toLowerCase();
  const stack = typeof object.stack === 'string' && object.stack !== '' ? `${object.stack}/` : '';
  return `${kind}/${stack}${field(object, 'name')}`;
}

/** `service/app/web, secret/app/pw +3 more`; the server's own `and N more` marker counts too. */
export function objectsCell(objects: unknown): string {
  if (!Array.isArray(objects)) return '?';
  const real = objects.filter((o): o is Fields => isFields(o) && o.kind !== '…');
  const marker = objects.find((o): o is Fields => isFields(o) && o.kind === '…');
  const unlisted = Number(/^and (\d+) more$/.exec(marker ? field(marker, 'name') : '')?.[1] ?? 0);
  const more = real.length - Math.min(real.length, LISTED_OBJECTS) + unlisted;
  const listed = real.slice(0, LISTED_OBJECTS).map(objectName).join(', ');
  return truncate(escapeControl(more > 0 ? `${listed} +${more} more` : listed), MAX_OBJECTS_CHARS);
}

export function resultCell(result: unknown): string {
  if (!isFields(result)) return '?';
  if (result.ok === true) return 'ok';
  return truncate(escapeControl(`${field(result, 'code')}: ${field(result, 'message')}`), MAX_RESULT_CHARS);
}

/** One row; an entry that is not a JSON object still gets one, saying so. */
export function auditRow(json: string): string[] {
  let entry: unknown;
  try {
    entry = JSON.parse(json);
  } catch {
    entry = undefined; // shown as an unreadable row below, not thrown: one bad line must not hide the rest
  }
  if (!isFields(entry)) return ['?', '?', '?', '', `unreadable entry: ${truncate(escapeControl(json), 80)}`];
  return [
    escapeControl(shortTime(field(entry, 'time'))),
    escapeControl(field(entry, 'caller')),
    escapeControl(field(entry, 'method')),
    objectsCell(entry.objects),
    resultCell(entry.result),
  ];
}

export function formatAuditTable(entriesJson: readonly string[]): string {
  return renderTable(['TIME', 'CALLER', 'METHOD', 'OBJECTS', 'RESULT'], entriesJson.map(auditRow));
}

// What JSON.stringify leaves raw but a terminal may act on: DEL, C1 controls, format characters, separators.
const JSON_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** JSON text with the characters JSON_UNSAFE matches written as \uXXXX escapes (still the same JSON value). */
function terminalSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(JSON_UNSAFE, (char) =>
    Array.from({ length: char.length }, (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
}

/**
 * `-o json`: each entry on one line as compact JSON, for jq and the like. An entry that is not JSON
 * is printed as a JSON string, so every line still parses.
 */
export function formatAuditJson(entriesJson: readonly string[]): string {
  return entriesJson
    .map((json) => {
      try {
        return `${terminalSafeJson(JSON.parse(json))}\n`;
      } catch {
        return `${terminalSafeJson(json)}\n`; // not JSON: kept, as a string, rather than dropped
      }
    })
    .join('');
}
