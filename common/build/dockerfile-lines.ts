// The line structure of a Dockerfile: parser directives, instructions with their line
// continuations joined and comment lines inside them dropped, and the bodies of heredocs.
// dockerfile-ast finds the directives, the escape character and where each instruction starts;
// the joining below follows Docker's own rules exactly (the escape character followed only by
// blanks continues a line, blank and comment lines inside a continuation are skipped, the next
// line's leading blanks are kept), which the language-server-oriented parser does not attempt.

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
  const ast = DockerfileParser.parse(text);
  let escape = '\\';
  let syntax: string | undefined;
  for (const directive of ast.getDirectives()) {
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

  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  const walker = new LineWalker(lines, escape, file);
  const instructions: RawInstruction[] = [];
  let nextFree = 0;
  for (const node of ast.getInstructions()) {
    const start = node.getRange().start;
    // A start inside what the previous instruction consumed (a heredoc body the other parser
    // read differently) is not an instruction: Docker's rules decide.
    if (start.line < nextFree) continue;
    walker.assertOnlyBlankOrComments(nextFree, start.line);
    if (instructions.length >= MAX_INSTRUCTIONS) {
      throw new BuildError(`more than the limit of ${MAX_INSTRUCTIONS} instructions (MAX_INSTRUCTIONS)`, { file, line: start.line + 1, column: start.character + 1 });
    }
    const { instruction, nextLine } = walker.read(start.line, start.character);
    instructions.push(instruction);
    nextFree = nextLine;
  }
  walker.assertOnlyBlankOrComments(nextFree, lines.length);
  return syntax === undefined ? { escape, instructions } : { escape, syntax, instructions };
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
    let logical = (this.lines[line] ?? '').slice(column);
    let index = line;
    while (this.continuation.test(logical)) {
      logical = logical.replace(this.continuation, '');
      index++;
      // Blank and comment lines inside a continuation are skipped, as Docker does.
      while (index < this.lines.length && isBlankOrComment(this.lines[index] ?? '')) index++;
      if (index >= this.lines.length) break;
      logical += this.lines[index] ?? '';
    }
    const trimmed = logical.trim();
    const space = trimmed.search(/\s/);
    const written = space === -1 ? trimmed : trimmed.slice(0, space);
    const args = space === -1 ? '' : trimmed.slice(space).trim();
    const keyword = written.toUpperCase();
    const heredocs: RawHeredoc[] = [];
    let next = index + 1;
    if (HEREDOC_KEYWORDS.has(keyword)) {
      for (const opener of heredocOpeners(args, this.escape)) {
        const body = this.heredocBody(next, opener, location);
        heredocs.push(body.heredoc);
        next = body.nextLine;
      }
    }
    const text = args === '' ? written : `${written} ${args}`;
    return { instruction: { keyword, location, args, text, heredocs }, nextLine: next };
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

  assertOnlyBlankOrComments(from: number, to: number): void {
    for (let index = from; index < to; index++) {
      const line = this.lines[index] ?? '';
      if (!isBlankOrComment(line)) {
        const column = line.length - line.trimStart().length + 1;
        throw new BuildError(`cannot parse this line as an instruction`, { file: this.file, line: index + 1, column });
      }
    }
  }
}

function isBlankOrComment(line: string): boolean {
  const trimmed = line.trim();
  return trimmed === '' || trimmed.startsWith('#');
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
