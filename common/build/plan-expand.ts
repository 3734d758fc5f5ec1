// Expansion as the planner uses it: errors located at the instruction, and a budget for the
// whole plan, so that ARGs doubling each other cannot make planning use unbounded memory even
// though every single word stays under MAX_EXPANSION_CHARS.

import { BuildError, type BuildSourceLocation } from './builder.js';
import type { ArgDeclaration } from './dockerfile-instructions.js';
import { expandHeredoc, expandWord, WordError, type VariableLookup } from './shell-lexer.js';

/** Characters all expansions of one plan may produce together. */
export const MAX_PLAN_EXPANSION_CHARS = 16 * 1024 * 1024;

export class Expander {
  private used = 0;

  constructor(readonly escape: string) {}

  word(word: string, lookup: VariableLookup, at: BuildSourceLocation): string {
    return this.count(() => expandWord(word, lookup, this.escape), at);
  }

  heredoc(content: string, lookup: VariableLookup, at: BuildSourceLocation): string {
    return this.count(() => expandHeredoc(content, lookup, this.escape), at);
  }

  private count(expand: () => string, at: BuildSourceLocation): string {
    let result: string;
    try {
      result = expand();
    } catch (error) {
      if (error instanceof WordError) throw new BuildError(error.message, at);
      throw error;
    }
    this.used += result.length;
    if (this.used > MAX_PLAN_EXPANSION_CHARS) {
      throw new BuildError(`expansions produce more than the limit of ${MAX_PLAN_EXPANSION_CHARS} characters in all (MAX_PLAN_EXPANSION_CHARS)`, at);
    }
    return result;
  }
}

/** Where an ARG's value comes from, highest first. */
export interface ArgSources {
  readonly buildArgs: Readonly<Record<string, string>>;
  /** The global ARGs (before the first FROM) with their values; consulted by `ARG NAME` inside a stage. */
  readonly globalArgs?: ReadonlyMap<string, string | undefined>;
  /** The automatic platform args. */
  readonly automatic: ReadonlyMap<string, string>;
}

/**
 * An ARG's value: the --build-arg, else its own default (expanded), else (in a stage, for
 * `ARG NAME` without default) the global ARG's or automatic arg's value; undefined when none.
 */
export function argValue(declaration: ArgDeclaration, sources: ArgSources, expand: (word: string) => string): string | undefined {
  if (Object.hasOwn(sources.buildArgs, declaration.name)) return sources.buildArgs[declaration.name];
  if (declaration.defaultValue !== undefined) return expand(declaration.defaultValue);
  if (sources.globalArgs?.has(declaration.name) === true) return sources.globalArgs.get(declaration.name);
  return sources.automatic.get(declaration.name);
}
