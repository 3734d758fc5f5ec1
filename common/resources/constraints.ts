// Placement constraints, Swarm's syntax: `node.labels.KEY==VALUE`, `node.labels.KEY!=VALUE`,
// `node.hostname==NAME`, `node.id==ID`, `node.role==manager|worker`. This is the only parser of that grammar:
// the schema validates constraints with it and stores the canonical text; the scheduler parses the stored
// text with the same function (control-plane/scheduler/constraints.ts only matches nodes), so the two can
// never disagree about what a constraint means. Pure: no I/O, no throwing.

import { quoteName } from './limits.js';
import type { ParseResult } from './quantity.js';

export type ConstraintOperator = '==' | '!=';

export type PlacementConstraint =
  | { field: 'label'; key: string; op: ConstraintOperator; value: string }
  | { field: 'hostname' | 'id'; op: ConstraintOperator; value: string }
  | { field: 'role'; op: ConstraintOperator; value: 'manager' | 'worker' };

// Label keys as Kubernetes allows them, prefix included ("example.com/zone").
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9_.\-/]*[A-Za-z0-9])?$/;

// Matched against the trimmed text: a trailing `\s*` after a lazy value backtracks quadratically
// (a constraint with 40,000 spaces inside took 3 s). `s`: the value runs to the end, newlines included.
const CONSTRAINT_SHAPE = /^([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*)$/s;

const EXPECTED = 'expected node.labels.KEY==VALUE, node.labels.KEY!=VALUE, node.hostname==NAME, node.id==ID or node.role==manager|worker';

export function parseConstraint(text: string): ParseResult<PlacementConstraint> {
  const fail = (why: string): ParseResult<PlacementConstraint> => ({ ok: false, message: `invalid placement constraint ${quoteName(text)}: ${why}` });
  const match = CONSTRAINT_SHAPE.exec(text.trim());
  if (!match) return fail(EXPECTED);
  const [, field = '', op, value = ''] = match;
  const operator = op as ConstraintOperator;
  if (value === '') return fail('missing value after the operator');
  if (/[\r\n]/.test(value)) return fail('a value cannot contain a line break');
  // "node.labels.a==b==c" is almost certainly a typo; a single "=" inside a value ("x=y") is fine.
  if (value.includes('==') || value.includes('!=')) return fail('more than one == or != operator');
  if (field.startsWith('node.labels.')) {
    const key = field.slice('node.labels.'.length);
    if (key === '') return fail('missing label key after "node.labels."');
    if (!LABEL_KEY_PATTERN.test(key)) return fail(`label key ${quoteName(key)} is not a valid label key`);
    return { ok: true, value: { field: 'label', key, op: operator, value } };
  }
  if (field === 'node.hostname') return { ok: true, value: { field: 'hostname', op: operator, value } };
  if (field === 'node.id') return { ok: true, value: { field: 'id', op: operator, value } };
  if (field === 'node.role') {
    if (value !== 'manager' && value !== 'worker') return fail(`node.role is "manager" or "worker", got ${quoteName(value)}`);
    return { ok: true, value: { field: 'role', op: operator, value } };
  }
  return fail(`unknown attribute ${quoteName(field)}; ${EXPECTED}`);
}

/** The canonical text of a constraint: no spaces around the operator. */
export function formatConstraint(c: PlacementConstraint): string {
  const attribute = c.field === 'label' ? `node.labels.${c.key}` : `node.${c.field}`;
  return `${attribute}${c.op}${c.value}`;
}
