// Pure logic of the process-security plan: capability names, seccomp conversion and the default
// profile, sysctl classification, id maps, and config.json validation of the security fields.

import test from 'ava';
import { capabilityNumbers, DEFAULT_CAPABILITIES, nativeCapabilities, withRaisableAmbient } from '../../agent/runtime/capabilities.js';
import { parseOciSpec } from '../../agent/runtime/oci-config.js';
import { nativeSeccomp } from '../../agent/runtime/seccomp.js';
import { ALWAYS_DENIED, defaultSeccompProfile } from '../../agent/runtime/seccomp-default.js';
import { buildSecurityPlan, sysctlNamespace, sysctlProblem } from '../../agent/runtime/security-plan.js';
import { buildOciSpec } from '../../agent/runtime/spec.js';
import type { OciSpec } from '../../agent/runtime/types.js';

const SRC = 'config.json';

function baseSpec(): OciSpec {
  return buildOciSpec({ args: ['true'], rootfsPath: '/rootfs', arch: 'x64' });
}

function allowed(profile: ReturnType<typeof defaultSeccompProfile>): Set<string> {
  const names = new Set<string>();
  for (const rule of profile.syscalls ?? []) if (rule.action === 'SCMP_ACT_ALLOW' && (rule.args ?? []).length === 0) for (const n of rule.names) names.add(n);
  return names;
}

test('capability names become sorted, de-duplicated numbers; unknown names are rejected with the field', (t) => {
  t.deepEqual(capabilityNumbers(['CAP_KILL', 'CAP_CHOWN', 'CAP_KILL'], 'f'), [0, 5]);
  t.throws(() => capabilityNumbers(['CAP_CHOWN', 'CHOWN'], 'process.capabilities.bounding'), {
    message: "process.capabilities.bounding[1]: unknown capability 'CHOWN' (expected a CAP_* name such as CAP_CHOWN)",
  });
  t.throws(() => capabilityNumbers(['toString'], 'f'), { message: /unknown capability 'toString'/ });
  const caps = nativeCapabilities({ bounding: ['CAP_SYS_ADMIN'] }, 'f');
  t.deepEqual(caps, { bounding: [21], effective: [], inheritable: [], permitted: [], ambient: [] });
});

test('ambient capabilities the kernel would not raise are left out with a warning each, as runc ignores them', (t) => {
  // process.capabilities as `runc spec` writes it: ambient listed, no inheritable set.
  const runcDefault = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const spec = baseSpec();
  spec.process.capabilities = { bounding: runcDefault, effective: runcDefault, permitted: runcDefault, ambient: runcDefault };
  const plan = buildSecurityPlan(spec, SRC, ['pid', 'network', 'ipc', 'uts', 'mount']);
  t.deepEqual(plan.capabilities, { bounding: [5, 10, 29], effective: [5, 10, 29], inheritable: [], permitted: [5, 10, 29], ambient: [] });
  t.deepEqual(plan.warnings, [
    'process.capabilities.ambient: CAP_KILL is not raised: it is not in the inheritable set (the kernel raises only capabilities that are both permitted and inheritable)',
    'process.capabilities.ambient: CAP_NET_BIND_SERVICE is not raised: it is not in the inheritable set (the kernel raises only capabilities that are both permitted and inheritable)',
    'process.capabilities.ambient: CAP_AUDIT_WRITE is not raised: it is not in the inheritable set (the kernel raises only capabilities that are both permitted and inheritable)',
  ]);
  // Permitted and inheritable: raised, no warning. Missing from both: both named.
  const mixed = withRaisableAmbient(
    nativeCapabilities({ permitted: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL', 'CAP_CHOWN'] }, 'f'),
    'process.capabilities',
  );
  t.deepEqual(mixed.capabilities.ambient, [5]);
  t.deepEqual(mixed.warnings, [
    'process.capabilities.ambient: CAP_CHOWN is not raised: it is not in the permitted or inheritable set (the kernel raises only capabilities that are both permitted and inheritable)',
  ]);
  t.deepEqual(buildSecurityPlan(baseSpec(), SRC, ['pid', 'network', 'ipc', 'uts', 'mount']).warnings, [], 'our own default spec raises nothing it cannot');
});

test("the default spec has Docker's capability set in bounding/effective/permitted and none inheritable or ambient", (t) => {
  const spec = baseSpec();
  const caps = spec.process.capabilities;
  t.is(DEFAULT_CAPABILITIES.length, 14);
  t.deepEqual(caps?.bounding, [...DEFAULT_CAPABILITIES]);
  t.deepEqual(caps?.effective, [...DEFAULT_CAPABILITIES]);
  t.deepEqual(caps?.permitted, [...DEFAULT_CAPABILITIES]);
  t.deepEqual(caps?.inheritable, []);
  t.deepEqual(caps?.ambient, []);
  t.true(spec.process.noNewPrivileges);
  t.is(spec.linux?.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
  t.is(buildOciSpec({ args: ['true'], rootfsPath: '/r', seccomp: 'unconfined' }).linux?.seccomp, undefined);
});

test('the default seccomp profile denies what reaches the host unless the capability is held', (t) => {
  const plain = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'x64');
  const names = allowed(plain);
  t.is(plain.defaultErrnoRet, 1);
  t.deepEqual(plain.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  for (const everyday of ['read', 'write', 'openat', 'execve', 'wait4', 'socket', 'futex', 'mmap', 'chroot', 'setuid']) {
    t.true(names.has(everyday), `${everyday} allowed`);
  }
  const denied = [
    'mount',
    'umount2',
    'unshare',
    'setns',
    'kexec_load',
    'kexec_file_load',
    'init_module',
    'finit_module',
    'delete_module',
    'bpf',
    'perf_event_open',
    'ptrace',
    'process_vm_readv',
    'keyctl',
    'add_key',
    'request_key',
    'open_by_handle_at',
    'reboot',
    'swapon',
    'swapoff',
    'settimeofday',
    'clock_settime',
    'acct',
    'pivot_root',
    'userfaultfd',
    'iopl',
    'syslog',
    'clone3',
  ];
  for (const name of denied) t.false(names.has(name), `${name} denied`);
  // clone is allowed only without namespace flags; clone3 answers ENOSYS so libc falls back to clone.
  const clone = plain.syscalls?.find((r) => r.names.includes('clone'));
  t.deepEqual(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
  t.is(plain.syscalls?.find((r) => r.names.includes('clone3'))?.errnoRet, 38);

  const admin = allowed(defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_MODULE'], 'x64'));
  for (const name of ['mount', 'unshare', 'setns', 'clone', 'clone3', 'ptrace', 'init_module']) t.true(admin.has(name), `${name} with its capability`);
  for (const name of ALWAYS_DENIED) t.false(admin.has(name), `${name} never`);
  t.false(admin.has('reboot'));
});

test('seccomp profiles convert to the addon form; flags and misplaced errnoRet are refused', (t) => {
  const native = nativeSeccomp(
    {
      defaultAction: 'SCMP_ACT_KILL',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 1, value: 448, op: 'SCMP_CMP_EQ' }] }],
    },
    'linux.seccomp',
  );
  t.deepEqual(native, {
    defaultAction: 'kill_thread',
    defaultErrno: 1,
    architectures: ['x86_64'],
    rules: [{ names: ['mkdir'], action: 'errno', errno: 13, args: [{ index: 1, value: 448, valueTwo: 0, op: 'eq' }] }],
  });
  t.throws(() => nativeSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG'] }, 'linux.seccomp'), {
    message: /linux\.seccomp\.flags: seccomp flag 'SECCOMP_FILTER_FLAG_LOG' is not supported/,
  });
  t.throws(() => nativeSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['x'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }] }, 'linux.seccomp'), {
    message: /syscalls\[0\]\.errnoRet: only meaningful with SCMP_ACT_ERRNO/,
  });
});

test("only namespaced sysctls are accepted, and only with the container's own namespace", (t) => {
  t.is(sysctlNamespace('net.ipv4.ip_forward'), 'network');
  t.is(sysctlNamespace('kernel.shmmax'), 'ipc');
  t.is(sysctlNamespace('kernel.sem'), 'ipc');
  t.is(sysctlNamespace('fs.mqueue.msg_max'), 'ipc');
  t.is(sysctlNamespace('kernel.hostname'), undefined);
  t.regex(sysctlProblem('vm.drop_caches') ?? '', /not namespaced/);
  t.regex(sysctlProblem('kernel.core_pattern') ?? '', /not namespaced/);
  t.regex(sysctlProblem('net/../../x') ?? '', /not a sysctl name/);
  t.is(sysctlProblem('net.ipv4.conf.all.forwarding'), undefined);

  const spec = baseSpec();
  if (spec.linux !== undefined) spec.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.msgmax': '9000' };
  const plan = buildSecurityPlan(spec, SRC, ['pid', 'network', 'ipc', 'uts', 'mount']);
  t.deepEqual(plan.sysctls, [
    { path: '/proc/sys/net/ipv4/ip_forward', value: '1' },
    { path: '/proc/sys/kernel/msgmax', value: '9000' },
  ]);
  t.throws(() => buildSecurityPlan(spec, SRC, ['pid', 'ipc', 'uts', 'mount']), {
    message: /'net\.ipv4\.ip_forward' needs the container's own network namespace/,
  });
});

test('rlimits, umask, oom_score_adj, domainname and user namespace maps in the plan', (t) => {
  const spec = baseSpec();
  spec.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }];
  spec.process.user.umask = 0o027;
  spec.process.oomScoreAdj = -500;
  spec.domainname = 'example.org';
  spec.linux?.namespaces?.push({ type: 'user' });
  if (spec.linux !== undefined) {
    spec.linux.uidMappings = [
      { containerID: 0, hostID: 100000, size: 1000 },
      { containerID: 1000, hostID: 5000, size: 1 },
    ];
    spec.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  }
  const plan = buildSecurityPlan(spec, SRC, ['pid', 'network', 'ipc', 'uts', 'mount']);
  t.deepEqual(plan.rlimits, [{ resource: 7, soft: 1024, hard: 4096 }]);
  t.is(plan.umask, 0o027);
  t.is(plan.oomScoreAdj, -500);
  t.is(plan.domainname, 'example.org');
  t.deepEqual(plan.userNamespace, { uidMap: '0 100000 1000\n1000 5000 1\n', gidMap: '0 100000 65536\n' });
  t.is(plan.rootPropagation, 'private');

  if (spec.linux !== undefined)
    spec.linux.uidMappings = [
      { containerID: 0, hostID: 1, size: 10 },
      { containerID: 5, hostID: 100, size: 10 },
    ];
  t.throws(() => buildSecurityPlan(spec, SRC, ['mount']), { message: /linux\.uidMappings\[1\]: containerID range overlaps/ });
  const noUserNs = baseSpec();
  if (noUserNs.linux !== undefined) noUserNs.linux.uidMappings = [{ containerID: 0, hostID: 1, size: 1 }];
  t.throws(() => buildSecurityPlan(noUserNs, SRC, ['mount']), { message: /uidMappings\/gidMappings are set but linux\.namespaces has no user namespace/ });
});

test('namespaces joined by path: all kinds but user', (t) => {
  const spec = baseSpec();
  spec.linux?.namespaces?.splice(1, 1, { type: 'network', path: '/var/run/netns/x' });
  t.deepEqual(buildSecurityPlan(spec, SRC, ['pid', 'ipc', 'uts', 'mount']).namespacePaths, [{ type: 'network', path: '/var/run/netns/x' }]);
  // pid (joined by the shim before it clones the init) and mount, as the conformance suite's linux_ns_path asks.
  const pid = baseSpec();
  pid.linux?.namespaces?.splice(0, 1, { type: 'pid', path: '/proc/1/ns/pid' });
  t.deepEqual(buildSecurityPlan(pid, SRC, ['mount']).namespacePaths, [{ type: 'pid', path: '/proc/1/ns/pid' }]);
  const user = baseSpec();
  user.linux?.namespaces?.push({ type: 'user', path: '/proc/1/ns/user' });
  t.throws(() => buildSecurityPlan(user, SRC, ['mount']), { message: /joining a user namespace by path is not supported/ });
});

/** The spec's seccomp profile as loose fields, to break it on purpose; the base spec always has one. */
function seccompFields(spec: OciSpec): Record<string, unknown> {
  const seccomp = spec.linux?.seccomp;
  if (seccomp === undefined) throw new Error('the base spec has no seccomp profile');
  return seccomp as unknown as Record<string, unknown>;
}

test('config.json validation names the security field that is wrong', (t) => {
  const bad = (mutate: (s: Record<string, unknown> & OciSpec) => void): string => {
    const spec = JSON.parse(JSON.stringify(baseSpec())) as Record<string, unknown> & OciSpec;
    mutate(spec);
    const err = t.throws(() => parseOciSpec(spec, SRC));
    return err.message;
  };
  t.regex(
    bad((s) => {
      s.process.capabilities = { effective: ['CAP_NOPE'] };
    }),
    /config\.json: invalid OCI config: process\.capabilities\.effective\.0: unknown capability 'CAP_NOPE'/,
  );
  t.regex(
    bad((s) => {
      (s.process.capabilities as Record<string, unknown>)['extra'] = [];
    }),
    /process\.capabilities/,
  );
  t.regex(
    bad((s) => {
      seccompFields(s)['defaultAction'] = 'SCMP_ACT_NOPE';
    }),
    /linux\.seccomp\.defaultAction: must be one of SCMP_ACT_ALLOW/,
  );
  t.regex(
    bad((s) => {
      s.linux?.seccomp?.syscalls?.push({ names: ['x'], action: 'SCMP_ACT_ERRNO', args: [{ index: 7, value: 0, op: 'SCMP_CMP_EQ' }] });
    }),
    /linux\.seccomp\.syscalls\.\d+\.args\.0\.index/,
  );
  t.regex(
    bad((s) => {
      seccompFields(s)['architectures'] = ['SCMP_ARCH_Z80'];
    }),
    /linux\.seccomp\.architectures\.0: unknown architecture 'SCMP_ARCH_Z80'/,
  );
  t.regex(
    bad((s) => {
      if (s.linux !== undefined) s.linux.sysctl = { 'kernel.panic': '1' };
    }),
    /linux\.sysctl\.kernel\.panic: 'kernel\.panic' is not namespaced/,
  );
  t.regex(
    bad((s) => {
      s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 5 }];
    }),
    /process\.rlimits\.0: soft must not exceed hard/,
  );
  t.regex(
    bad((s) => {
      s.process.oomScoreAdj = 5000;
    }),
    /process\.oomScoreAdj/,
  );
  t.regex(
    bad((s) => {
      s.process.user.umask = 0o1777;
    }),
    /process\.user\.umask/,
  );
  t.regex(
    bad((s) => {
      s.process.selinuxLabel = 'system_u:system_r:container_t:s0';
    }),
    /process\.selinuxLabel: SELinux is not supported/,
  );
  t.regex(
    bad((s) => {
      if (s.linux !== undefined) s.linux.mountLabel = 'x';
    }),
    /linux\.mountLabel: SELinux mount labels are not supported/,
  );
  t.regex(
    bad((s) => {
      if (s.linux !== undefined) s.linux.rootfsPropagation = 'sideways';
    }),
    /linux\.rootfsPropagation/,
  );
  // A valid default spec with every security field passes and keeps them.
  const ok = parseOciSpec(JSON.parse(JSON.stringify(baseSpec())), SRC);
  t.is(ok.process.capabilities?.bounding?.length, 14);
  t.is(ok.linux?.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
  t.is(parseOciSpec({ ...JSON.parse(JSON.stringify(baseSpec())), process: { ...baseSpec().process, apparmorProfile: '' } }, SRC).process.apparmorProfile, '');
});
