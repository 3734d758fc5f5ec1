// Instruction flags (`--from=build`, `--link`), read as Docker's parser reads them: the leading
// words that start with "--", each `--name=value` or, for a boolean flag, `--name`.

import { BuildError, type BuildSourceLocation } from './builder.js';
import { rawWordSpans } from './shell-lexer.js';

export interface FlagRules {
  /** Flags taking a value. */
  readonly values?: readonly string[];
  /** Flags that are true when present (`--link`, `--link=true`, `--link=false`). */
  readonly booleans?: readonly string[];
  /** Flags Docker has and we refuse, with the reason given in the error. */
  readonly refused?: Readonly<Record<string, string>>;
}

export interface ParsedFlags {
  /** Values as written (quotes still in: the planner expands them). */
  readonly values: ReadonlyMap<string, string>;
  readonly booleans: ReadonlySet<string>;
  /** The arguments after the flags. */
  readonly rest: string;
}

export function parseFlags(keyword: string, args: string, escape: string, rules: FlagRules, location: BuildSourceLocation): ParsedFlags {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  const seen = new Set<string>();
  let restStart = 0;
  for (const span of rawWordSpans(args, escape)) {
    if (!span.word.startsWith('--')) {
      restStart = span.start;
      break;
    }
    restStart = span.end;
    const equals = span.word.indexOf('=');
    const name = span.word.slice(2, equals === -1 ? undefined : equals);
    const value = equals === -1 ? undefined : span.word.slice(equals + 1);
    if (seen.has(name)) throw new BuildError(`${keyword}: duplicate flag specified: --${name}`, location);
    seen.add(name);
    const refusal = rules.refused?.[name];
    if (refusal !== undefined) throw new BuildError(`${keyword} --${name} is not supported: ${refusal}`, location);
    if (rules.booleans?.includes(name) === true) {
      if (value === undefined || value === 'true') booleans.add(name);
      else if (value !== 'false') throw new BuildError(`${keyword}: expecting boolean value for flag --${name}, not "${value}"`, location);
    } else if (rules.values?.includes(name) === true) {
      if (value === undefined || value === '') throw new BuildError(`${keyword}: missing a value on flag --${name}`, location);
      values.set(name, value);
    } else {
      throw new BuildError(`${keyword}: unknown flag: --${name}`, location);
    }
  }
  return { values, booleans, rest: args.slice(restStart).trim() };
}
