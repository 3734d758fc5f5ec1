// The default seccomp profile: an allow-list of system calls that ordinary programs need; every
// other call fails with EPERM. Calls that reach kernel-global state (modules, kexec, clocks, swap,
// keyrings, mounts, new namespaces, tracing other processes, BPF, perf) are allowed only when the
// container holds the capability that would let it use them anyway, so a profile never grants what
// the capability set withholds, and the filter is a second wall behind the capability checks
// (kernel bugs in rarely used calls are out of reach). Same intent as Docker's default profile,
// written from its documented list of blocked calls and reasons.

import type { OciSeccomp, OciSeccompSyscall } from './seccomp.js';

const EPERM = 1;
const ENOSYS = 38;

/** Namespace-creating clone flags: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET. */
const CLONE_NAMESPACE_FLAGS = 0x7e02_0000;

/** personality(2) values that only pick an ABI flavour: Linux, Linux32, UNAME26, both, and the query. */
const HARMLESS_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

const FILES = [
  'access',
  'chdir',
  'chmod',
  'chown',
  'chown32',
  'close',
  'close_range',
  'copy_file_range',
  'creat',
  'dup',
  'dup2',
  'dup3',
  'faccessat',
  'faccessat2',
  'fadvise64',
  'fadvise64_64',
  'fallocate',
  'fchdir',
  'fchmod',
  'fchmodat',
  'fchmodat2',
  'fchown',
  'fchown32',
  'fchownat',
  'fcntl',
  'fcntl64',
  'fdatasync',
  'fgetxattr',
  'flistxattr',
  'flock',
  'fremovexattr',
  'fsetxattr',
  'fstat',
  'fstat64',
  'fstatat64',
  'fstatfs',
  'fstatfs64',
  'fsync',
  'ftruncate',
  'ftruncate64',
  'futimesat',
  'getcwd',
  'getdents',
  'getdents64',
  'getxattr',
  'inotify_add_watch',
  'inotify_init',
  'inotify_init1',
  'inotify_rm_watch',
  'lchown',
  'lchown32',
  'lgetxattr',
  'link',
  'linkat',
  'listxattr',
  'llistxattr',
  'lremovexattr',
  'lseek',
  '_llseek',
  'lsetxattr',
  'lstat',
  'lstat64',
  'memfd_create',
  'mkdir',
  'mkdirat',
  'mknod',
  'mknodat',
  'newfstatat',
  'open',
  'openat',
  'openat2',
  'pipe',
  'pipe2',
  'pread64',
  'preadv',
  'preadv2',
  'pwrite64',
  'pwritev',
  'pwritev2',
  'read',
  'readahead',
  'readlink',
  'readlinkat',
  'readv',
  'removexattr',
  'rename',
  'renameat',
  'renameat2',
  'rmdir',
  'sendfile',
  'sendfile64',
  'setxattr',
  'splice',
  'stat',
  'stat64',
  'statfs',
  'statfs64',
  'statx',
  'symlink',
  'symlinkat',
  'sync',
  'sync_file_range',
  'syncfs',
  'tee',
  'truncate',
  'truncate64',
  'umask',
  'unlink',
  'unlinkat',
  'utime',
  'utimensat',
  'utimensat_time64',
  'utimes',
  'vmsplice',
  'write',
  'writev',
  'ioctl',
  'fanotify_mark',
  'io_cancel',
  'io_destroy',
  'io_getevents',
  'io_pgetevents',
  'io_pgetevents_time64',
  'io_setup',
  'io_submit',
];

const WAITING = [
  'select',
  '_newselect',
  'pselect6',
  'pselect6_time64',
  'poll',
  'ppoll',
  'ppoll_time64',
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_ctl_old',
  'epoll_pwait',
  'epoll_pwait2',
  'epoll_wait',
  'epoll_wait_old',
  'eventfd',
  'eventfd2',
  'signalfd',
  'signalfd4',
  'timerfd_create',
  'timerfd_gettime',
  'timerfd_gettime64',
  'timerfd_settime',
  'timerfd_settime64',
  'futex',
  'futex_time64',
  'futex_waitv',
  'get_robust_list',
  'set_robust_list',
];

const MEMORY_AND_IPC = [
  'brk',
  'madvise',
  'mincore',
  'mlock',
  'mlock2',
  'mlockall',
  'mmap',
  'mmap2',
  'mprotect',
  'mremap',
  'msync',
  'munlock',
  'munlockall',
  'munmap',
  'membarrier',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  'remap_file_pages',
  'shmat',
  'shmctl',
  'shmdt',
  'shmget',
  'ipc',
  'msgctl',
  'msgget',
  'msgrcv',
  'msgsnd',
  'semctl',
  'semget',
  'semop',
  'semtimedop',
  'semtimedop_time64',
  'mq_getsetattr',
  'mq_notify',
  'mq_open',
  'mq_timedreceive',
  'mq_timedreceive_time64',
  'mq_timedsend',
  'mq_timedsend_time64',
  'mq_unlink',
];

const PROCESSES = [
  'arch_prctl',
  'capget',
  'capset',
  'execve',
  'execveat',
  'exit',
  'exit_group',
  'fork',
  'vfork',
  'get_thread_area',
  'set_thread_area',
  'set_tid_address',
  'getpid',
  'getppid',
  'gettid',
  'getpgid',
  'getpgrp',
  'getsid',
  'setsid',
  'setpgid',
  'getuid',
  'getuid32',
  'geteuid',
  'geteuid32',
  'getgid',
  'getgid32',
  'getegid',
  'getegid32',
  'getgroups',
  'getgroups32',
  'getresuid',
  'getresuid32',
  'getresgid',
  'getresgid32',
  'setuid',
  'setuid32',
  'setgid',
  'setgid32',
  'setreuid',
  'setreuid32',
  'setregid',
  'setregid32',
  'setresuid',
  'setresuid32',
  'setresgid',
  'setresgid32',
  'setgroups',
  'setgroups32',
  'setfsuid',
  'setfsuid32',
  'setfsgid',
  'setfsgid32',
  'getpriority',
  'setpriority',
  'getrlimit',
  'setrlimit',
  'prlimit64',
  'ugetrlimit',
  'getrusage',
  'sched_getaffinity',
  'sched_setaffinity',
  'sched_getattr',
  'sched_setattr',
  'sched_getparam',
  'sched_setparam',
  'sched_getscheduler',
  'sched_setscheduler',
  'sched_get_priority_max',
  'sched_get_priority_min',
  'sched_rr_get_interval',
  'sched_rr_get_interval_time64',
  'sched_yield',
  'ioprio_get',
  'ioprio_set',
  'kill',
  'tkill',
  'tgkill',
  'rt_sigaction',
  'rt_sigpending',
  'rt_sigprocmask',
  'rt_sigqueueinfo',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'rt_sigtimedwait_time64',
  'rt_tgsigqueueinfo',
  'sigaction',
  'sigaltstack',
  'signal',
  'sigpending',
  'sigprocmask',
  'sigreturn',
  'sigsuspend',
  'pause',
  'wait4',
  'waitid',
  'waitpid',
  'prctl',
  'uname',
  'sysinfo',
  'times',
  'restart_syscall',
  'rseq',
  'getcpu',
  'getrandom',
  'pidfd_open',
  'pidfd_send_signal',
  'process_mrelease',
  'seccomp',
  'landlock_add_rule',
  'landlock_create_ruleset',
  'landlock_restrict_self',
];

const TIME = [
  'alarm',
  'getitimer',
  'setitimer',
  'nanosleep',
  'clock_nanosleep',
  'clock_nanosleep_time64',
  'clock_gettime',
  'clock_gettime64',
  'clock_getres',
  'clock_getres_time64',
  'gettimeofday',
  'time',
  'timer_create',
  'timer_delete',
  'timer_getoverrun',
  'timer_gettime',
  'timer_gettime64',
  'timer_settime',
  'timer_settime64',
  // Without CAP_SYS_TIME adjtimex only reads the clock state.
  'adjtimex',
];

const NETWORK = [
  'accept',
  'accept4',
  'bind',
  'connect',
  'getpeername',
  'getsockname',
  'getsockopt',
  'setsockopt',
  'listen',
  'recv',
  'recvfrom',
  'recvmmsg',
  'recvmmsg_time64',
  'recvmsg',
  'send',
  'sendmmsg',
  'sendmsg',
  'sendto',
  'shutdown',
  'socket',
  'socketcall',
  'socketpair',
];

/**
 * Calls the filter allows only alongside a capability; each is blocked by default because it acts
 * on state shared with the host or opens a large kernel attack surface.
 */
const BY_CAPABILITY: Readonly<Record<string, readonly string[]>> = {
  // Mounts, namespaces (unshare/setns/clone3 with namespace flags), host names, kernel logs, handles.
  CAP_SYS_ADMIN: [
    'clone3',
    'fanotify_init',
    'fsconfig',
    'fsmount',
    'fsopen',
    'fspick',
    'lookup_dcookie',
    'mount',
    'mount_setattr',
    'move_mount',
    'name_to_handle_at',
    'open_tree',
    'perf_event_open',
    'quotactl',
    'quotactl_fd',
    'setdomainname',
    'sethostname',
    'setns',
    'syslog',
    'umount',
    'umount2',
    'unshare',
    'bpf',
    'pivot_root',
    'swapon',
    'swapoff',
  ],
  CAP_SYS_BOOT: ['reboot', 'kexec_load', 'kexec_file_load'],
  CAP_SYS_CHROOT: ['chroot'],
  CAP_SYS_MODULE: ['init_module', 'finit_module', 'delete_module'],
  CAP_SYS_PACCT: ['acct'],
  // Reading and writing other processes' memory.
  CAP_SYS_PTRACE: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'process_madvise'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  // The clock is not namespaced: setting it changes the host's time.
  CAP_SYS_TIME: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  // NUMA policy and page migration act on memory placement machine-wide.
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node', 'move_pages'],
  CAP_SYSLOG: ['syslog'],
  CAP_BPF: ['bpf'],
  CAP_PERFMON: ['perf_event_open'],
  // open_by_handle_at bypasses path checks (the "shocker" container escape).
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/** Never allowed: obsolete or kernel-global with no capability that makes them safe here. */
export const ALWAYS_DENIED = [
  'add_key',
  'keyctl',
  'request_key', // the kernel keyring is not namespaced
  'userfaultfd', // a tool for widening kernel race windows
  'create_module',
  'get_kernel_syms',
  'query_module',
  'nfsservctl',
  'uselib',
  'ustat',
  'sysfs',
  '_sysctl',
  'vm86',
  'vm86old',
  'modify_ldt',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
];

function allow(names: readonly string[]): OciSeccompSyscall {
  return { names: [...names], action: 'SCMP_ACT_ALLOW' };
}

/** Seccomp architectures for a Node `process.arch`: the native one plus the compat ABIs it can run. */
export function seccompArchitectures(arch: string): string[] {
  switch (arch) {
    case 'x64':
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'ppc64':
      return ['SCMP_ARCH_PPC64LE'];
    case 's390x':
      return ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'];
    case 'riscv64':
      return ['SCMP_ARCH_RISCV64'];
    default:
      return [];
  }
}

/**
 * The default profile for a container whose effective capabilities are `capabilities` (CAP_*
 * names) on the machine architecture `arch` (Node's process.arch).
 */
export function defaultSeccompProfile(capabilities: readonly string[], arch: string): OciSeccomp {
  const has = new Set(capabilities);
  const syscalls: OciSeccompSyscall[] = [allow([...FILES, ...WAITING, ...MEMORY_AND_IPC, ...PROCESSES, ...TIME, ...NETWORK])];
  // One rule per value: conditions within a rule are ANDed, separate rules ORed.
  for (const value of HARMLESS_PERSONALITIES) {
    syscalls.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] });
  }
  const gated = new Set<string>();
  for (const [cap, names] of Object.entries(BY_CAPABILITY)) if (has.has(cap)) for (const n of names) gated.add(n);
  if (has.has('CAP_SYS_ADMIN')) {
    gated.add('clone');
  } else {
    // clone may create threads and processes but no namespaces.
    syscalls.push({
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    });
    // clone3 passes its flags in memory the filter cannot read; ENOSYS makes libc fall back to clone.
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  if (gated.size > 0) syscalls.push(allow([...gated].sort()));
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: seccompArchitectures(arch),
    syscalls,
  };
}
