// The .env / env_file format Compose reads: KEY=VALUE lines, optional `export `, # comments,
// 'single quotes' (literal), "double quotes" (with \n, \t, \\, \" escapes, may span lines), and
// unquoted values (trimmed, ` #` starts a comment). Unquoted and double-quoted values interpolate
// ${VAR} from the variables above them and from the lookup; a bare KEY takes the lookup's value.

import { InterpolationError, interpolateString, type Lookup } from './interpolate.js';
import { quoteName } from '../../common/resources/limits.js';

export interface DotenvIssue {
  line: number;
  message: string;
}

export interface DotenvResult {
  values: Map<string, string>;
  issues: DotenvIssue[];
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', $: '$$' };

export function parseDotenv(text: string, lookup: Lookup = () => undefined): DotenvResult {
  const values = new Map<string, string>();
  const issues: DotenvIssue[] = [];
  const resolve: Lookup = (name) => values.get(name) ?? lookup(name);
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let index = 0; index < lines.length; index++) {
    const lineNo = index + 1;
    const raw = (lines[index] ?? '').replace(/^\uFEFF/, '');
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const body = line.startsWith('export ') ? line.slice(7).trimStart() : line;
    const eq = body.indexOf('=');
    const key = (eq < 0 ? body : body.slice(0, eq)).trim();
    if (!KEY.test(key)) {
      issues.push({ line: lineNo, message: `invalid variable name ${quoteName(key)}: expected letters, digits and "_", not starting with a digit` });
      continue;
    }
    if (eq < 0) {
      // `KEY` alone passes the variable through from the environment, if it is set there.
      const inherited = lookup(key);
      if (inherited !== undefined) values.set(key, inherited);
      continue;
    }
    let rest = body.slice(eq + 1).trimStart();
    let value: string;
    try {
      if (rest.startsWith("'")) {
        const end = rest.indexOf("'", 1);
        if (end < 0) throw new InterpolationError('missing closing single quote');
        value = rest.slice(1, end);
      } else if (rest.startsWith('"')) {
        // Double-quoted values may continue over several lines. Each line is scanned on its own
        // (a "\" ending a line escapes the newline, so the next line starts unescaped) and joined
        // once, so an unclosed quote costs the file's length, not its square.
        const valueLines = [rest.slice(1)];
        let end = closingQuote(valueLines[0] ?? '');
        while (end < 0 && index + 1 < lines.length) {
          index++;
          const next = lines[index] ?? '';
          valueLines.push(next);
          end = closingQuote(next);
        }
        if (end < 0) throw new InterpolationError(`missing closing double quote (opened on line ${lineNo})`);
        valueLines[valueLines.length - 1] = (valueLines.at(-1) ?? '').slice(0, end);
        const unescaped = valueLines.join('\n').replace(/\\(.)/g, (m: string, ch: string) => ESCAPES[ch] ?? m);
        value = interpolateString(unescaped, resolve).value;
      } else {
        const comment = rest.search(/\s#/);
        if (comment >= 0) rest = rest.slice(0, comment);
        value = interpolateString(rest.trim(), resolve).value;
      }
    } catch (error) {
      if (!(error instanceof InterpolationError)) throw error;
      issues.push({ line: lineNo, message: `${key}: ${error.message}` });
      continue;
    }
    values.set(key, value);
  }
  return { values, issues };
}

function closingQuote(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') {
      i++;
      continue;
    }
    if (text[i] === '"') return i;
  }
  return -1;
}
