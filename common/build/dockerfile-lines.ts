// The line structure of a Dockerfile: parser directives, instructions with their line
// continuations joined and comment lines inside them dropped, and the bodies of heredocs.
//
// dockerfile-ast reads the parser directives (and so the escape character). It is not run over
// the whole file: its parse grows faster than linearly with the input (measured here: 3.2 s for a
// 200 KB line, 1.4 s for 40,000 continued lines), and planning runs inside tsd, whose event loop
// also carries Raft heartbeats. The instructions are found by the walk below, in one linear pass,
// following Docker's own rules: the escape character followed only by blanks continues a line,
// blank and comment lines inside a continuation are skipped, the next line's leading blanks are
// kept, and RUN, COPY and ADD read heredoc bodies after their line.

import { DockerfileParser } from 'dockerfile-ast';
import { BuildError, type BuildSourceLocation } from './builder.js';
import { MAX_DOCKERFILE_BYTES, MAX_INSTRUCTIONS } from './dockerfile-limits.js';
import { splitRawWords } from './shell-lexer.js';

export interface RawHeredoc {
  /** The delimiter without quotes. */
  readonly name: string;
  /** The body, every line ending in "\n"; for `<<-`, leading tabs removed. */
  readonly content: string;
  /** `<<-`: leading tabs were removed from the body and the delimiter line. */
  readonly chomp: boolean;
  /** False when the delimiter was quoted: variables in the body are not expanded. */
  readonly expand: boolean;
}

export interface RawInstruction {
  /** Upper-case keyword, e.g. "RUN". */
  readonly keyword: string;
  readonly location: BuildSourceLocation;
  /** Everything after the keyword on the logical line, trimmed (no heredoc bodies). */
  readonly args: string;
  /** The instruction as written with continuations joined, e.g. "RUN make all". */
  readonly text: string;
  readonly heredocs: readonly RawHeredoc[];
  /** Where the joined pieces of the logical line came from in the file (offsets into that line). */
  readonly argPieces: readonly SourcePiece[];
  /** Where `args` starts in the logical line. */
  readonly argsOffset: number;
}

export interface SourcePiece {
  readonly offset: number;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
}

/** What error positions are computed from: an instruction's location, arguments and their pieces. */
export interface ArgumentSource {
  readonly location: BuildSourceLocation;
  readonly args: string;
  readonly argPieces: readonly SourcePiece[];
  readonly argsOffset: number;
}

/** The file position of `args[offset]` (the instruction's own location when unknown). */
export function locateInArgs(source: ArgumentSource, offset: number): BuildSourceLocation {
  const logical = offset + source.argsOffset;
  let found: SourcePiece | undefined;
  for (const piece of source.argPieces) if (piece.offset <= logical) found = piece;
  if (found === undefined) return source.location;
  return { file: source.location.file, line: found.line, column: found.column + logical - found.offset };
}

/**
 * The file position of a word of the arguments: where its text (or, for a JSON form, its JSON
 * string) first occurs; the instruction's location when it cannot be found. Only computed for
 * an error, so the search costs nothing on the way to a plan.
 */
export function wordLocation(source: ArgumentSource, word: string): BuildSourceLocation {
  if (word === '') return source.location;
  let offset = source.args.indexOf(word);
  if (offset === -1) {
    const json = source.args.indexOf(JSON.stringify(word));
    offset = json === -1 ? -1 : json + 1;
  }
  return offset === -1 ? source.location : locateInArgs(source, offset);
}

export interface DockerfileLines {
  /** The escape character: "\\" unless `# escape=`` ` says otherwise. */
  readonly escape: string;
  /** The `# syntax=` directive's value, if any (we are the frontend: it only gets a warning when it names another). */
  readonly syntax?: string;
  readonly instructions: readonly RawInstruction[];
}

/** Instructions whose arguments may open heredocs (BuildKit's Dockerfile syntax 1.4 and later). */
const HEREDOC_KEYWORDS = new Set(['RUN', 'COPY', 'ADD']);
const HEREDOC_WORD = /^[0-9]*<<(-?)(.+)$/;

export function readDockerfileLines(input: string, file: string): DockerfileLines {
  const bytes = Buffer.byteLength(input, 'utf8');
  if (bytes > MAX_DOCKERFILE_BYTES) {
    throw new BuildError(`the Dockerfile is ${bytes} bytes, more than the limit of ${MAX_DOCKERFILE_BYTES} (MAX_DOCKERFILE_BYTES)`, { file, line: 1, column: 1 });
  }
  const text = input.startsWith('\uFEFF') ? input.slice(1) : input;
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  const { escape, syntax } = readDirectives(lines, file);
  const walker = new LineWalker(lines, escape, file);
  const instructions: RawInstruction[] = [];
  let index = 0;
  while (index < lines.length) {
    const line = lines[index] ?? '';
    if (isBlankOrComment(line)) {
      index++;
      continue;
    }
    const column = line.length - line.trimStart().length;
    if (instructions.length >= MAX_INSTRUCTIONS) {
      throw new BuildError(`more than the limit of ${MAX_INSTRUCTIONS} instructions (MAX_INSTRUCTIONS)`, { file, line: index + 1, column: column + 1 });
    }
    const { instruction, nextLine } = walker.read(index, column);
    instructions.push(instruction);
    index = nextLine;
  }
  return syntax === undefined ? { escape, instructions } : { escape, syntax, instructions };
}

/** Directives are short comment lines at the very top: only that head, bounded, is given to dockerfile-ast. */
const MAX_DIRECTIVE_HEAD_LINES = 100;
const MAX_DIRECTIVE_LINE_CHARS = 1024;

function readDirectives(lines: readonly string[], file: string): { escape: string; syntax?: string } {
  const head: string[] = [];
  for (const line of lines.slice(0, MAX_DIRECTIVE_HEAD_LINES)) {
    if (!line.trimStart().startsWith('#') || line.length > MAX_DIRECTIVE_LINE_CHARS) break;
    head.push(line);
  }
  let escape = '\\';
  let syntax: string | undefined;
  for (const directive of DockerfileParser.parse(head.join('\n')).getDirectives()) {
    const name = directive.getName().toLowerCase();
    const value = directive.getValue();
    const at = { file, line: directive.getRange().start.line + 1, column: directive.getRange().start.character + 1 };
    if (name === 'escape') {
      if (value !== '\\' && value !== '`') throw new BuildError(`invalid escape token '${value}': it must be \` or \\`, at);
      escape = value;
    } else if (name === 'syntax') {
      syntax = value;
    }
    // Other directives (check=...) only tune BuildKit's linter: nothing to do.
  }
  return syntax === undefined ? { escape } : { escape, syntax };
}

class LineWalker {
  private readonly continuation: RegExp;

  constructor(
    private readonly lines: readonly string[],
    private readonly escape: string,
    private readonly file: string,
  ) {
    this.continuation = new RegExp(`${escape === '\\' ? '\\\\' : escape}[ \\t]*$`);
  }

  /** Reads the instruction starting at (line, column); returns it and the first line after it. */
  read(line: number, column: number): { instruction: RawInstruction; nextLine: number } {
    const location = { file: this.file, line: line + 1, column: column + 1 };
    // Only the line just read can end in a continuation: testing it alone keeps this linear.
    let current = (this.lines[line] ?? '').slice(column);
    const parts: string[] = [];
    // Where each joined piece starts, in the logical line and in the file (for error columns).
    const pieces: SourcePiece[] = [{ offset: 0, line: line + 1, column: column + 1 }];
    let length = 0;
    let index = line;
    while (this.continuation.test(current)) {
      const piece = current.replace(this.continuation, '');
      parts.push(piece);
      length += piece.length;
      index++;
      // Blank and comment lines inside a continuation are skipped, as Docker does.
      while (index < this.lines.length && isBlankOrComment(this.lines[index] ?? '')) index++;
      current = index < this.lines.length ? (this.lines[index] ?? '') : '';
      if (index >= this.lines.length) break;
      pieces.push({ offset: length, line: index + 1, column: 1 });
    }
    parts.push(current);
    const logical = parts.join('');
    const trimmed = logical.trimEnd();
    const space = trimmed.search(/\s/);
    const written = space === -1 ? trimmed : trimmed.slice(0, space);
    const args = space === -1 ? '' : trimmed.slice(space).trim();
    const argsOffset = args === '' ? 0 : trimmed.indexOf(args, written.length);
    const keyword = written.toUpperCase();
    const heredocs: RawHeredoc[] = [];
    let next = index + 1;
    if (HEREDOC_KEYWORDS.has(keyword) && args.includes('<<')) {
      for (const opener of heredocOpeners(args, this.escape)) {
        const body = this.heredocBody(next, opener, location);
        heredocs.push(body.heredoc);
        next = body.nextLine;
      }
    }
    const text = args === '' ? written : `${written} ${args}`;
    return { instruction: { keyword, location, args, text, heredocs, argPieces: pieces, argsOffset }, nextLine: next };
  }

  private heredocBody(from: number, opener: HeredocOpener, location: BuildSourceLocation): { heredoc: RawHeredoc; nextLine: number } {
    const body: string[] = [];
    for (let index = from; index < this.lines.length; index++) {
      const raw = this.lines[index] ?? '';
      const line = opener.chomp ? raw.replace(/^\t+/, '') : raw;
      if (line === opener.name) {
        const content = body.map((l) => `${l}\n`).join('');
        return { heredoc: { name: opener.name, content, chomp: opener.chomp, expand: opener.expand }, nextLine: index + 1 };
      }
      body.push(line);
    }
    throw new BuildError(`heredoc <<${opener.name} is not terminated: no line "${opener.name}" follows`, location);
  }

}

/** Blank, or a comment (first non-blank character "#"); scanned rather than trimmed, as it runs on every line. */
function isBlankOrComment(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const ch = line.charCodeAt(i);
    if (ch === 32 || ch === 9 || ch === 13 || ch === 11 || ch === 12) continue;
    return ch === 35;
  }
  return true;
}

interface HeredocOpener {
  readonly name: string;
  readonly chomp: boolean;
  readonly expand: boolean;
}

/** True when `word` opens a heredoc (the words heredocOpeners takes, in the same order). */
export function isHeredocOpener(word: string): boolean {
  return heredocOpener(word) !== undefined;
}

/** The `<<NAME`, `<<-NAME`, `<<"NAME"`, `<<'NAME'` words of an argument list, in order. */
function heredocOpeners(args: string, escape: string): HeredocOpener[] {
  const openers: HeredocOpener[] = [];
  for (const word of splitRawWords(args, escape)) {
    const opener = heredocOpener(word);
    if (opener !== undefined) openers.push(opener);
  }
  return openers;
}

function heredocOpener(word: string): HeredocOpener | undefined {
  const match = HEREDOC_WORD.exec(word);
  if (match === null) return undefined;
  const chomp = match[1] === '-';
  let name = match[2] ?? '';
  if (name.startsWith('<')) return undefined; // "<<<" is a here-string, not a heredoc
  let expand = true;
  const first = name.charAt(0);
  if ((first === '"' || first === "'") && name.length >= 2 && name.endsWith(first)) {
    name = name.slice(1, -1);
    expand = false;
  }
  if (name === '' || /[\s"'<>]/.test(name)) return undefined;
  return { name, chomp, expand };
}
