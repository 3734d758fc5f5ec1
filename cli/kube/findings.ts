// Where every translation problem goes. A Kubernetes field Tessera cannot honour is refused by
// name: an error by default, or, with --lenient, a warning and the field is dropped. Input that is
// simply malformed (a string where a list belongs) is always an error.
import type { IssuePath } from '../../common/resources/schema.js';

export interface KubeIssue {
  /** Index of the document in the input to translateKube. */
  doc: number;
  /** Field path inside that document, e.g. ['spec', 'template', 'spec', 'containers', 0, 'lifecycle']. */
  path: IssuePath;
  message: string;
}

export class Findings {
  readonly errors: KubeIssue[] = [];
  readonly warnings: KubeIssue[] = [];

  constructor(readonly lenient: boolean) {}

  forDoc(doc: number): DocContext {
    return new DocContext(doc, this);
  }
}

/** The problems of one document; every field path is relative to the document's root. */
export class DocContext {
  constructor(
    readonly doc: number,
    private readonly findings: Findings,
  ) {}

  /** A field that cannot be honoured. The caller must leave it out of the translation. */
  refuse(path: IssuePath, why: string): void {
    const issue = { doc: this.doc, path, message: `not supported (${why})` };
    (this.findings.lenient ? this.findings.warnings : this.findings.errors).push(issue);
  }

  /** Malformed input: an error even with --lenient. */
  invalid(path: IssuePath, message: string): void {
    this.findings.errors.push({ doc: this.doc, path, message });
  }
}

/**
 * How each key of a mapping is treated: `true` when the caller translates it (or it has no
 * behaviour to honour, like a container's name), a string when it is refused for that reason.
 * Keys not listed are refused as having no Tessera equivalent.
 */
export type FieldRules = Readonly<Record<string, true | string>>;

function asksNothing(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value).length === 0;
}

export function checkFields(ctx: DocContext, value: Readonly<Record<string, unknown>>, path: IssuePath, rules: FieldRules): void {
  for (const key of Object.keys(value)) {
    const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
    if (rule === true) continue;
    if (asksNothing(value[key])) continue; // `key:`, `key: {}` or `key: []` asks for nothing
    ctx.refuse([...path, key], rule ?? 'Tessera has no equivalent');
  }
}
