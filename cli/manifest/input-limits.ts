// Limits on what tsctl reads before it parses anything, so a hostile or broken input costs bounded
// time and memory on the user's machine: a file is refused by its size before it is read whole, and
// YAML nested deeper than any real manifest is refused before the YAML library builds a tree of it
// (the library recurses per level: 2 million "[" take it 14 s and 1.2 GB, then it reports a stack
// overflow anyway).

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { CST, Lexer } from 'yaml';
import { MAX_REQUEST_BYTES } from '../../common/resources/limits.js';

/** A manifest or Compose file: no larger than one API request can carry. */
export const MAX_INPUT_FILE_BYTES = MAX_REQUEST_BYTES;

/**
 * Nesting levels of YAML (block indentation levels, compact "- - x" items and flow "[{" brackets
 * together). Real manifests and Compose files nest about 10 deep; the YAML library itself overflows
 * its stack at a few hundred levels.
 */
export const MAX_YAML_NESTING = 128;

/**
 * Documents in one file. Each costs the YAML library about 17 µs even when empty: the million
 * "---" lines that fit in 4 MiB would take 17 s. Far more than one stack's objects.
 */
export const MAX_YAML_DOCUMENTS = 10_000;

/** "4194304 bytes (4 MiB)" */
export function describeBytes(bytes: number): string {
  const unit =
    bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0
      ? `${bytes / (1024 * 1024)} MiB`
      : bytes >= 1024 && bytes % 1024 === 0
        ? `${bytes / 1024} KiB`
        : undefined;
  return unit ? `${bytes} bytes (${unit})` : `${bytes} bytes`;
}

export type CappedRead =
  | { ok: true; data: Buffer }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'not-a-file' }
  | { ok: false; reason: 'too-large'; size: number }
  | { ok: false; reason: 'unreadable'; message: string };

/**
 * Reads a regular file of at most `maxBytes`. The size is checked before reading; a FIFO or device
 * is refused without blocking on it (opened non-blocking, then checked with fstat); a file that
 * grows while it is read is refused too, so no more than maxBytes + 1 bytes are ever held.
 */
export function readCapped(path: string, maxBytes: number): CappedRead {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, reason: 'missing' };
    return { ok: false, reason: 'unreadable', message: (error as Error).message };
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { ok: false, reason: 'not-a-file' };
    if (stat.size > maxBytes) return { ok: false, reason: 'too-large', size: stat.size };
    const buffer = Buffer.alloc(Math.min(maxBytes + 1, stat.size + 1));
    let length = 0;
    for (;;) {
      if (length === buffer.length) return { ok: false, reason: 'too-large', size: length };
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return { ok: true, data: buffer.subarray(0, length) };
  } catch (error) {
    return { ok: false, reason: 'unreadable', message: (error as Error).message };
  } finally {
    closeSync(fd);
  }
}

/** The message for a failed read, e.g. "is 5000000 bytes, more than the 4194304 bytes (4 MiB) allowed". */
export function cappedReadProblem(result: Exclude<CappedRead, { ok: true }>, maxBytes: number): string {
  switch (result.reason) {
    case 'missing':
      return 'no such file';
    case 'not-a-file':
      return 'not a regular file';
    case 'too-large':
      return `${result.size} bytes or more, larger than the ${describeBytes(maxBytes)} allowed`;
    case 'unreadable':
      return `cannot read: ${result.message}`;
  }
}

/**
 * The message for a manifest or Compose file that was not read: "refused before parsing: ... (one
 * API request's limit)" when too large, "cannot read: ..." otherwise.
 */
export function inputFileProblem(result: Exclude<CappedRead, { ok: true }>): string {
  const problem = cappedReadProblem(result, MAX_INPUT_FILE_BYTES);
  if (result.reason === 'too-large') return `refused before parsing: ${problem} (one API request's limit)`;
  return result.reason === 'unreadable' ? problem : `cannot read: ${problem}`;
}

/** The text is refused when larger than one API request, before any parsing. */
export function textSizeProblem(text: string, maxBytes = MAX_INPUT_FILE_BYTES): string | undefined {
  // A string of n UTF-16 units is at least n and at most 3n bytes of UTF-8: count only when needed.
  if (text.length * 3 <= maxBytes) return undefined;
  const bytes = text.length > maxBytes ? text.length : Buffer.byteLength(text);
  return bytes > maxBytes ? `${bytes} bytes or more, larger than the ${describeBytes(maxBytes)} allowed` : undefined;
}

/** Tokens the lexer yields that are not source text (document start, scalar and flow-error markers). */
const LEXER_MARKERS = new Set(['\x02', '\x18', '\x1f']);

/**
 * Where the YAML text nests deeper than `max` or starts its MAX_YAML_DOCUMENTS + 1st document,
 * found with the YAML library's lexer (which is iterative and knows quoting, comments and block
 * scalars) before anything recursive runs. Depth counts open flow brackets, the "- ", "? " and ": "
 * indicators of the current line, and the increasing indentations of the lines above: an upper
 * bound on the tree's depth.
 */
export function yamlStructureProblem(text: string, max = MAX_YAML_NESTING): { offset: number; message: string } | undefined {
  let documents = 0;
  let offset = 0;
  let flow = 0;
  let indicators = 0;
  let lineStart = true;
  let indent = 0;
  const indents: number[] = [];
  let scalarFollows = false;
  for (const token of new Lexer().lex(text)) {
    if (token.length === 1 && LEXER_MARKERS.has(token)) {
      scalarFollows = token === '\x1f';
      continue;
    }
    const at = offset;
    offset += token.length;
    // The source of a scalar follows its marker: any text (a block scalar's lines too), never an indicator.
    const type = scalarFollows ? 'scalar-source' : CST.tokenType(token);
    scalarFollows = false;
    if (type === 'newline') {
      lineStart = true;
      indent = 0;
      indicators = 0;
      continue;
    }
    if (lineStart && type === 'scalar-source') indent += token.length - token.trimStart().length;
    if (type === 'space' || type === 'comment' || type === 'byte-order-mark') {
      if (lineStart && type === 'space') indent = token.length;
      continue;
    }
    if (lineStart && flow === 0) {
      // The first content of a line: close the indentation levels it is not inside any more.
      while (indents.length > 0 && (indents.at(-1) ?? 0) > indent) indents.pop();
      if (indents.length === 0 || (indents.at(-1) ?? 0) < indent) indents.push(indent);
    }
    lineStart = false;
    if (type === 'flow-seq-start' || type === 'flow-map-start') flow++;
    else if (type === 'flow-seq-end' || type === 'flow-map-end') flow = Math.max(0, flow - 1);
    else if (flow === 0 && (type === 'seq-item-ind' || type === 'explicit-key-ind' || type === 'map-value-ind')) indicators++;
    else if (type === 'doc-start' || type === 'doc-end') {
      indents.length = 0;
      indicators = 0;
      flow = 0;
      if (type === 'doc-start' && ++documents > MAX_YAML_DOCUMENTS) {
        return { offset: at, message: `has more than ${MAX_YAML_DOCUMENTS} documents; split it into several files` };
      }
    }
    const depth = indents.length + indicators + flow;
    if (depth > max) {
      return {
        offset: at,
        message: `nested more than ${max} levels deep; manifests and Compose files nest far less, so this file is refused before it is parsed`,
      };
    }
  }
  return undefined;
}

/** 1-based line and column of an offset into the text. */
export function positionOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let at = text.indexOf('\n'); at >= 0 && at < offset; at = text.indexOf('\n', at + 1)) {
    line++;
    lineStart = at + 1;
  }
  return { line, col: offset - lineStart + 1 };
}
