// The top-level `x-tessera` extension of a Compose file (issue 15): settings of the stack as a
// whole, today its admission level (`x-tessera: {admission: restricted}`). The level travels to
// the manager as the label tessera.io/admission on every object of the stack, where it is kept
// for the stack (common/resources/admission-levels.ts). The stack's own level is also checked
// here, so a Compose file that its own level refuses fails before anything is sent, naming the
// Compose service; the manager checks again with the cluster default and the caller's role.
import { ADMISSION_LEVELS, isAdmissionLevel, STACK_ADMISSION_LABEL, type AdmissionLevel } from '../../common/resources/admission-levels.js';
import { fieldProblems } from '../../common/resources/admission.js';
import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import type { StackObject } from '../../common/resources/types.js';
import { isDict, type Dict } from './normalize.js';

export const STACK_EXTENSION_KEY = 'x-tessera';
const KNOWN_KEYS: readonly string[] = ['admission'];

export interface StackExtension {
  admission?: AdmissionLevel;
}

interface Issue {
  path: IssuePath;
  message: string;
}

/** `x-tessera` read and checked: unknown keys and values that are not levels are issues, not ignored (a typo must not loosen a stack). */
export function readStackExtension(model: Dict): { extension: StackExtension; issues: Issue[] } {
  const raw = model[STACK_EXTENSION_KEY];
  if (raw === undefined || raw === null) return { extension: {}, issues: [] };
  if (!isDict(raw))
    return { extension: {}, issues: [{ path: [STACK_EXTENSION_KEY], message: `expected a mapping like {admission: restricted}, got ${describeValue(raw)}` }] };
  const issues: Issue[] = Object.keys(raw)
    .filter((key) => !KNOWN_KEYS.includes(key))
    .map((key) => ({ path: [STACK_EXTENSION_KEY, key], message: `unknown setting ${JSON.stringify(key)} (Tessera reads ${KNOWN_KEYS.join(', ')})` }));
  const admission = raw['admission'];
  if (admission === undefined) return { extension: {}, issues };
  if (!isAdmissionLevel(admission)) {
    issues.push({ path: [STACK_EXTENSION_KEY, 'admission'], message: `expected ${ADMISSION_LEVELS.join(', ')}, got ${describeValue(admission)}` });
    return { extension: {}, issues };
  }
  return { extension: { admission }, issues };
}

/**
 * The objects with the stack's level as a label on each (a label the file set itself is kept, and
 * must agree), and the issues: labels that disagree, and fields the stack's own level refuses.
 */
export function applyStackExtension(objects: readonly StackObject[], extension: StackExtension, stack: string): { objects: StackObject[]; issues: Issue[] } {
  const level = extension.admission;
  if (level === undefined) return { objects: [...objects], issues: [] };
  const labelled = objects.map((object) => ({
    ...object,
    metadata: { ...object.metadata, labels: { [STACK_ADMISSION_LABEL]: level, ...object.metadata.labels } },
  })) as StackObject[];
  const issues: Issue[] = [];
  for (const object of labelled) {
    const path = [object.kind === 'Service' ? 'services' : `${object.kind.toLowerCase()}s`, object.metadata.name];
    const own = object.metadata.labels?.[STACK_ADMISSION_LABEL];
    if (own !== level)
      issues.push({
        path,
        message: `label ${STACK_ADMISSION_LABEL}: ${describeValue(own)} disagrees with ${STACK_EXTENSION_KEY}.admission: ${level} (a stack has one level)`,
      });
    for (const message of fieldProblems(object, { level, source: 'stack', stack })) issues.push({ path, message });
  }
  return { objects: labelled, issues };
}
