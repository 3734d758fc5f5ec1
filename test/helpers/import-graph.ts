// The import graph of the repository's TypeScript, read from the source text: every module a file
// names in a static import or export, a side-effect import or a dynamic import() with a literal
// specifier. A small tokenizer skips comments, string and template contents and regular
// expressions, so an import written inside a comment or a string is not taken for one.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

type Token = { kind: 'word' | 'punct' | 'string'; text: string; line: number };

/** Words after which a `/` starts a regular expression, not a division. */
const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

/**
 * Splits TypeScript source into words, punctuation and string literals (with their value).
 * Comments, template text, regular expressions and numbers are dropped; expressions inside a
 * template's `${…}` are tokenized like any other code.
 */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  // One entry per open `${`: the brace depth at which its `}` resumes the template text.
  const templateDepths: number[] = [];
  let braces = 0;
  let line = 1;
  let i = 0;
  const n = source.length;

  const regexMayStart = (): boolean => {
    const last = tokens[tokens.length - 1];
    if (!last) return true;
    if (last.kind === 'string') return false;
    if (last.kind === 'word') return REGEX_AFTER_WORD.has(last.text);
    return !(last.text === ')' || last.text === ']' || last.text === '}');
  };

  /** Skips template text from i (just after ` or a closing `}`) to the closing ` or the next `${`. */
  const templateText = (): void => {
    while (i < n) {
      const c = source[i]!;
      if (c === '\\') {
        i += 2;
      } else if (c === '`') {
        i++;
        tokens.push({ kind: 'string', text: '', line });
        return;
      } else if (c === '$' && source[i + 1] === '{') {
        i += 2;
        templateDepths.push(braces);
        braces++;
        return;
      } else {
        if (c === '\n') line++;
        i++;
      }
    }
  };

  while (i < n) {
    const c = source[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '/' && source[i + 1] === '/') {
      while (i < n && source[i] !== '\n') i++;
    } else if (c === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      for (let k = i; k < stop; k++) if (source[k] === '\n') line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      let value = '';
      i++;
      while (i < n && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\') {
          value += source[i + 1] ?? '';
          i += 2;
        } else {
          value += source[i];
          i++;
        }
      }
      i++;
      tokens.push({ kind: 'string', text: value, line });
    } else if (c === '`') {
      i++;
      templateText();
    } else if (c === '/' && regexMayStart()) {
      let inClass = false;
      i++;
      while (i < n && source[i] !== '\n') {
        const r = source[i]!;
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      i++;
      while (i < n && /[a-z]/i.test(source[i]!)) i++; // flags
      tokens.push({ kind: 'punct', text: 'regex', line });
    } else if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w$]/.test(source[j]!)) j++;
      tokens.push({ kind: 'word', text: source.slice(i, j), line });
      i = j;
    } else if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(source[j]!)) j++;
      tokens.push({ kind: 'punct', text: 'number', line });
      i = j;
    } else {
      if (c === '{') braces++;
      if (c === '}') {
        braces--;
        if (templateDepths.length > 0 && templateDepths[templateDepths.length - 1] === braces) {
          templateDepths.pop();
          i++;
          templateText();
          continue;
        }
      }
      tokens.push({ kind: 'punct', text: c, line });
      i++;
    }
  }
  return tokens;
}

export interface ImportSpecifier {
  specifier: string;
  line: number;
}

/** Tokens that may stand between `import`/`export` and `from` in an import or re-export clause. */
function inClause(token: Token): boolean {
  return token.kind === 'word' || (token.kind === 'punct' && ['{', '}', ',', '*'].includes(token.text));
}

/** Every module specifier the source imports or re-exports, statically or by `import('…')`. */
export function importSpecifiers(source: string): ImportSpecifier[] {
  const tokens = tokenize(source);
  const found: ImportSpecifier[] = [];
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t]!;
    if (token.kind !== 'word' || (token.text !== 'import' && token.text !== 'export')) continue;
    const previous = tokens[t - 1];
    if (previous?.kind === 'punct' && previous.text === '.') continue; // a property named import
    const next = tokens[t + 1];
    if (token.text === 'import' && next?.kind === 'string') {
      found.push({ specifier: next.text, line: next.line }); // import './side-effect.js'
      continue;
    }
    if (token.text === 'import' && next?.text === '(') {
      const argument = tokens[t + 2];
      const close = tokens[t + 3];
      if (argument?.kind === 'string' && close?.text === ')' && argument.text !== '') found.push({ specifier: argument.text, line: argument.line });
      continue;
    }
    // import … from '…' / export … from '…': the clause runs to `from` and the specifier.
    let u = t + 1;
    while (u < tokens.length && inClause(tokens[u]!) && !['from', 'import', 'export'].includes(tokens[u]!.text)) u++;
    const from = tokens[u];
    const specifier = tokens[u + 1];
    if (from?.kind === 'word' && from.text === 'from' && specifier?.kind === 'string') found.push({ specifier: specifier.text, line: specifier.line });
  }
  return found;
}

const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'build']);

/** Every .ts/.mts file under `root`, as repository-relative paths with `/`. */
export function typeScriptFiles(root: string, dir = root): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || SKIPPED_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...typeScriptFiles(root, path));
    else if (/\.m?ts$/.test(entry.name)) out.push(relative(root, path).split(sep).join('/'));
  }
  return out.sort();
}

export interface ImportEdge {
  /** The importing file, repository-relative. */
  from: string;
  /** The imported file, repository-relative, with the source extension (.js → .ts). */
  to: string;
  line: number;
}

/** The repository's relative imports, each resolved to the file it names (package imports are left out). */
export function importEdges(root: string, files: readonly string[]): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of files) {
    for (const { specifier, line } of importSpecifiers(readFileSync(join(root, file), 'utf8'))) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const to = posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.(m?)js$/, '.$1ts');
      edges.push({ from: file, to, line });
    }
  }
  return edges;
}

/** The repository's root, two levels above this helper. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
