// Admission levels (issue 15), named as Kubernetes' Pod Security Standards name them: `privileged`
// (nothing checked), `baseline` (nothing that reaches past the container into the node) and
// `restricted` (baseline, plus the hardening a workload can do for itself: own user namespace,
// non-root user, read-only rootfs, capabilities dropped). Which level an Apply is held to comes
// from three places, and the strictest wins:
//   - the caller's role: operators never below baseline; admins and local root from privileged;
//   - the cluster default (an admin sets it; privileged until one does, as in Kubernetes, so that
//     what admins applied before keeps applying);
//   - the stack's own level, declared with the label tessera.io/admission on its objects and kept
//     by the manager once declared.
// Pure and shared by tsctl and the manager; the store I/O is the API server's.
import { quoteName } from './limits.js';

/** Loosest first: a level's index is its strictness. */
export const ADMISSION_LEVELS = ['privileged', 'baseline', 'restricted'] as const;
export type AdmissionLevel = (typeof ADMISSION_LEVELS)[number];

/** The label (on any object of a stack) that declares the stack's level; Compose writes it from `x-tessera: {admission: LEVEL}`. */
export const STACK_ADMISSION_LABEL = 'tessera.io/admission';

/** The cluster default until an admin sets one: Kubernetes' own default, and what admins had before levels existed. */
export const DEFAULT_CLUSTER_ADMISSION: AdmissionLevel = 'privileged';

/** Admins and local root are `admin` here: both may do anything the levels allow. */
export type AdmissionRole = 'admin' | 'operator';

/** Where the level that decided came from, for a refusal to say why it applies. */
export type LevelSource = 'role' | 'stack' | 'cluster';

export interface LevelDecision {
  level: AdmissionLevel;
  source: LevelSource;
  /** The stack the objects belong to ("" is the default stack). */
  stack: string;
}

export function isAdmissionLevel(value: unknown): value is AdmissionLevel {
  return typeof value === 'string' && (ADMISSION_LEVELS as readonly string[]).includes(value);
}

export function isStricter(a: AdmissionLevel, than: AdmissionLevel): boolean {
  return ADMISSION_LEVELS.indexOf(a) > ADMISSION_LEVELS.indexOf(than);
}

/** The least a caller of this role is held to, whatever the cluster and the stack say. */
export function roleFloor(role: AdmissionRole): AdmissionLevel {
  return role === 'operator' ? 'baseline' : 'privileged';
}

/**
 * The level objects of `stack` are admitted at: the strictest of the role's floor, the stack's
 * level and the cluster default. On a tie the role is named first (it cannot be changed), then
 * the stack, then the cluster, so a refusal names the narrowest reason that holds.
 */
export function decideLevel(input: { role: AdmissionRole; clusterDefault: AdmissionLevel; stack: string; stackLevel?: AdmissionLevel }): LevelDecision {
  const candidates: Array<{ level: AdmissionLevel; source: LevelSource }> = [
    { level: roleFloor(input.role), source: 'role' },
    ...(input.stackLevel ? [{ level: input.stackLevel, source: 'stack' as const }] : []),
    { level: input.clusterDefault, source: 'cluster' },
  ];
  let chosen = candidates[0]!;
  for (const candidate of candidates) if (isStricter(candidate.level, chosen.level)) chosen = candidate;
  return { ...chosen, stack: input.stack };
}

/** "for operators", "in stack shop", "by the cluster default": who holds the objects to the level. */
export function describeLevelSource(decision: LevelDecision): string {
  switch (decision.source) {
    case 'role':
      return 'for operators';
    case 'stack':
      return decision.stack === '' ? 'in the default stack' : `in stack ${decision.stack}`;
    case 'cluster':
      return 'by the cluster default';
  }
}

export interface DeclaredLevels {
  /** Stack ("" for the default stack) → the level its objects declare. */
  levels: Map<string, AdmissionLevel>;
  /** A label value that is not a level, or two objects of one stack declaring different levels. */
  problems: string[];
}

interface LabelledObject {
  kind: string;
  metadata: { name: string; stack?: string; labels?: Record<string, string> };
}

/** The stack levels the objects of one Apply declare with STACK_ADMISSION_LABEL; every object that carries it must agree. */
export function declaredStackLevels(objects: readonly LabelledObject[]): DeclaredLevels {
  const levels = new Map<string, AdmissionLevel>();
  const declaredBy = new Map<string, string>();
  const problems: string[] = [];
  for (const object of objects) {
    const value = object.metadata.labels?.[STACK_ADMISSION_LABEL];
    if (value === undefined) continue;
    const stack = object.metadata.stack ?? '';
    const where = `${object.kind} ${stack ? `${stack}/` : ''}${object.metadata.name}: metadata.labels["${STACK_ADMISSION_LABEL}"]`;
    if (!isAdmissionLevel(value)) {
      problems.push(`${where}: ${quoteName(value)} is not an admission level (expected ${ADMISSION_LEVELS.join(', ')})`);
      continue;
    }
    const earlier = levels.get(stack);
    if (earlier !== undefined && earlier !== value) {
      problems.push(`${where}: ${value} disagrees with ${earlier} declared by ${declaredBy.get(stack) ?? 'another object'} (a stack has one level)`);
      continue;
    }
    levels.set(stack, value);
    declaredBy.set(stack, `${object.kind} ${object.metadata.name}`);
  }
  return { levels, problems };
}

export type StackLevelChange = { allowed: true; level?: AdmissionLevel; write: boolean } | { allowed: false; reason: string };

/**
 * What an Apply that declares `requested` (or nothing) does to a stack whose stored level is
 * `stored`. Nothing declared keeps what is stored, so applying one object without the label does
 * not loosen its stack. Operators may tighten a stack; loosening one, or setting it to privileged,
 * is for admins, as is loosening the cluster default.
 */
export function changeStackLevel(input: { stack: string; stored?: AdmissionLevel; requested?: AdmissionLevel; role: AdmissionRole }): StackLevelChange {
  const { stack, stored, requested, role } = input;
  const name = stack === '' ? 'the default stack' : `stack ${stack}`;
  if (requested === undefined || requested === stored) return { allowed: true, ...(stored ? { level: stored } : {}), write: false };
  if (role !== 'admin' && requested === 'privileged') return { allowed: false, reason: `only an admin may set ${name} to admission level privileged` };
  if (role !== 'admin' && stored !== undefined && isStricter(stored, requested))
    return { allowed: false, reason: `only an admin may loosen ${name} from admission level ${stored} to ${requested}` };
  return { allowed: true, level: requested, write: true };
}
