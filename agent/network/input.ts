// Input from outside this process (the managers' network view, a state file) has no known shape
// until it is validated: validators take `unknown` and narrow it field by field with these.

import { NetworkInputError, validatePort } from '../../common/network/ipv4.js';

/** The value's fields, still unchecked; undefined when it is not a (non-array) object. */
export function fieldsOf(value: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The value's items, still unchecked; undefined when it is not an array. */
export function itemsOf(value: unknown): readonly unknown[] | undefined {
  return Array.isArray(value) ? (value as unknown[]) : undefined;
}

/** A port number 1-65535, or a NetworkInputError naming `what`. */
export function validPort(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new NetworkInputError(`${what} must be an integer between 1 and 65535, got ${String(value)}`);
  validatePort(value, what);
  return value;
}

/** "tcp" or "udp", or a NetworkInputError naming `what`. */
export function validProtocol(value: unknown, what: string): 'tcp' | 'udp' {
  if (value !== 'tcp' && value !== 'udp') throw new NetworkInputError(`${what} must be "tcp" or "udp", got ${JSON.stringify(value)}`);
  return value;
}
