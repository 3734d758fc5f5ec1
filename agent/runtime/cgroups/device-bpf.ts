// The device allow-list on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program built from the OCI
// rules (spec's, then the default set), as pure data. The kernel runs it on every mknod and every
// open of a device node by a process in the cgroup; it returns 1 to allow and 0 to refuse (EPERM).
//
// Semantics, decided per right (m = mknod, r = read, w = write), so that a later rule overrides an
// earlier one for exactly the rights it names:
// - a request is allowed only when every right it asks for is allowed;
// - a right is allowed when the LAST rule that matches the device and names that right allows it;
//   no such rule: refused (default deny, as "devices.deny a" starts the v1 list);
// - type "a" (or no type) is every device and every right, whatever major/minor/access say: the
//   kernel's v1 "a" line means that, the v1 driver writes it so (devices.ts), and runc treats it so;
// - major/minor -1 or absent is any number; access absent is "rwm";
// - a request naming no right, or a right the kernel may add later, is refused.
// Differences from v1, both deliberate: a narrower deny after a wildcard allow ("c *:* rwm" then
// "deny c 1:3 w") is honoured (v1 silently ignores it; runc refuses such a spec), and rights granted
// by separate rules combine ("c 1:3 r" and "c 1:3 w" allow opening it read-write, as v1 does only
// when both name the same major:minor).
//
// Layout (all jumps forward; the verifier accepts no loops):
//   prologue: r2 = type, r3 = requested rights, r4 = major, r5 = minor (from struct bpf_cgroup_dev_ctx)
//   refuse when r3 is 0 or has a bit beyond m|r|w
//   one section per right, m then r then w: skipped when not requested; else the rules naming the
//   right, last first, each "if it matches: allow (go to the next section) or refuse"; no match: refuse
//   allow: r0 = 1, exit        deny: r0 = 0, exit

import type { LinuxResources } from '../types.js';
import { DEFAULT_ALLOWED_DEVICES } from './devices.js';

export type DeviceRule = NonNullable<LinuxResources['devices']>[number];

/** One eBPF instruction (struct bpf_insn): 8-bit opcode, two 4-bit registers, 16-bit offset, 32-bit immediate. */
export interface BpfInstruction {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

/** BPF_DEVCG_DEV_* in struct bpf_cgroup_dev_ctx.access_type (low 16 bits). */
export const DEVCG_DEV_BLOCK = 1;
export const DEVCG_DEV_CHAR = 2;
/** BPF_DEVCG_ACC_* (access_type >> 16). */
export const DEVCG_ACC_MKNOD = 1;
export const DEVCG_ACC_READ = 2;
export const DEVCG_ACC_WRITE = 4;
const ALL_RIGHTS = DEVCG_ACC_MKNOD | DEVCG_ACC_READ | DEVCG_ACC_WRITE;

/** Opcodes used (linux/bpf.h, bpf_common.h): class | size/op | source. */
export const OP = {
  /** rD = *(u32 *)(rS + off) */
  LDX_W: 0x61,
  /** wD &= imm (32-bit ALU) */
  AND32_K: 0x54,
  /** wD >>= imm */
  RSH32_K: 0x74,
  /** rD = imm (64-bit) */
  MOV64_K: 0xb7,
  /** if wD != imm goto +off (32-bit compare, so majors/minors above 2^31 compare exactly) */
  JNE32_K: 0x56,
  /** if wD == imm goto +off */
  JEQ32_K: 0x16,
  /** if wD > imm goto +off (unsigned) */
  JGT32_K: 0x26,
  /** if wD & imm goto +off */
  JSET32_K: 0x46,
  /** goto +off */
  JA: 0x05,
  EXIT: 0x95,
} as const;

/** Registers: r1 is the context pointer on entry, r0 the verdict. */
export const REG = { R0: 0, R1: 1, TYPE: 2, ACCESS: 3, MAJOR: 4, MINOR: 5 } as const;

/**
 * The kernel's limit for a program loaded without CAP_BPF/CAP_SYS_ADMIN; far above what a real rule
 * list needs (about 12 instructions per rule), and a bound on what an untrusted spec can make us load.
 */
export const MAX_DEVICE_PROGRAM_INSTRUCTIONS = 4096;

const FIELD = 'linux.resources.devices';

/** A rule reduced to what the program tests; undefined fields match anything. */
interface Matcher {
  allow: boolean;
  rights: number;
  type?: number;
  major?: number;
  minor?: number;
}

/** The program for a container: the spec's rules in order, then the set every container gets. */
export function deviceProgramFor(specRules: LinuxResources['devices']): BpfInstruction[] {
  return deviceFilterInstructions([...(specRules ?? []), ...DEFAULT_ALLOWED_DEVICES], (specRules ?? []).length);
}

/**
 * The program for exactly `rules` on top of "deny everything". `specCount` rules come from the
 * spec (errors name their index); the rest are the built-in defaults.
 */
export function deviceFilterInstructions(rules: readonly DeviceRule[], specCount = rules.length): BpfInstruction[] {
  const matchers = rules.map((rule, i) => toMatcher(rule, i < specCount ? `${FIELD}[${i}]` : `default device rule ${i - specCount}`));
  const asm = new Assembler();
  asm.emit(OP.LDX_W, REG.TYPE, REG.R1, 0, 0);
  asm.emit(OP.AND32_K, REG.TYPE, 0, 0, 0xffff);
  asm.emit(OP.LDX_W, REG.ACCESS, REG.R1, 0, 0);
  asm.emit(OP.RSH32_K, REG.ACCESS, 0, 0, 16);
  asm.emit(OP.LDX_W, REG.MAJOR, REG.R1, 4, 0);
  asm.emit(OP.LDX_W, REG.MINOR, REG.R1, 8, 0);
  asm.jump(OP.JEQ32_K, REG.ACCESS, 0, 'deny');
  asm.jump(OP.JGT32_K, REG.ACCESS, ALL_RIGHTS, 'deny');

  const rights = [DEVCG_ACC_MKNOD, DEVCG_ACC_READ, DEVCG_ACC_WRITE];
  rights.forEach((right, s) => {
    const next = s + 1 < rights.length ? `section${s + 1}` : 'allow';
    if (s > 0) asm.label(`section${s}`);
    // Not asked for: nothing to decide here.
    asm.jump(OP.JSET32_K, REG.ACCESS, right, `decide${s}`);
    asm.jump(OP.JA, 0, 0, next);
    asm.label(`decide${s}`);
    let coveredAll = false;
    for (const m of [...matchers].reverse()) {
      if ((m.rights & right) === 0) continue;
      const skip = asm.newLabel();
      if (m.type !== undefined) asm.jump(OP.JNE32_K, REG.TYPE, m.type, skip);
      if (m.major !== undefined) asm.jump(OP.JNE32_K, REG.MAJOR, m.major | 0, skip);
      if (m.minor !== undefined) asm.jump(OP.JNE32_K, REG.MINOR, m.minor | 0, skip);
      asm.jump(OP.JA, 0, 0, m.allow ? next : 'deny');
      asm.label(skip);
      // Earlier rules can never be reached for this right: this one matches every device.
      if (m.type === undefined && m.major === undefined && m.minor === undefined) {
        coveredAll = true;
        break;
      }
    }
    if (!coveredAll) asm.jump(OP.JA, 0, 0, 'deny');
  });

  asm.label('allow');
  asm.emit(OP.MOV64_K, REG.R0, 0, 0, 1);
  asm.emit(OP.EXIT, 0, 0, 0, 0);
  asm.label('deny');
  asm.emit(OP.MOV64_K, REG.R0, 0, 0, 0);
  asm.emit(OP.EXIT, 0, 0, 0, 0);
  const program = asm.assemble();
  if (program.length > MAX_DEVICE_PROGRAM_INSTRUCTIONS) {
    throw new Error(
      `${FIELD}: ${rules.length} rules make a device program of ${program.length} BPF instructions, more than ${MAX_DEVICE_PROGRAM_INSTRUCTIONS}`,
    );
  }
  return program;
}

/** The program as the addon takes it: five 32-bit integers per instruction (code, dst, src, off, imm). */
export function encodeProgram(program: readonly BpfInstruction[]): Int32Array {
  const out = new Int32Array(program.length * 5);
  program.forEach((insn, i) => out.set([insn.code, insn.dst, insn.src, insn.off, insn.imm], i * 5));
  return out;
}

function toMatcher(rule: DeviceRule, where: string): Matcher {
  const type = rule.type ?? 'a';
  if (type === 'a') return { allow: rule.allow, rights: ALL_RIGHTS };
  let rights = 0;
  for (const c of rule.access ?? 'rwm') {
    if (c === 'r') rights |= DEVCG_ACC_READ;
    else if (c === 'w') rights |= DEVCG_ACC_WRITE;
    else if (c === 'm') rights |= DEVCG_ACC_MKNOD;
    else throw new Error(`${where}.access: must be a combination of r, w and m, got ${JSON.stringify(rule.access)}`);
  }
  return {
    allow: rule.allow,
    rights,
    type: type === 'b' ? DEVCG_DEV_BLOCK : DEVCG_DEV_CHAR,
    major: deviceNumber(rule.major, `${where}.major`),
    minor: deviceNumber(rule.minor, `${where}.minor`),
  };
}

/** undefined for the wildcard (-1 or absent); the kernel's numbers are unsigned 32-bit. */
function deviceNumber(n: number | undefined, where: string): number | undefined {
  if (n === undefined || n === -1) return undefined;
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new Error(`${where}: must be -1 (any) or an integer from 0 to 4294967295, got ${n}`);
  return n;
}

type Item = { insn: BpfInstruction; target?: string } | { label: string };

/** Instructions with symbolic forward jump targets, resolved to offsets once the layout is known. */
class Assembler {
  private readonly items: Item[] = [];
  private labels = 0;

  emit(code: number, dst: number, src: number, off: number, imm: number): void {
    this.items.push({ insn: { code, dst, src, off, imm } });
  }

  jump(code: number, dst: number, imm: number, target: string): void {
    this.items.push({ insn: { code, dst, src: 0, off: 0, imm }, target });
  }

  label(name: string): void {
    this.items.push({ label: name });
  }

  newLabel(): string {
    this.labels += 1;
    return `L${this.labels}`;
  }

  assemble(): BpfInstruction[] {
    const at = new Map<string, number>();
    let count = 0;
    for (const item of this.items) {
      if ('label' in item) at.set(item.label, count);
      else count += 1;
    }
    const out: BpfInstruction[] = [];
    for (const item of this.items) {
      if ('label' in item) continue;
      if (item.target === undefined) {
        out.push(item.insn);
        continue;
      }
      const target = at.get(item.target);
      if (target === undefined) throw new Error(`device program: jump to unknown label ${item.target}`);
      const off = target - (out.length + 1);
      if (off < 0 || off > 0x7fff) throw new Error(`device program: jump offset ${off} to ${item.target} out of range`);
      out.push({ ...item.insn, off });
    }
    return out;
  }
}
