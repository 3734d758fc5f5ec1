// linux.seccomp of the OCI spec: its types, and the plain form the addon compiles with libseccomp.

export const SECCOMP_ACTIONS = [
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_LOG',
] as const;
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number];

export const SECCOMP_OPERATORS = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'] as const;
export type SeccompOperator = (typeof SECCOMP_OPERATORS)[number];

/** OCI architecture names → libseccomp's names. */
export const SECCOMP_ARCHITECTURES: Readonly<Record<string, string>> = {
  SCMP_ARCH_X86: 'x86',
  SCMP_ARCH_X86_64: 'x86_64',
  SCMP_ARCH_X32: 'x32',
  SCMP_ARCH_ARM: 'arm',
  SCMP_ARCH_AARCH64: 'aarch64',
  SCMP_ARCH_MIPS: 'mips',
  SCMP_ARCH_MIPS64: 'mips64',
  SCMP_ARCH_MIPS64N32: 'mips64n32',
  SCMP_ARCH_MIPSEL: 'mipsel',
  SCMP_ARCH_MIPSEL64: 'mipsel64',
  SCMP_ARCH_MIPSEL64N32: 'mipsel64n32',
  SCMP_ARCH_PPC: 'ppc',
  SCMP_ARCH_PPC64: 'ppc64',
  SCMP_ARCH_PPC64LE: 'ppc64le',
  SCMP_ARCH_S390: 's390',
  SCMP_ARCH_S390X: 's390x',
  SCMP_ARCH_RISCV64: 'riscv64',
};

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

export interface OciSeccompSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: OciSeccompArg[];
}

export interface OciSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: OciSeccompSyscall[];
}

/** What the addon compiles: actions and operators as libseccomp's names without prefixes. */
export interface NativeSeccompRule {
  /** Syscalls by name; names libseccomp does not know for an architecture are skipped, as runc does. */
  names: string[];
  action: string;
  errno: number;
  args: Array<{ index: number; value: number; valueTwo: number; op: string }>;
}

export interface NativeSeccomp {
  defaultAction: string;
  defaultErrno: number;
  /** libseccomp architecture names besides the native one. */
  architectures: string[];
  rules: NativeSeccompRule[];
}

const EPERM = 1;

function nativeAction(action: SeccompAction): string {
  // KILL is the thread-killing action in OCI; spelled out so the addon has one name per action.
  return action === 'SCMP_ACT_KILL' ? 'kill_thread' : action.slice('SCMP_ACT_'.length).toLowerCase();
}

/** Checks what a schema cannot (duplicate arguments in a rule, unusable flags) and converts. */
export function nativeSeccomp(profile: OciSeccomp, field: string): NativeSeccomp {
  for (const flag of profile.flags ?? []) {
    // Flags change how the filter loads (log, spec_allow, ...); honouring none silently would lie.
    throw new Error(`${field}.flags: seccomp flag '${flag}' is not supported`);
  }
  const architectures: string[] = [];
  for (const [i, arch] of (profile.architectures ?? []).entries()) {
    const name = SECCOMP_ARCHITECTURES[arch];
    if (name === undefined) throw new Error(`${field}.architectures[${i}]: unknown architecture '${arch}'`);
    if (!architectures.includes(name)) architectures.push(name);
  }
  const rules = (profile.syscalls ?? []).map((rule, i): NativeSeccompRule => {
    const where = `${field}.syscalls[${i}]`;
    if (rule.errnoRet !== undefined && rule.action !== 'SCMP_ACT_ERRNO') {
      throw new Error(`${where}.errnoRet: only meaningful with SCMP_ACT_ERRNO, not ${rule.action}`);
    }
    return {
      names: [...rule.names],
      action: nativeAction(rule.action),
      errno: rule.errnoRet ?? EPERM,
      args: (rule.args ?? []).map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: a.op.slice('SCMP_CMP_'.length).toLowerCase() })),
    };
  });
  return {
    defaultAction: nativeAction(profile.defaultAction),
    defaultErrno: profile.defaultErrnoRet ?? EPERM,
    architectures,
    rules,
  };
}
