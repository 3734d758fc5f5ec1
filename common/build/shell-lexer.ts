// Docker's word processing for Dockerfile arguments: splitting an argument list into words the
// way the Dockerfile parser does (quotes and escapes kept), and expanding one word the way
// BuildKit's shell lexer does ($VAR, ${VAR}, ${VAR:-word}, ${VAR-word}, ${VAR:+word},
// ${VAR+word}, ${VAR:?msg}, ${VAR?msg}, ${VAR#pat}, ${VAR##pat}, ${VAR%pat}, ${VAR%%pat},
// ${VAR/pat/repl}, ${VAR//pat/repl}; single and double quotes; the escape character). Variables
// that are not set expand to nothing, as in Docker. Written from the Dockerfile reference and
// BuildKit's documented behaviour, not copied.

import { MAX_EXPANSION_CHARS } from './dockerfile-limits.js';

/** Thrown for a malformed word; the caller adds the file:line:column. */
export class WordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WordError';
  }
}

export type VariableLookup = (name: string) => string | undefined;

/** A raw word and where it starts and ends in the text it came from. */
export interface RawWordSpan {
  readonly word: string;
  readonly start: number;
  readonly end: number;
}

/**
 * Splits an argument list on unquoted whitespace, keeping quotes and escapes in the words (they
 * are removed by expandWord), as Docker's parser splits COPY, ADD, VOLUME, EXPOSE... arguments.
 */
export function splitRawWords(text: string, escape: string): string[] {
  return rawWordSpans(text, escape).map((span) => span.word);
}

export function rawWordSpans(text: string, escape: string): RawWordSpan[] {
  const spans: RawWordSpan[] = [];
  let start = -1;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (quote === undefined && /\s/.test(ch)) {
      if (start !== -1) spans.push({ word: text.slice(start, i), start, end: i });
      start = -1;
      continue;
    }
    if (start === -1) start = i;
    if (ch === escape && quote !== "'" && i + 1 < text.length) {
      i++;
    } else if (quote === undefined && (ch === '"' || ch === "'")) {
      quote = ch;
    } else if (ch === quote) {
      quote = undefined;
    }
  }
  if (start !== -1) spans.push({ word: text.slice(start), start, end: text.length });
  return spans;
}

/** Expands one word: quotes removed, escapes applied, variables substituted; never split. */
export function expandWord(word: string, lookup: VariableLookup, escape: string): string {
  return new WordExpander(word, lookup, escape, false).run();
}

/**
 * Expands variables in heredoc content the way a shell expands an unquoted here-document: quotes
 * stay, the escape character only escapes `$`, itself and a newline.
 */
export function expandHeredoc(content: string, lookup: VariableLookup, escape: string): string {
  return new WordExpander(content, lookup, escape, true).run();
}

const NAME_START = /[A-Za-z0-9_]/;
/** Pattern removal tries every prefix length: bounded so it stays quadratic in a small number. */
const MAX_PATTERN_SUBJECT = 4096;

class WordExpander {
  private pos = 0;
  private produced = 0;

  constructor(
    private readonly text: string,
    private readonly lookup: VariableLookup,
    private readonly escape: string,
    /** Heredoc mode: quotes are ordinary characters. */
    private readonly raw: boolean,
  ) {}

  run(): string {
    const out = this.until(undefined);
    if (this.pos < this.text.length) throw new WordError(`unexpected '${this.text.charAt(this.pos)}'`);
    return out;
  }

  /** Processes until `stop` (unescaped, unquoted) or the end; leaves pos on the stop character. */
  private until(stop: string | undefined): string {
    let out = '';
    while (this.pos < this.text.length) {
      const ch = this.text.charAt(this.pos);
      if (ch === stop) return out;
      if (ch === this.escape) {
        out = this.add(out, this.escaped());
      } else if (ch === '$') {
        this.pos++;
        out = this.add(out, this.dollar());
      } else if (!this.raw && ch === "'") {
        out = this.add(out, this.singleQuoted());
      } else if (!this.raw && ch === '"') {
        out = this.add(out, this.doubleQuoted());
      } else {
        out = this.add(out, ch);
        this.pos++;
      }
    }
    return out;
  }

  private add(out: string, more: string): string {
    this.produced += more.length;
    if (this.produced > MAX_EXPANSION_CHARS) {
      throw new WordError(`expansion is longer than the limit of ${MAX_EXPANSION_CHARS} characters (MAX_EXPANSION_CHARS)`);
    }
    return out + more;
  }

  private escaped(): string {
    const next = this.text.charAt(this.pos + 1);
    if (this.raw) {
      // A here-document: only $, the escape itself and a newline are escapable.
      if (next === '$' || next === this.escape) {
        this.pos += 2;
        return next;
      }
      if (next === '\n') {
        this.pos += 2;
        return '';
      }
      this.pos++;
      return this.escape;
    }
    this.pos += 2;
    // A trailing escape character stands for itself.
    return next === '' ? this.escape : next;
  }

  private singleQuoted(): string {
    const end = this.text.indexOf("'", this.pos + 1);
    if (end === -1) throw new WordError('unexpected end of statement while looking for matching single-quote');
    const inside = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return inside;
  }

  private doubleQuoted(): string {
    this.pos++;
    let out = '';
    while (this.pos < this.text.length) {
      const ch = this.text.charAt(this.pos);
      if (ch === '"') {
        this.pos++;
        return out;
      }
      if (ch === '$') {
        this.pos++;
        out = this.add(out, this.dollar());
      } else if (ch === this.escape) {
        const next = this.text.charAt(this.pos + 1);
        // Inside double quotes the escape character only escapes ", $ and itself.
        if (next === '"' || next === '$' || next === this.escape) {
          out = this.add(out, next);
          this.pos += 2;
        } else {
          out = this.add(out, ch);
          this.pos++;
        }
      } else {
        out = this.add(out, ch);
        this.pos++;
      }
    }
    throw new WordError('unexpected end of statement while looking for matching double-quote');
  }

  /** After a `$`. */
  private dollar(): string {
    const ch = this.text.charAt(this.pos);
    if (ch === '{') {
      this.pos++;
      return this.braced();
    }
    const name = this.name();
    if (name === '') return '$';
    return this.lookup(name) ?? '';
  }

  private name(): string {
    const start = this.pos;
    while (this.pos < this.text.length && NAME_START.test(this.text.charAt(this.pos))) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private braced(): string {
    const name = this.name();
    if (name === '') throw new WordError('bad substitution: a variable name must follow "${"');
    const value = this.lookup(name);
    const ch = this.text.charAt(this.pos);
    if (ch === '}') {
      this.pos++;
      return value ?? '';
    }
    if (ch === '') throw new WordError(`missing '}' in \${${name}`);
    const colon = ch === ':';
    if (colon) this.pos++;
    const op = this.text.charAt(this.pos);
    if (op === '-' || op === '+' || op === '?') {
      this.pos++;
      const word = this.closing(name);
      const set = value !== undefined && (!colon || value !== '');
      if (op === '-') return set ? value : word;
      if (op === '+') return set ? word : '';
      if (set) return value;
      throw new WordError(`${name}: ${word === '' ? (colon ? 'is not allowed to be empty' : 'is not defined') : word}`);
    }
    if (colon) throw new WordError(`unsupported modifier (:${op}) in substitution of ${name}`);
    if (op === '#' || op === '%') return this.trim(name, value ?? '', op);
    if (op === '/') return this.replace(name, value ?? '');
    throw new WordError(`unsupported modifier (${op}) in substitution of ${name}`);
  }

  /** The word of a modifier, expanded, up to and including the closing brace. */
  private closing(name: string): string {
    const word = this.until('}');
    if (this.text.charAt(this.pos) !== '}') throw new WordError(`missing '}' in \${${name}`);
    this.pos++;
    return word;
  }

  private trim(name: string, value: string, op: '#' | '%'): string {
    this.pos++;
    const longest = this.text.charAt(this.pos) === op;
    if (longest) this.pos++;
    const pattern = new RegExp(`^(?:${globToRegExpSource(this.closing(name))})$`);
    if (value.length > MAX_PATTERN_SUBJECT) {
      throw new WordError(`\${${name}${op}...}: the value is longer than the ${MAX_PATTERN_SUBJECT} characters a pattern is matched against`);
    }
    // Shortest or longest matching prefix (#) or suffix (%), as the shell picks them.
    for (let i = 0; i <= value.length; i++) {
      const length = longest ? value.length - i : i;
      const part = op === '#' ? value.slice(0, length) : value.slice(value.length - length);
      if (pattern.test(part)) return op === '#' ? value.slice(length) : value.slice(0, value.length - length);
    }
    return value;
  }

  private replace(name: string, value: string): string {
    this.pos++;
    const all = this.text.charAt(this.pos) === '/';
    if (all) this.pos++;
    const pattern = this.until('/');
    let replacement = '';
    if (this.text.charAt(this.pos) === '/') {
      this.pos++;
      replacement = this.closing(name);
    } else {
      if (this.text.charAt(this.pos) !== '}') throw new WordError(`missing '}' in \${${name}`);
      this.pos++;
    }
    if (pattern === '') return value;
    if (value.length > MAX_PATTERN_SUBJECT) {
      throw new WordError(`\${${name}/...}: the value is longer than the ${MAX_PATTERN_SUBJECT} characters a pattern is matched against`);
    }
    const regex = new RegExp(globToRegExpSource(pattern), all ? 'g' : '');
    return value.replace(regex, () => replacement);
  }
}

/** A shell glob (`*`, `?`, literal characters) as a regular expression source. */
function globToRegExpSource(glob: string): string {
  let source = '';
  for (const ch of glob) {
    if (ch === '*') source += '[\\s\\S]*?';
    else if (ch === '?') source += '[\\s\\S]';
    else source += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return source;
}
