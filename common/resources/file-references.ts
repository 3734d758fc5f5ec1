// Secret, Config and Volume objects as services refer to them: the kinds, and the stacks a
// reference resolves in. The manager checks and delivers references by these rules, and the agent
// resolves what it was delivered by the same ones, so both sides read them from here.
import type { Config, Secret, Volume } from './types.js';

export type StackFileObject = Secret | Config | Volume;
export type StackFileKind = StackFileObject['kind'];
export const STACK_FILE_KINDS: readonly StackFileKind[] = ['Secret', 'Config', 'Volume'];

/** The stacks a reference from a service of `stack` may resolve in, in order: its own, then the default (external objects). */
export function referenceStacks(stack: string): string[] {
  return stack === '' ? [''] : [stack, ''];
}
