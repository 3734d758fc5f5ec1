// The cgroup v2 device program (agent/runtime/cgroups/device-bpf.ts), as pure data:
// - exact listings for small rule lists, instruction by instruction, read against the semantics;
// - a small interpreter of the instructions the generator uses (strict: unknown opcodes, backward
//   or out-of-range jumps, unset registers and other context offsets fail the test) runs programs
//   against requests, compared with a direct model of the rule semantics, for hand-picked cases and
//   for many random rule lists;
// - the v2 driver hands the encoded program to the attacher for the container's directory.
// The real kernel's verifier and enforcement are checked in test/integration/runtime-devices-v2.test.ts.

import test from 'ava';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  DEVCG_ACC_MKNOD as M,
  DEVCG_ACC_READ as R,
  DEVCG_ACC_WRITE as W,
  DEVCG_DEV_BLOCK as BLOCK,
  DEVCG_DEV_CHAR as CHAR,
  MAX_DEVICE_PROGRAM_INSTRUCTIONS,
  OP,
  deviceFilterInstructions,
  deviceProgramFor,
  encodeProgram,
  type BpfInstruction,
  type DeviceRule,
} from '../../agent/runtime/cgroups/device-bpf.js';
import { DEFAULT_ALLOWED_DEVICES } from '../../agent/runtime/cgroups/devices.js';
import { CgroupsV2 } from '../../agent/runtime/cgroups/v2.js';

// ---------------------------------------------------------------------------------------------
// A disassembler (for readable listings) and an interpreter of the generator's instruction set.

function disassemble(insn: BpfInstruction): string {
  const { code, dst, src, off, imm } = insn;
  const to = `goto +${off}`;
  switch (code) {
    case OP.LDX_W:
      return `r${dst} = *(u32 *)(r${src} + ${off})`;
    case OP.AND32_K:
      return `w${dst} &= 0x${imm.toString(16)}`;
    case OP.RSH32_K:
      return `w${dst} >>= ${imm}`;
    case OP.MOV64_K:
      return `r${dst} = ${imm}`;
    case OP.JNE32_K:
      return `if w${dst} != ${imm >>> 0} ${to}`;
    case OP.JEQ32_K:
      return `if w${dst} == ${imm >>> 0} ${to}`;
    case OP.JGT32_K:
      return `if w${dst} > ${imm >>> 0} ${to}`;
    case OP.JSET32_K:
      return `if w${dst} & ${imm} ${to}`;
    case OP.JA:
      return to;
    case OP.EXIT:
      return 'exit';
    default:
      throw new Error(`unknown opcode 0x${code.toString(16)}`);
  }
}

const listing = (program: BpfInstruction[]) => program.map((insn, i) => `${i}: ${disassemble(insn)}`);

interface Request {
  type: number;
  access: number;
  major: number;
  minor: number;
}

/** Runs the program on struct bpf_cgroup_dev_ctx { access_type = access << 16 | type, major, minor }. */
function run(program: BpfInstruction[], req: Request): number {
  const ctxWords = new Map([
    [0, ((req.access << 16) | req.type) >>> 0],
    [4, req.major >>> 0],
    [8, req.minor >>> 0],
  ]);
  const regs: Array<number | 'ctx' | undefined> = [];
  regs[1] = 'ctx';
  const num = (r: number): number => {
    const v = regs[r];
    if (typeof v !== 'number') throw new Error(`r${r} read while ${v === undefined ? 'unset' : 'a pointer'}`);
    return v;
  };
  let pc = 0;
  for (let steps = 0; steps < 100_000; steps++) {
    const insn = program[pc];
    if (insn === undefined) throw new Error(`fell off the program at ${pc}`);
    const { code, dst, src, off, imm } = insn;
    let next = pc + 1;
    const jumpIf = (cond: boolean) => {
      if (off < 0) throw new Error(`backward jump at ${pc}`);
      if (pc + 1 + off >= program.length) throw new Error(`jump out of the program at ${pc}`);
      if (cond) next = pc + 1 + off;
    };
    switch (code) {
      case OP.LDX_W: {
        if (regs[src] !== 'ctx') throw new Error(`load through a non-context register at ${pc}`);
        const word = ctxWords.get(off);
        if (word === undefined) throw new Error(`context offset ${off} at ${pc}`);
        regs[dst] = word;
        break;
      }
      case OP.AND32_K:
        regs[dst] = (num(dst) & imm) >>> 0;
        break;
      case OP.RSH32_K:
        regs[dst] = num(dst) >>> imm;
        break;
      case OP.MOV64_K:
        regs[dst] = imm;
        break;
      case OP.JNE32_K:
        jumpIf(num(dst) >>> 0 !== imm >>> 0);
        break;
      case OP.JEQ32_K:
        jumpIf(num(dst) >>> 0 === imm >>> 0);
        break;
      case OP.JGT32_K:
        jumpIf(num(dst) >>> 0 > imm >>> 0);
        break;
      case OP.JSET32_K:
        jumpIf((num(dst) & imm) !== 0);
        break;
      case OP.JA:
        jumpIf(true);
        break;
      case OP.EXIT:
        return num(0);
      default:
        throw new Error(`unknown opcode 0x${code.toString(16)} at ${pc}`);
    }
    pc = next;
  }
  throw new Error('no exit after 100000 steps');
}

/**
 * The semantics, written directly: every requested right must be granted; for each right the last
 * rule matching the device and naming the right decides; none: refused. Type "a" (or none) is every
 * device and every right. A request with no right or an unknown one is refused.
 */
function modelAllows(rules: readonly DeviceRule[], req: Request): boolean {
  if (req.access === 0 || (req.access & ~(M | R | W)) !== 0) return false;
  for (const right of [M, R, W]) {
    if ((req.access & right) === 0) continue;
    let granted = false;
    for (const rule of rules) if (covers(rule, req, right)) granted = rule.allow;
    if (!granted) return false;
  }
  return true;
}

function covers(rule: DeviceRule, req: Request, right: number): boolean {
  const type = rule.type ?? 'a';
  if (type === 'a') return true;
  if ((type === 'c' ? CHAR : BLOCK) !== req.type) return false;
  const any = (n: number | undefined) => n === undefined || n === -1;
  if (!any(rule.major) && rule.major !== req.major) return false;
  if (!any(rule.minor) && rule.minor !== req.minor) return false;
  const letter = right === M ? 'm' : right === R ? 'r' : 'w';
  return (rule.access ?? 'rwm').includes(letter);
}

const allows = (rules: readonly DeviceRule[], req: Request) => run(deviceFilterInstructions(rules), req) === 1;
const c = (major: number, minor: number, access: number): Request => ({ type: CHAR, major, minor, access });
const b = (major: number, minor: number, access: number): Request => ({ type: BLOCK, major, minor, access });

// ---------------------------------------------------------------------------------------------
// Exact programs.

test('no rules: the prologue, three sections that find nothing, and default deny', (t) => {
  const program = deviceFilterInstructions([]);
  t.deepEqual(listing(program), [
    // struct bpf_cgroup_dev_ctx: access_type (type low 16 bits, rights high 16), major, minor.
    '0: r2 = *(u32 *)(r1 + 0)',
    '1: w2 &= 0xffff',
    '2: r3 = *(u32 *)(r1 + 0)',
    '3: w3 >>= 16',
    '4: r4 = *(u32 *)(r1 + 4)',
    '5: r5 = *(u32 *)(r1 + 8)',
    '6: if w3 == 0 goto +12', // no right asked: deny (19)
    '7: if w3 > 7 goto +11', // an unknown right: deny (19)
    '8: if w3 & 1 goto +1', // mknod asked: decide it (10)
    '9: goto +1', // not asked: next section (11)
    '10: goto +8', // no rule names mknod: deny (19)
    '11: if w3 & 2 goto +1', // read
    '12: goto +1',
    '13: goto +5', // deny (19)
    '14: if w3 & 4 goto +1', // write
    '15: goto +1', // not asked: allow (17)
    '16: goto +2', // deny (19)
    '17: r0 = 1',
    '18: exit',
    '19: r0 = 0',
    '20: exit',
  ]);
  // The encoding of the first instructions, field by field (opcode, dst, src, off, imm).
  t.deepEqual(program[0], { code: 0x61, dst: 2, src: 1, off: 0, imm: 0 });
  t.deepEqual(program[1], { code: 0x54, dst: 2, src: 0, off: 0, imm: 0xffff });
  t.deepEqual(program[6], { code: 0x16, dst: 3, src: 0, off: 12, imm: 0 });
  t.deepEqual(program[20], { code: 0x95, dst: 0, src: 0, off: 0, imm: 0 });
  t.deepEqual([...encodeProgram(program.slice(0, 2))], [0x61, 2, 1, 0, 0, 0x54, 2, 0, 0, 0xffff]);
});

test('rules are tested last first, per right, with wildcards left out and only the rights they name', (t) => {
  const rules: DeviceRule[] = [
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
    { allow: false, type: 'b', major: -1, access: 'r' }, // minor absent: any
  ];
  t.deepEqual(listing(deviceFilterInstructions(rules)).slice(6), [
    '6: if w3 == 0 goto +22', // deny (29)
    '7: if w3 > 7 goto +21',
    // mknod: neither rule names it.
    '8: if w3 & 1 goto +1',
    '9: goto +1', // not asked: read section (11)
    '10: goto +18', // deny
    // read: the block deny rule first (it is the later one), then the char allow rule.
    '11: if w3 & 2 goto +1',
    '12: goto +7', // not asked: write section (20)
    '13: if w2 != 1 goto +1', // not a block device: next rule (15)
    '14: goto +14', // any block device, any number: deny
    '15: if w2 != 2 goto +3', // c 1:3? else next (19)
    '16: if w4 != 1 goto +2',
    '17: if w5 != 3 goto +1',
    '18: goto +1', // c 1:3: read allowed, go on to the write section (20)
    '19: goto +9', // no rule matched: deny
    // write: only the char rule names it.
    '20: if w3 & 4 goto +1',
    '21: goto +5', // not asked: allow (27)
    '22: if w2 != 2 goto +3',
    '23: if w4 != 1 goto +2',
    '24: if w5 != 3 goto +1',
    '25: goto +1', // allow (27)
    '26: goto +2', // deny (29)
    '27: r0 = 1',
    '28: exit',
    '29: r0 = 0',
    '30: exit',
  ]);
});

test('a rule matching every device ends its section: the earlier rules are never emitted', (t) => {
  // "a" = every device and every right; the char rule before it is dead in all three sections.
  const program = deviceFilterInstructions([
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    { allow: false, type: 'a', major: 8, minor: 0, access: 'r' }, // major/minor/access ignored for "a"
  ]);
  const text = listing(program);
  t.false(
    text.some((line) => /!= 3 /.test(line)),
    'the c 1:3 rule does not appear',
  );
  t.deepEqual(text.slice(8, 11), ['8: if w3 & 1 goto +1', '9: goto +1', '10: goto +8']);
  // "c *:* m" tests the type alone; a block device falls through to the section's deny.
  const mknodAll = listing(deviceFilterInstructions([{ allow: true, type: 'c', major: -1, minor: -1, access: 'm' }]));
  t.deepEqual(mknodAll.slice(8, 13), ['8: if w3 & 1 goto +1', '9: goto +3', '10: if w2 != 2 goto +1', '11: goto +1', '12: goto +8']);
});

test('majors and minors above 2^31 are compared as unsigned 32-bit numbers', (t) => {
  const rules: DeviceRule[] = [{ allow: true, type: 'c', major: 0xffff_fffe, minor: 0x8000_0000, access: 'r' }];
  const program = deviceFilterInstructions(rules);
  t.deepEqual(listing(program).slice(13, 16), ['13: if w2 != 2 goto +3', '14: if w4 != 4294967294 goto +2', '15: if w5 != 2147483648 goto +1']);
  t.true(allows(rules, c(0xffff_fffe, 0x8000_0000, R)));
  t.false(allows(rules, c(0xffff_fffe, 0, R)));
  t.false(allows(rules, c(0x7fff_fffe, 0x8000_0000, R)));
});

// ---------------------------------------------------------------------------------------------
// Semantics, by interpretation.

test('default deny: with no rule every request is refused', (t) => {
  for (const req of [c(1, 3, R), c(1, 3, M), b(8, 0, R | W), { type: 3, major: 0, minor: 0, access: R }]) t.false(allows([], req));
});

test('the default set: the standard nodes work, mknod of anything works, other devices do not open', (t) => {
  const program = deviceProgramFor(undefined);
  const ok = (req: Request) => run(program, req) === 1;
  for (const [major, minor] of [
    [1, 3], // null
    [1, 5], // zero
    [1, 7], // full
    [1, 8], // random
    [1, 9], // urandom
    [5, 0], // tty
    [5, 1], // console
    [5, 2], // ptmx
    [136, 0], // pts/0
    [136, 77],
  ] as const) {
    t.true(ok(c(major, minor, R | W)), `c ${major}:${minor} rw`);
    t.true(ok(c(major, minor, R)));
    t.true(ok(c(major, minor, W)));
  }
  t.true(ok(b(254, 0, M)), 'mknod of a disk node is allowed (CAP_MKNOD, as Docker)');
  t.true(ok(c(1, 11, M)));
  t.false(ok(b(254, 0, R)), 'the host disk does not open for reading');
  t.false(ok(b(254, 0, W)));
  t.false(ok(b(254, 0, R | W)));
  t.false(ok(c(1, 11, R)), '/dev/kmsg');
  t.false(ok(c(1, 11, W)));
  t.false(ok(c(1, 1, R)), '/dev/mem');
  t.false(ok(c(10, 200, R | W)), '/dev/net/tun is not in the default set');
  t.false(ok(b(254, 0, M | R)), 'mknod and read in one request: read is not granted');
  t.false(ok(c(1, 3, 0)), 'a request with no right');
  t.false(ok(c(1, 3, 8)), 'a right the kernel may add later');
  t.false(ok(c(1, 3, R | 8)));
  t.false(ok({ type: 4, major: 1, minor: 3, access: R }), 'an unknown device type matches no c/b rule');
});

test('a later rule overrides an earlier one, for the rights it names', (t) => {
  const nullRw: DeviceRule = { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' };
  const noWrite: DeviceRule = { allow: false, type: 'c', major: 1, minor: 3, access: 'w' };
  t.true(allows([nullRw, noWrite], c(1, 3, R)));
  t.false(allows([nullRw, noWrite], c(1, 3, W)));
  t.false(allows([nullRw, noWrite], c(1, 3, R | W)), 'read-write needs write too');
  t.true(allows([nullRw, noWrite], c(1, 3, M)));
  t.true(allows([noWrite, nullRw], c(1, 3, R | W)), 'in the other order the allow is last');
  // A hole in a wildcard allow is honoured (v1 would ignore it; runc refuses the spec).
  const allChars: DeviceRule = { allow: true, type: 'c', access: 'rwm' };
  const noKmsg: DeviceRule = { allow: false, type: 'c', major: 1, minor: 11, access: 'rwm' };
  t.false(allows([allChars, noKmsg], c(1, 11, R)));
  t.true(allows([allChars, noKmsg], c(1, 3, R)));
  t.true(allows([noKmsg, allChars], c(1, 11, R)));
  // Rights from separate rules combine.
  const readOnly: DeviceRule = { allow: true, type: 'c', major: 1, minor: 3, access: 'r' };
  const writeOnly: DeviceRule = { allow: true, type: 'c', major: 1, minor: -1, access: 'w' };
  t.true(allows([readOnly, writeOnly], c(1, 3, R | W)));
  t.false(allows([readOnly, writeOnly], c(1, 5, R | W)));
});

test('type "a" is every device and every right; major/minor/access are ignored as v1 does', (t) => {
  const allowAll: DeviceRule = { allow: true, type: 'a', major: 8, minor: 0, access: 'r' };
  t.true(allows([allowAll], b(254, 0, R | W | M)));
  t.true(allows([allowAll], c(1, 11, W)));
  t.true(allows([{ allow: true }], { type: 7, major: 0, minor: 0, access: R }), 'no type is "a"');
  const denyAllAfter: DeviceRule[] = [allowAll, { allow: true, type: 'b', major: 8, minor: 0 }, { allow: false, access: 'w' }];
  t.false(allows(denyAllAfter, b(8, 0, R)), 'a deny "a" resets what came before');
  const reopened = [...denyAllAfter, { allow: true, type: 'c' as const, major: 1, minor: 3, access: 'r' }];
  t.true(allows(reopened, c(1, 3, R)));
  t.false(allows(reopened, c(1, 3, W)));
});

test("wildcards: major or minor -1 or absent match any number, of the rule's type only", (t) => {
  const pts: DeviceRule = { allow: true, type: 'c', major: 136, access: 'rw' };
  t.true(allows([pts], c(136, 0, R)));
  t.true(allows([pts], c(136, 0xfffff, W)));
  t.false(allows([pts], b(136, 0, R)));
  t.false(allows([pts], c(137, 0, R)));
  const minorOne: DeviceRule = { allow: true, type: 'b', major: -1, minor: 1, access: 'r' };
  t.true(allows([minorOne], b(8, 1, R)));
  t.true(allows([minorOne], b(254, 1, R)));
  t.false(allows([minorOne], b(8, 2, R)));
  t.true(allows([{ allow: true, type: 'b' }], b(9, 9, R | W | M)), 'access absent is rwm');
});

/** A deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test('random rule lists: the program decides every request as the model does', (t) => {
  const numbers = [0, 1, 3, 5, 8, 136, 0xffff_ffff];
  const accessSets = ['r', 'w', 'm', 'rw', 'rm', 'wm', 'rwm', undefined];
  const types = ['a', 'c', 'b', undefined] as const;
  const requests: Request[] = [];
  for (const type of [BLOCK, CHAR, 3]) {
    for (const major of numbers.slice(0, 5))
      for (const minor of numbers.slice(0, 4)) for (let access = 0; access <= 8; access++) requests.push({ type, major, minor, access });
  }
  requests.push(c(0xffff_ffff, 0xffff_ffff, R), b(0xffff_ffff, 136, W));
  let checked = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const rand = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const rules: DeviceRule[] = [];
    const count = Math.floor(rand() * 8);
    for (let i = 0; i < count; i++) {
      const rule: DeviceRule = { allow: rand() < 0.5 };
      const type = rand() < 0.15 ? pick(types) : pick(['c', 'b'] as const);
      if (type !== undefined) rule.type = type;
      const major = rand() < 0.4 ? -1 : pick(numbers);
      const minor = rand() < 0.4 ? pick([-1, undefined]) : pick(numbers);
      if (major !== -1 || rand() < 0.5) rule.major = major;
      if (minor !== undefined) rule.minor = minor;
      const access = pick(accessSets);
      if (access !== undefined) rule.access = access;
      rules.push(rule);
    }
    const program = deviceFilterInstructions(rules);
    for (const req of requests) {
      const got = run(program, req) === 1;
      if (got !== modelAllows(rules, req)) {
        t.fail(`seed ${seed}: ${JSON.stringify(rules)} on ${JSON.stringify(req)}: program ${got}, model ${!got}\n${listing(program).join('\n')}`);
        return;
      }
      checked++;
    }
  }
  t.log(`${checked} decisions over 300 rule lists agree with the model`);
  t.pass();
});

test('the default set comes after the spec rules, so a spec cannot take /dev/null away', (t) => {
  const program = deviceProgramFor([{ allow: false, type: 'c', major: 1, minor: 3, access: 'rwm' }]);
  t.is(run(program, c(1, 3, R | W)), 1);
  t.deepEqual(deviceProgramFor([]), deviceFilterInstructions([...DEFAULT_ALLOWED_DEVICES]), 'no spec rules: the defaults alone on top of deny-all');
  t.true(deviceProgramFor(undefined).length < 200, `the default program is small (${deviceProgramFor(undefined).length} instructions)`);
});

// ---------------------------------------------------------------------------------------------
// Limits and errors.

test("numbers outside the kernel's 32 bits and oversized rule lists are refused, naming the field", (t) => {
  t.throws(() => deviceProgramFor([{ allow: true, type: 'c', major: 2 ** 32, minor: 0 }]), {
    message: /^linux\.resources\.devices\[0\]\.major: must be -1 \(any\) or an integer from 0 to 4294967295, got 4294967296$/,
  });
  t.throws(() => deviceProgramFor([{ allow: true }, { allow: true, type: 'b', major: 1, minor: -2 }]), { message: /devices\[1\]\.minor/ });
  t.throws(() => deviceProgramFor([{ allow: true, type: 'c', access: 'rx' }]), { message: /devices\[0\]\.access: must be a combination of r, w and m/ });
  const many: DeviceRule[] = Array.from({ length: 400 }, (_, i) => ({ allow: i % 2 === 0, type: 'c', major: i, minor: i, access: 'rwm' }));
  t.throws(() => deviceProgramFor(many), { message: /^linux\.resources\.devices: 411 rules make a device program of \d+ BPF instructions, more than 4096$/ });
  const fits = many.slice(0, 300);
  t.true(deviceProgramFor(fits).length <= MAX_DEVICE_PROGRAM_INSTRUCTIONS);
});

// ---------------------------------------------------------------------------------------------
// The driver's use of it (a plain-directory tree: nothing reaches the kernel; the attacher records).

async function scratchRoot(): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-devbpf-'));
  await fs.writeFile(path.join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  await fs.writeFile(path.join(root, 'cgroup.subtree_control'), '');
  return root;
}

test("CgroupsV2.create attaches the program for the spec's rules to the container's directory", async (t) => {
  const root = await scratchRoot();
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const attached: Array<{ dir: string; program: Int32Array }> = [];
  const driver = new CgroupsV2(root, { attachDeviceFilter: (dir, program) => attached.push({ dir, program }) });
  const devices: DeviceRule[] = [{ allow: true, type: 'c', major: 10, minor: 200, access: 'rw' }];
  const record = await driver.create('tessera/ctr1', { devices });
  t.deepEqual(
    attached.map((a) => a.dir),
    [path.join(root, 'tessera', 'ctr1')],
  );
  t.deepEqual([...(attached[0]?.program ?? [])], [...encodeProgram(deviceProgramFor(devices))]);
  t.is(record.warnings, undefined, 'nothing about devices is left unenforced');
});

test('CgroupsV2.create fails and removes what it made when the program cannot be attached', async (t) => {
  const root = await scratchRoot();
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const driver = new CgroupsV2(root, {
    attachDeviceFilter: () => {
      throw Object.assign(new Error('BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) to x: Operation not permitted (EPERM)'), { code: 'EPERM' });
    },
  });
  await t.throwsAsync(driver.create('tessera/ctr2', {}), {
    message: `linux.resources.devices: cannot attach the device filter (BPF_CGROUP_DEVICE) to ${path.join(root, 'tessera', 'ctr2')}: BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) to x: Operation not permitted (EPERM)`,
  });
  // In a plain directory the parent keeps the cgroup.subtree_control file written into it (rmdir of
  // a real cgroup ignores interface files); the leaf, which has none, is gone.
  t.deepEqual(await fs.readdir(path.join(root, 'tessera')), ['cgroup.subtree_control']);
  await fs.rm(path.join(root, 'tessera'), { recursive: true });
  // A rule list the program cannot hold is refused before anything is made.
  await t.throwsAsync(driver.create('tessera/ctr3', { devices: [{ allow: true, type: 'c', major: 2 ** 32 }] }), { message: /devices\[0\]\.major/ });
  t.deepEqual((await fs.readdir(root)).sort(), ['cgroup.controllers', 'cgroup.subtree_control']);
});
