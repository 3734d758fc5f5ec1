// Task names, Swarm style: `<stack>_<service>.<slot>.<id>`, so `tsctl get tasks` reads naturally
// and a name alone says which service and slot a container belongs to.
import { randomBytes } from 'node:crypto';

export type TaskIdGenerator = () => string;

/** 8 hex characters; unique enough within one slot's short history. */
export const randomTaskId: TaskIdGenerator = () => randomBytes(4).toString('hex');

export function taskName(stack: string, service: string, slot: number, id: string): string {
  return `${stack ? `${stack}_` : ''}${service}.${slot}.${id}`;
}
