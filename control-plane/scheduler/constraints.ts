// Placement constraints, Swarm syntax: `node.labels.zone==b`, `node.role!=manager`,
// `node.hostname==h1`, `node.id==n1`. Parsed once per batch, matched per node.
import type { Node } from '../resources/types.js';

export type ConstraintField =
  | { kind: 'label'; key: string }
  | { kind: 'hostname' }
  | { kind: 'role' }
  | { kind: 'id' };

export interface Constraint {
  /** The constraint as the user wrote it (trimmed), for messages. */
  text: string;
  field: ConstraintField;
  op: '==' | '!=';
  value: string;
}

export class ConstraintSyntaxError extends Error {
  constructor(readonly constraint: string, detail: string) {
    super(`invalid constraint "${constraint}": ${detail}`);
    this.name = 'ConstraintSyntaxError';
  }
}

const LABEL_PREFIX = 'node.labels.';

export function parseConstraint(raw: string): Constraint {
  const text = raw.trim();
  // "!=" is searched first: in "a!=b" the "=" of "!=" must not be read as the start of "==".
  const neq = text.indexOf('!=');
  const eq = text.indexOf('==');
  let op: Constraint['op'];
  let at: number;
  if (neq >= 0 && (eq < 0 || neq < eq)) {
    op = '!=';
    at = neq;
  } else if (eq >= 0) {
    op = '==';
    at = eq;
  } else {
    throw new ConstraintSyntaxError(text, 'expected KEY==VALUE or KEY!=VALUE');
  }
  const key = text.slice(0, at).trim();
  const value = text.slice(at + 2).trim();
  if (value === '') throw new ConstraintSyntaxError(text, 'missing value');
  if (value.includes('==') || value.includes('!=')) throw new ConstraintSyntaxError(text, 'more than one operator');
  return { text, field: parseField(text, key), op, value };
}

function parseField(text: string, key: string): ConstraintField {
  if (key.startsWith(LABEL_PREFIX)) {
    const label = key.slice(LABEL_PREFIX.length);
    if (label === '') throw new ConstraintSyntaxError(text, 'missing label name after node.labels.');
    return { kind: 'label', key: label };
  }
  switch (key) {
    case 'node.hostname':
      return { kind: 'hostname' };
    case 'node.role':
      return { kind: 'role' };
    case 'node.id':
      return { kind: 'id' };
    default:
      throw new ConstraintSyntaxError(
        text,
        `unknown key "${key}" (expected node.labels.NAME, node.hostname, node.role or node.id)`,
      );
  }
}

function fieldValue(node: Node, field: ConstraintField): string | undefined {
  switch (field.kind) {
    case 'label':
      return node.spec.labels?.[field.key];
    case 'hostname':
      return node.status.hostname;
    case 'role':
      return node.spec.role;
    case 'id':
      return node.metadata.name;
  }
}

/** As in Swarm, a node without the label fails `==` and passes `!=`. */
export function matchesConstraint(node: Node, constraint: Constraint): boolean {
  const actual = fieldValue(node, constraint.field);
  const equal = actual === constraint.value;
  return constraint.op === '==' ? equal : !equal;
}

/** The first constraint the node fails, or undefined if it satisfies all. */
export function firstFailedConstraint(node: Node, constraints: readonly Constraint[]): Constraint | undefined {
  return constraints.find((c) => !matchesConstraint(node, c));
}
