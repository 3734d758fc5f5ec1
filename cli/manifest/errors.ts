// The one error type manifest loading throws. It carries every problem found (not just the first),
// each with the file and, where known, the line and column, so the CLI can print them compiler-style.

import type { IssuePath } from '../../control-plane/resources/schema.js';

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

/** ['spec', 'ports', 0, 'published'] → "spec.ports[0].published"; odd keys are quoted. */
export function formatPath(path: IssuePath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** "stack.yaml:7:5: spec.replicas: expected an integer >= 0, got \"three\"" */
export function formatIssue(issue: ManifestIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}:${issue.col ?? 1}`;
  const field = issue.path && issue.path.length > 0 ? `${formatPath(issue.path)}: ` : '';
  return `${where}: ${field}${issue.message}`;
}

export class ManifestError extends Error {
  override name = 'ManifestError';
  readonly issues: readonly ManifestIssue[];

  constructor(issues: readonly ManifestIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}
