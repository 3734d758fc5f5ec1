// Linux capabilities by name (as the OCI spec writes them, "CAP_CHOWN") and the five sets of
// process.capabilities turned into capability numbers for the addon.
import { DOCKER_DEFAULT_CAPABILITIES } from '../../common/resources/admission.js';

/** capability(7) numbers, from <linux/capability.h>. */
export const CAPABILITY_NUMBERS: Readonly<Record<string, number>> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
};

export const CAPABILITY_SETS = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const;
export type CapabilitySet = (typeof CAPABILITY_SETS)[number];

/** process.capabilities of the OCI spec: each set a list of CAP_* names. */
export type OciCapabilities = Partial<Record<CapabilitySet, string[]>>;

/** The same sets as capability numbers; a set the spec leaves out is empty (as runc treats it). */
export type NativeCapabilities = Record<CapabilitySet, number[]>;

/**
 * Docker's default set: enough for ordinary programs that run as root (chown, bind low ports,
 * switch user), nothing that reaches the host kernel's global state. The list lives in common/,
 * where the managers' admission checks an operator's services against the same set.
 */
export const DEFAULT_CAPABILITIES: readonly string[] = DOCKER_DEFAULT_CAPABILITIES;

export function isCapabilityName(name: string): boolean {
  return Object.hasOwn(CAPABILITY_NUMBERS, name);
}

/** Converts names to numbers; `field` names the spec location in the error. */
export function capabilityNumbers(names: readonly string[], field: string): number[] {
  const out: number[] = [];
  for (const [i, name] of names.entries()) {
    const num = CAPABILITY_NUMBERS[name];
    if (num === undefined || !Object.hasOwn(CAPABILITY_NUMBERS, name)) {
      throw new Error(`${field}[${i}]: unknown capability '${name}' (expected a CAP_* name such as CAP_CHOWN)`);
    }
    if (!out.includes(num)) out.push(num);
  }
  return out.sort((a, b) => a - b);
}

export function nativeCapabilities(caps: OciCapabilities, field: string): NativeCapabilities {
  const out = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] } as NativeCapabilities;
  for (const set of CAPABILITY_SETS) out[set] = capabilityNumbers(caps[set] ?? [], `${field}.${set}`);
  return out;
}

/** capability(7) name of a number, e.g. 10 -> CAP_NET_BIND_SERVICE. */
export function capabilityName(num: number): string {
  return Object.keys(CAPABILITY_NUMBERS).find((name) => CAPABILITY_NUMBERS[name] === num) ?? `capability ${num}`;
}

/**
 * Drops the ambient capabilities the kernel would refuse to raise: PR_CAP_AMBIENT_RAISE needs the
 * capability in both the permitted and the inheritable set. runc ignores that refusal, and its
 * default spec (`runc spec`) lists ambient capabilities without an inheritable set, so we do the
 * same; each one left out becomes a warning that names it. `field` is process.capabilities.
 */
export function withRaisableAmbient(caps: NativeCapabilities, field: string): { capabilities: NativeCapabilities; warnings: string[] } {
  const ambient: number[] = [];
  const warnings: string[] = [];
  for (const cap of caps.ambient) {
    const missing = [caps.permitted.includes(cap) ? undefined : 'permitted', caps.inheritable.includes(cap) ? undefined : 'inheritable'].filter(
      (s) => s !== undefined,
    );
    if (missing.length === 0) ambient.push(cap);
    else
      warnings.push(
        `${field}.ambient: ${capabilityName(cap)} is not raised: it is not in the ${missing.join(' or ')} set (the kernel raises only capabilities that are both permitted and inheritable)`,
      );
  }
  return { capabilities: { ...caps, ambient }, warnings };
}

/** The effective set a spec gives its process; all capabilities when the spec leaves them alone. */
export function effectiveCapabilityNames(caps: OciCapabilities | undefined): string[] {
  if (caps === undefined) return Object.keys(CAPABILITY_NUMBERS);
  return [...(caps.effective ?? [])];
}
