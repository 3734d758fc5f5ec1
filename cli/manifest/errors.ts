// The one error type manifest loading throws. It carries every problem found (not just the first),
// each with the file and, where known, the line and column, so the CLI can print them compiler-style.

import type { IssuePath } from '../../common/resources/schema.js';
import { capErrorMessage, quoteName } from '../../common/resources/limits.js';

export interface ManifestIssue {
  file: string;
  /** 1-based; absent when the problem is with the file as a whole (unreadable, empty directory). */
  line?: number;
  col?: number;
  /** The field the problem is about, e.g. ['spec', 'ports', 0, 'published']. */
  path?: IssuePath;
  message: string;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** How much of the YAML library's message is kept: it quotes the offending token whole. */
const YAML_PROBLEM_MAX = 200;

/**
 * The YAML library's message without its " at line L, column C:" and code frame (we print our own
 * position), and cut: binary garbage makes the quoted token 30,000 characters long.
 */
export function yamlProblem(message: string): string {
  const first = (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
  return first.length > YAML_PROBLEM_MAX ? `${first.slice(0, YAML_PROBLEM_MAX)}...` : first;
}

/** Keys longer than this are quoted shortened (a key can be megabytes long). */
const PLAIN_KEY_MAX = 64;

/** ['spec', 'ports', 0, 'published'] → "spec.ports[0].published"; odd or long keys are quoted. */
export function formatPath(path: IssuePath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment) && segment.length <= PLAIN_KEY_MAX) out += out === '' ? segment : `.${segment}`;
    else out += `[${quoteName(segment)}]`;
  }
  return out;
}

/** "stack.yaml:7:5: spec.replicas: expected an integer >= 0, got \"three\"", at most 4 KiB. */
export function formatIssue(issue: ManifestIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}:${issue.col ?? 1}`;
  const field = issue.path && issue.path.length > 0 ? `${formatPath(issue.path)}: ` : '';
  return capErrorMessage(`${where}: ${field}${issue.message}`);
}

/**
 * Problems located and printed per file (and in one error). Past this the rest are counted, not
 * located: locating one costs a walk of its mapping, and a file of 100,000 unknown keys would
 * otherwise take minutes to report, in an error nobody reads to the end.
 */
export const MAX_REPORTED_ISSUES = 100;

/** How the note of problems not shown starts, so a sort can keep it last. */
export const NOT_SHOWN_PREFIX = '... and ';

/** The first MAX_REPORTED_ISSUES items made into issues, and a note of how many more there were. */
export function firstIssues<T>(items: readonly T[], file: string, toIssue: (item: T) => ManifestIssue): ManifestIssue[] {
  const shown = items.slice(0, MAX_REPORTED_ISSUES).map(toIssue);
  const more = items.length - shown.length;
  return more > 0 ? [...shown, { file, message: `${NOT_SHOWN_PREFIX}${more} more problems of this kind in this file, not shown` }] : shown;
}

/** Lines of one error's message: room for a full file's problems with their note, and more. */
export const MAX_PRINTED_ISSUES = 2 * MAX_REPORTED_ISSUES;

function formatIssues(issues: readonly ManifestIssue[]): string {
  const lines = issues.slice(0, MAX_PRINTED_ISSUES).map(formatIssue);
  const more = issues.length - lines.length;
  return more > 0 ? `${lines.join('\n')}\n${NOT_SHOWN_PREFIX}${more} more problems, not shown` : lines.join('\n');
}

export class ManifestError extends Error {
  override name = 'ManifestError';
  readonly issues: readonly ManifestIssue[];

  constructor(issues: readonly ManifestIssue[]) {
    super(formatIssues(issues));
    this.issues = issues;
  }
}
