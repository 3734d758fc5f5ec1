// The device allow-list: the spec's rules in order on top of "deny everything", then the device
// set every container gets (the OCI default devices plus the pty multiplexer), as runc and Docker do.

import type { LinuxResources } from '../types.js';

type DeviceRule = NonNullable<LinuxResources['devices']>[number];

/** Always allowed, after the spec's rules, so a spec cannot lock a container out of /dev/null. */
export const DEFAULT_ALLOWED_DEVICES: readonly DeviceRule[] = [
  // mknod of any node is allowed (Docker's default); opening it is what the list controls.
  { allow: true, type: 'c', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'b', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // /dev/null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // /dev/zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // /dev/full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // /dev/random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // /dev/urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // /dev/tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // /dev/console
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // /dev/ptmx
  { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' }, // /dev/pts/*
];

export interface DeviceWrite {
  file: 'devices.allow' | 'devices.deny';
  value: string;
}

/** One v1 rule line, "c 1:3 rwm"; -1 or absent major/minor is the wildcard "*". */
export function deviceRuleLine(rule: DeviceRule): string {
  const type = rule.type ?? 'a';
  if (type === 'a') return 'a';
  const num = (n: number | undefined) => (n === undefined || n === -1 ? '*' : String(n));
  return `${type} ${num(rule.major)}:${num(rule.minor)} ${rule.access ?? 'rwm'}`;
}

/** The ordered writes into a fresh v1 devices cgroup. */
export function planDeviceWrites(rules: LinuxResources['devices']): DeviceWrite[] {
  const writes: DeviceWrite[] = [{ file: 'devices.deny', value: 'a' }];
  for (const rule of [...(rules ?? []), ...DEFAULT_ALLOWED_DEVICES]) {
    writes.push({ file: rule.allow ? 'devices.allow' : 'devices.deny', value: deviceRuleLine(rule) });
  }
  return writes;
}
