// Pure validation and application of `tsctl node update|label`.
import type { NodeUpdateRequest__Output } from '../../proto/gen/tessera/api/v1/NodeUpdateRequest.js';
import type { Node, NodeAvailability } from '../../common/resources/types.js';
import { LABEL_KEY_PATTERN } from '../../common/resources/constraints.js';
import { isNameTooLong, MAX_NAME_BYTES, quoteName } from '../../common/resources/limits.js';
import { invalidArgument } from './errors.js';
import type { NodeRole } from '../../common/identity/certificate.js';

export interface NodeChange {
  availability?: NodeAvailability;
  /** A promotion (manager) or demotion (worker). */
  role?: NodeRole;
  addLabels: Record<string, string>;
  removeLabels: string[];
}

const AVAILABILITIES: readonly NodeAvailability[] = ['active', 'pause', 'drain'];

export function validateNodeUpdate(req: NodeUpdateRequest__Output): NodeChange {
  if (!req.name) throw invalidArgument('node update: missing node name');
  if (isNameTooLong(req.name)) throw invalidArgument(`node update: node name ${quoteName(req.name)} is longer than ${MAX_NAME_BYTES} bytes`);
  const problems: string[] = [];
  if (req.availability && !AVAILABILITIES.includes(req.availability as NodeAvailability)) {
    problems.push(`availability must be one of ${AVAILABILITIES.join(', ')}, got "${req.availability}"`);
  }
  for (const [key, value] of Object.entries(req.addLabels)) {
    if (!LABEL_KEY_PATTERN.test(key)) problems.push(`label key ${quoteName(key)} is not valid (letters, digits, . _ - /)`);
    if (value.length > 256) problems.push(`label ${quoteName(key)}: value longer than 256 characters`);
  }
  for (const key of req.removeLabels) if (!LABEL_KEY_PATTERN.test(key)) problems.push(`label key ${quoteName(key)} is not valid`);
  if (req.role && req.role !== 'manager' && req.role !== 'worker') problems.push(`role must be manager or worker, got ${quoteName(req.role)}`);
  if (problems.length > 0) throw invalidArgument(`node update of ${req.name}: ${problems.join('; ')}`);
  return {
    ...(req.availability ? { availability: req.availability as NodeAvailability } : {}),
    ...(req.role ? { role: req.role as NodeRole } : {}),
    addLabels: { ...req.addLabels },
    removeLabels: [...req.removeLabels],
  };
}

export function applyNodeUpdate(node: Node, change: NodeChange): Node {
  const labels = { ...node.spec.labels, ...change.addLabels };
  for (const key of change.removeLabels) delete labels[key];
  return { ...node, spec: { ...node.spec, availability: change.availability ?? node.spec.availability, role: change.role ?? node.spec.role, labels } };
}
