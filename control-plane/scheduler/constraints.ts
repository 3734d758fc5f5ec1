// Matching placement constraints against nodes. The grammar and its parser live in
// common/resources/constraints.ts, shared with the manifest schema; this module only adds the
// throwing form the scheduler uses (constraints are parsed once per task group) and the matching.
import { parseConstraint, type PlacementConstraint } from '../../common/resources/constraints.js';
import type { Node } from '../../common/resources/types.js';

/** A parsed constraint plus the text the user wrote (trimmed), for messages. */
export type Constraint = PlacementConstraint & { text: string };

export class ConstraintSyntaxError extends Error {
  /** `message` comes from the shared parser and names the constraint text and what is wrong with it. */
  constructor(
    readonly constraint: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConstraintSyntaxError';
  }
}

/** The shared parser in throwing form. */
export function parseConstraintOrThrow(raw: string): Constraint {
  const text = raw.trim();
  const parsed = parseConstraint(text);
  if (!parsed.ok) throw new ConstraintSyntaxError(text, parsed.message);
  return { ...parsed.value, text };
}

function fieldValue(node: Node, c: PlacementConstraint): string | undefined {
  switch (c.field) {
    case 'label':
      return node.spec.labels?.[c.key];
    case 'hostname':
      return node.status.hostname;
    case 'role':
      return node.spec.role;
    case 'id':
      return node.metadata.name;
  }
}

/** As in Swarm, a node without the label fails `==` and passes `!=`. */
export function matchesConstraint(node: Node, constraint: PlacementConstraint): boolean {
  const equal = fieldValue(node, constraint) === constraint.value;
  return constraint.op === '==' ? equal : !equal;
}

/** The first constraint the node fails, or undefined if it satisfies all. */
export function firstFailedConstraint<C extends PlacementConstraint>(node: Node, constraints: readonly C[]): C | undefined {
  return constraints.find((c) => !matchesConstraint(node, c));
}
