// Process security of real containers: capabilities, no_new_privs, seccomp, rlimits, umask,
// sysctls, joined network namespaces, user namespaces; runc (Debian's) as the oracle where the
// output can be compared line by line.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { execCollect } from '../../agent/runtime/exec.js';
import type { OciSeccomp } from '../../agent/runtime/seccomp.js';
import type { OciSpec } from '../../agent/runtime/types.js';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';

const run = promisify(execFile);

async function fixture(t: ExecutionContext): Promise<RuntimeFixture> {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  return fx;
}

/** Runs a raw spec under our runtime; returns exit code and log. */
async function runOurs(fx: RuntimeFixture, id: string, spec: OciSpec): Promise<{ code: number; out: string }> {
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  const bundle = await fx.writeBundle(id, spec);
  fx.track(id);
  await fx.runtime.create(id, bundle, { logPath: fx.logPath(id) });
  await fx.runtime.start(id);
  const exit = await withTimeout(fx.runtime.wait(id), 20_000);
  const out = await fs.readFile(fx.logPath(id), 'utf8').catch(() => '');
  await fx.runtime.delete(id);
  return { code: exit.exitCode, out };
}

/** Runs the same kind of spec under runc (`runc run`, stdio captured). */
async function runRunc(fx: RuntimeFixture, id: string, spec: OciSpec): Promise<{ code: number; out: string }> {
  const bundle = await fx.writeBundle(id, spec);
  const root = path.join(fx.dir, 'runc-state');
  try {
    const r = await run('runc', ['--root', root, 'run', '--bundle', bundle, id], { timeout: 20_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: (e.stdout ?? '') + (e.stderr ?? '') };
  } finally {
    await run('runc', ['--root', root, 'delete', '--force', id]).catch(() => undefined);
  }
}

const STATUS_PROBE = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status";

test('capabilities, NoNewPrivs and Seccomp in /proc/self/status match runc (root and non-root)', async (t) => {
  const fx = await fixture(t);
  for (const user of [
    { uid: 0, gid: 0 },
    { uid: 1000, gid: 1000 },
  ]) {
    const oursId = fx.newId();
    const runcId = fx.newId();
    const ours = await runOurs(fx, oursId, fx.specFor(oursId, { args: ['sh', '-c', STATUS_PROBE], ...user }));
    const runc = await runRunc(fx, runcId, fx.specFor(runcId, { args: ['sh', '-c', STATUS_PROBE], ...user }));
    t.is(ours.code, 0, ours.out);
    t.is(runc.code, 0, runc.out);
    t.is(ours.out.trim(), runc.out.trim(), `uid ${user.uid}`);
    t.regex(ours.out, /NoNewPrivs:\s+1/);
    t.regex(ours.out, /Seccomp:\s+2/);
    // Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    t.regex(ours.out, /CapBnd:\s+00000000a80425fb/);
    t.regex(ours.out, user.uid === 0 ? /CapEff:\s+00000000a80425fb/ : /CapEff:\s+0000000000000000/);
  }
});

test('all five capability sets from the spec, ambient ones surviving a non-root execve', async (t) => {
  const fx = await fixture(t);
  const id = fx.newId();
  const spec = fx.specFor(id, { args: ['sh', '-c', STATUS_PROBE], uid: 1000, gid: 1000 });
  const net = ['CAP_NET_BIND_SERVICE'];
  spec.process.capabilities = { bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'], permitted: net, effective: net, inheritable: net, ambient: net };
  const ours = await runOurs(fx, id, spec);
  const runcId = fx.newId();
  const runcSpec = fx.specFor(runcId, { args: ['sh', '-c', STATUS_PROBE], uid: 1000, gid: 1000 });
  runcSpec.process.capabilities = spec.process.capabilities;
  const runc = await runRunc(fx, runcId, runcSpec);
  t.is(ours.code, 0, ours.out);
  t.is(ours.out.trim(), runc.out.trim());
  // Bit 10 (NET_BIND_SERVICE) in every set after execve, bit 5 (KILL) only in the bounding set.
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) t.regex(ours.out, new RegExp(`${set}:\\s+0000000000000400`));
  t.regex(ours.out, /CapBnd:\s+0000000000000420/);
});

const DENY_MKDIR: OciSeccomp = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  syscalls: [
    { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' },
    // An argument condition: chmod to 0700 fails with EACCES, other modes pass.
    { names: ['chmod'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 1, value: 0o700, op: 'SCMP_CMP_EQ' }] },
    { names: ['fchmodat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 2, value: 0o700, op: 'SCMP_CMP_EQ' }] },
  ],
};

test('a seccomp profile that denies a syscall gives its errno, as under runc', async (t) => {
  const fx = await fixture(t);
  const probe = 'mkdir /tmp/d; echo "mkdir=$?"; touch /tmp/f; chmod 700 /tmp/f; echo "chmod700=$?"; chmod 644 /tmp/f; echo "chmod644=$?"';
  const id = fx.newId();
  const ours = await runOurs(fx, id, fx.specFor(id, { args: ['sh', '-c', probe], seccomp: DENY_MKDIR }));
  const runcId = fx.newId();
  const runc = await runRunc(fx, runcId, fx.specFor(runcId, { args: ['sh', '-c', probe], seccomp: DENY_MKDIR }));
  t.regex(ours.out, /mkdir: .*Operation not permitted/);
  t.regex(ours.out, /mkdir=1/);
  t.regex(ours.out, /chmod: .*Permission denied/);
  t.regex(ours.out, /chmod700=1/);
  t.regex(ours.out, /chmod644=0/);
  // runc hands back stdout and stderr separately, our log interleaves them.
  t.deepEqual(ours.out.trim().split('\n').sort(), runc.out.trim().split('\n').sort());
});

test('rlimits, umask and oom_score_adj from the spec', async (t) => {
  const fx = await fixture(t);
  const r = await fx.run({
    args: ['sh', '-c', 'ulimit -Sn; ulimit -Hn; umask; cat /proc/self/oom_score_adj; touch /tmp/x; stat -c %a /tmp/x'],
    rlimits: [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }],
    umask: 0o027,
    oomScoreAdj: 500,
  });
  t.is(r.exit.exitCode, 0, r.log);
  t.deepEqual(r.log.trim().split('\n'), ['123', '456', '0027', '500', '640']);
});

test('a namespaced sysctl is set inside the container, not on the host', async (t) => {
  const fx = await fixture(t);
  const host = (await fs.readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  const want = host === '1' ? '0' : '1';
  const r = await fx.run({
    args: ['cat', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/kernel/shmmni'],
    sysctls: { 'net.ipv4.ip_forward': want, 'kernel.shmmni': '1234' },
  });
  t.is(r.exit.exitCode, 0, r.log);
  t.deepEqual(r.log.trim().split('\n'), [want, '1234']);
  t.is((await fs.readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), host);
});

test("a container joins another container's network namespace by path, and a named netns", async (t) => {
  const fx = await fixture(t);
  const first = await fx.create({ args: ['sleep', '30'] });
  await fx.runtime.start(first);
  const state = await fx.runtime.state(first);
  if (state === undefined) throw new Error('first container vanished');
  const nsPath = `/proc/${state.pid}/ns/net`;
  const id = fx.newId();
  const spec = fx.specFor(id, { args: ['readlink', '/proc/self/ns/net'] });
  spec.linux?.namespaces?.splice(
    spec.linux.namespaces.findIndex((n) => n.type === 'network'),
    1,
    { type: 'network', path: nsPath },
  );
  const ours = await runOurs(fx, id, spec);
  t.is(ours.code, 0, ours.out);
  t.is(ours.out.trim(), await fs.readlink(nsPath));

  // A netns made by the test, with a veth pair inside it (nothing in the host's namespace).
  const netns = `tsec-${fx.prefix}`.slice(0, 30);
  await run('ip', ['netns', 'add', netns]);
  t.teardown(async () => {
    await run('ip', ['netns', 'delete', netns]).catch(() => undefined);
  });
  await run('ip', ['-n', netns, 'link', 'add', 'tsa0', 'type', 'veth', 'peer', 'name', 'tsb0']);
  const id2 = fx.newId();
  const spec2 = fx.specFor(id2, { args: ['ls', '/sys/class/net'] });
  spec2.linux?.namespaces?.splice(
    spec2.linux.namespaces.findIndex((n) => n.type === 'network'),
    1,
    { type: 'network', path: `/var/run/netns/${netns}` },
  );
  const joined = await runOurs(fx, id2, spec2);
  t.is(joined.code, 0, joined.out);
  t.deepEqual(joined.out.trim().split(/\s+/).sort(), ['lo', 'tsa0', 'tsb0']);
});

test('user namespace with uid/gid maps; root inside is unprivileged outside', async (t) => {
  const fx = await fixture(t);
  // The mapped root is an unprivileged host uid: it must be able to reach the rootfs.
  await fs.chmod(fx.dir, 0o755);
  const id = fx.newId();
  const spec = fx.specFor(id, { args: ['sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; cat /proc/self/status | grep CapEff'] });
  spec.linux?.namespaces?.push({ type: 'user' });
  if (spec.linux !== undefined) {
    spec.linux.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
    spec.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
  }
  const ours = await runOurs(fx, id, spec);
  t.is(ours.code, 0, ours.out);
  const lines = ours.out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).join(' '));
  t.deepEqual(lines.slice(0, 3), ['0 200000 65536', '0 200000 65536', '0']);
});

test("a cgroup namespace is rooted at the container's cgroup", async (t) => {
  const fx = await fixture(t);
  const id = fx.newId();
  const spec = fx.specFor(id, { args: ['cat', '/proc/self/cgroup'] });
  spec.linux?.namespaces?.push({ type: 'cgroup' });
  const ours = await runOurs(fx, id, spec);
  t.is(ours.code, 0, ours.out);
  // Every hierarchy the container joined shows as "/" from inside.
  const memory = ours.out.split('\n').find((l) => /:memory:/.test(l));
  t.is(memory?.split(':')[2], '/', ours.out);
});

test('bad security input: a clear error naming the field, and nothing left behind', async (t) => {
  const fx = await fixture(t);
  const cases: Array<[string, (spec: OciSpec) => void, RegExp]> = [
    [
      'unknown capability',
      (s) => {
        s.process.capabilities = { bounding: ['CAP_FLY'] };
      },
      /process\.capabilities\.bounding\.0: unknown capability 'CAP_FLY'/,
    ],
    [
      'bad seccomp action',
      (s) => {
        if (s.linux?.seccomp !== undefined) (s.linux.seccomp as { defaultAction: string }).defaultAction = 'SCMP_ACT_EXPLODE';
      },
      /linux\.seccomp\.defaultAction: must be one of/,
    ],
    [
      'non-namespaced sysctl',
      (s) => {
        if (s.linux !== undefined) s.linux.sysctl = { 'vm.drop_caches': '3' };
      },
      /linux\.sysctl\.vm\.drop_caches: 'vm\.drop_caches' is not namespaced/,
    ],
    [
      'apparmor',
      (s) => {
        s.process.apparmorProfile = 'docker-default';
      },
      /process\.apparmorProfile: AppArmor is not supported/,
    ],
    [
      'unknown rlimit',
      (s) => {
        s.process.rlimits = [{ type: 'RLIMIT_FOO', soft: 1, hard: 1 }];
      },
      /process\.rlimits\.0\.type: unknown rlimit type 'RLIMIT_FOO'/,
    ],
    [
      'missing netns path',
      (s) => {
        s.linux?.namespaces?.splice(1, 1, { type: 'network', path: '/nonexistent/ns' });
      },
      /path \/nonexistent\/ns: ENOENT/,
    ],
  ];
  for (const [name, mutate, message] of cases) {
    const id = fx.newId();
    const spec = fx.specFor(id, { args: ['true'] });
    mutate(spec);
    const bundle = await fx.writeBundle(id, spec);
    const err = await t.throwsAsync(fx.runtime.create(id, bundle, { logPath: fx.logPath(id) }), undefined, name);
    t.regex(err.message, message, name);
    t.is(await fx.runtime.state(id), undefined, `${name}: no state`);
  }
  t.deepEqual(await fx.leftoverCgroups(), []);
  t.deepEqual(await fx.leftoverMounts(), []);
});

test('mount propagation: an rslave bind sees a host mount made after start, an rprivate one does not', async (t) => {
  const fx = await fixture(t);
  const { mount, umount } = await import('../../agent/runtime/native.js');
  // A shared mount of the test's own (the host's / is private here and is left alone).
  const src = path.join(fx.dir, 'shared-src');
  await fs.mkdir(path.join(src, 'sub'), { recursive: true });
  mount(src, src, '', ['bind'], '');
  t.teardown(() => {
    for (const p of [path.join(src, 'sub'), src]) {
      try {
        umount(p, true);
      } catch {
        // already gone
      }
    }
  });
  mount('', src, '', ['shared'], '');
  const script = 'for i in $(seq 25); do [ -e /mnt/sub/marker ] && { echo seen; exit 0; }; sleep 0.1; done; echo unseen';
  const ids: string[] = [];
  for (const propagation of ['rslave', 'rprivate']) {
    const id = fx.newId();
    const spec = fx.specFor(id, { args: ['sh', '-c', script] });
    spec.mounts?.push({ destination: '/mnt', type: 'bind', source: src, options: ['rbind', propagation] });
    if (spec.linux !== undefined) spec.linux.rootfsPropagation = propagation;
    await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
    const bundle = await fx.writeBundle(id, spec);
    fx.track(id);
    await fx.runtime.create(id, bundle, { logPath: fx.logPath(id) });
    await fx.runtime.start(id);
    ids.push(id);
  }
  mount('tmpfs', path.join(src, 'sub'), 'tmpfs', [], 'size=64k');
  await fs.writeFile(path.join(src, 'sub', 'marker'), 'x');
  const logs: string[] = [];
  for (const id of ids) {
    await withTimeout(fx.runtime.wait(id), 20_000);
    logs.push((await fs.readFile(fx.logPath(id), 'utf8')).trim());
    await fx.runtime.delete(id);
  }
  t.deepEqual(logs, ['seen', 'unseen']);
});

test('seccomp without no_new_privs is loaded before the capabilities are dropped; domainname is set', async (t) => {
  const fx = await fixture(t);
  const probe = `${STATUS_PROBE}; cat /proc/sys/kernel/domainname`;
  const specs: OciSpec[] = [];
  const ids = [fx.newId(), fx.newId()];
  for (const id of ids) {
    const spec = fx.specFor(id, { args: ['sh', '-c', probe], uid: 1000, gid: 1000 });
    spec.process.noNewPrivileges = false;
    spec.domainname = 'example.test';
    specs.push(spec);
  }
  const [oursId, runcId] = ids as [string, string];
  const [oursSpec, runcSpec] = specs as [OciSpec, OciSpec];
  const ours = await runOurs(fx, oursId, oursSpec);
  const runc = await runRunc(fx, runcId, runcSpec);
  t.is(ours.code, 0, ours.out);
  t.regex(ours.out, /NoNewPrivs:\s+0/);
  t.regex(ours.out, /Seccomp:\s+2/);
  t.regex(ours.out, /example\.test/);
  // runc 1.1.5 (Debian) leaves the spec's domainname unset ("(none)"); compare the rest.
  t.deepEqual(ours.out.trim().split('\n').slice(0, -1), runc.out.trim().split('\n').slice(0, -1));
});

test("a process exec'd into a container gets the init's capabilities, no_new_privs, seccomp and rlimits", async (t) => {
  const fx = await fixture(t);
  const probe = `${STATUS_PROBE}; ulimit -n`;
  const id = await fx.create({ args: ['sh', '-c', `${probe}; sleep 30`], uid: 1000, gid: 1000, rlimits: [{ type: 'RLIMIT_NOFILE', soft: 77, hard: 77 }] });
  await fx.runtime.start(id);
  let initOut = '';
  for (let i = 0; i < 50 && !initOut.includes('\n77'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    initOut = await fs.readFile(fx.logPath(id), 'utf8').catch(() => '');
  }
  const ran = await execCollect(await fx.runtime.exec(id, { args: ['sh', '-c', probe] }));
  t.is(ran.stdout.trim(), initOut.trim());
  t.regex(ran.stdout, /Seccomp:\s+2/);
  t.regex(ran.stdout, /NoNewPrivs:\s+1/);
});
