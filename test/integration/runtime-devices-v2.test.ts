// The device allow-list on cgroup v2 (a BPF_CGROUP_DEVICE program built by
// agent/runtime/cgroups/device-bpf.ts, attached by the v2 driver through the addon), against real
// containers and the real kernel. What is asserted depends on the host, and each test logs its case:
// - pure v2 (Debian 12's default): the runtime drives cgroup2 itself; its driver attaches the
//   program to the container's directory at create, before the init runs.
// - hybrid (v1 controllers plus a cgroup2 mount, as this machine kind): the runtime drives v1, so
//   here the container's v1 device list is opened up to every device (the spec allows "a"), and its
//   init is moved, before it runs, into a cgroup the v2 driver creates on the unified mount with the
//   rules under test. The program is then the only thing between the container and the devices.
// - no cgroup2 mount: nothing to attach to; the v1 devices controller must refuse the same probes.
// In every case a control container whose v2 rules allow everything must reach the same devices
// (read a block device, open /dev/kmsg and /dev/net/tun), so a refusal is the program's doing and
// not, say, a nodev mount; and the refusals must be EPERM, which is what a cgroup device program
// answers. The block device of the control is one the host itself can open: on some machines (this
// one included) even the host's root cannot open its own disk, which refuses with EPERM whatever the
// container's cgroup says; the disk is still probed, and the loop devices serve as the control.

import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import { deviceProgramFor, encodeProgram, type DeviceRule } from '../../agent/runtime/cgroups/device-bpf.js';
import type { CgroupRecord } from '../../agent/runtime/cgroups/driver.js';
import { CgroupsV2 } from '../../agent/runtime/cgroups/v2.js';
import { attachDeviceFilter } from '../../agent/runtime/native.js';
import type { LinuxResources } from '../../agent/runtime/types.js';
import { hostCgroups, type HostCgroups } from '../helpers/host-cgroups.js';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';

const ALLOW_ALL: DeviceRule[] = [{ allow: true, type: 'a', access: 'rwm' }];
const EPERM = /Operation not permitted/;

interface Device {
  type: 'b' | 'c';
  major: number;
  minor: number;
}

const decode = (dev: bigint) => ({
  major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)),
  minor: Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n)),
});

/** The whole disk holding / (its name varies: vda, sda, nvme0n1), found through /sys/dev/block. */
async function hostDisk(): Promise<Device> {
  const { major, minor } = decode((await fs.stat('/', { bigint: true })).dev);
  const real = await fs.realpath(`/sys/dev/block/${major}:${minor}`).catch(() => undefined);
  if (real !== undefined) {
    const isPartition = await fs.access(path.join(real, 'partition')).then(
      () => true,
      () => false,
    );
    const text = isPartition ? await fs.readFile(path.join(path.dirname(real), 'dev'), 'utf8') : `${major}:${minor}`;
    const [maj, min] = text.trim().split(':').map(Number);
    if (maj !== undefined && min !== undefined) return { type: 'b', major: maj, minor: min };
  }
  // / on no block device (overlay, tmpfs root): the first disk in /proc/partitions.
  const first = (await fs.readFile('/proc/partitions', 'utf8')).split('\n').slice(2)[0]?.trim().split(/\s+/);
  if (first?.[0] === undefined || first[1] === undefined) throw new Error('no block device in /proc/partitions: nothing to probe');
  return { type: 'b', major: Number(first[0]), minor: Number(first[1]) };
}

/** The first of `paths` that this (root) process can open for reading, as a device; undefined when none can. */
async function openableByHost(paths: string[]): Promise<HostDevice | undefined> {
  for (const p of paths) {
    const st = await fs.stat(p, { bigint: true }).catch(() => undefined);
    if (st === undefined || !(st.isBlockDevice() || st.isCharacterDevice())) continue;
    const handle = await fs.open(p, 'r').catch(() => undefined);
    if (handle === undefined) continue;
    await handle.close();
    return { type: st.isBlockDevice() ? 'b' : 'c', ...decode(st.rdev), path: p };
  }
  return undefined;
}

/** A block device the host can open: its root disk if it may, else another (a loop device). */
async function openableBlockDevice(disk: Device): Promise<HostDevice | undefined> {
  const names = await fs.readdir('/sys/block').catch(() => [] as string[]);
  const diskName = (await fs.realpath(`/sys/dev/block/${disk.major}:${disk.minor}`).catch(() => '')).split('/').pop() ?? '';
  return openableByHost([diskName, ...names.filter((n) => n !== diskName)].filter((n) => n !== '').map((n) => `/dev/${n}`));
}

type HostDevice = Device & { path: string };

interface Targets {
  disk: Device;
  block: HostDevice | undefined;
  tun: HostDevice | undefined;
}

/**
 * Each probe runs in its own shell and prints "name=<exit code> <its error output>". Nothing is ever
 * written to a device other than /dev/null: the disk, the block device and /dev/kmsg are only opened
 * (">>" opens O_WRONLY|O_APPEND, "<>" O_RDWR; neither writes a byte), and read with dd.
 */
function probeScript({ disk, block, tun }: Targets): string {
  const node = (name: string, d: Device) => `busybox mknod /dev/${name} ${d.type} ${d.major} ${d.minor}`;
  const probes: Array<[string, string]> = [
    ['mknod_disk', node('escape-disk', disk)],
    ['read_disk', 'busybox dd if=/dev/escape-disk of=/dev/null bs=512 count=1'],
    ['open_disk_w', 'exec 3>>/dev/escape-disk'],
    ['open_disk_rw', 'exec 3<>/dev/escape-disk'],
    // Write-only: opening /dev/kmsg for reading also needs CAP_SYSLOG (dmesg_restrict), which would hide the cgroup's answer.
    ['mknod_kmsg', node('escape-kmsg', { type: 'c', major: 1, minor: 11 })],
    ['open_kmsg_w', 'exec 3>>/dev/escape-kmsg'],
    ['null', 'echo x > /dev/null'],
    ['zero', 'busybox dd if=/dev/zero of=/dev/null bs=4 count=1'],
    ['urandom', 'busybox dd if=/dev/urandom of=/dev/null bs=4 count=1'],
    // No controlling terminal: ENXIO from the tty driver, reached only if the cgroup let the open through.
    ['tty', 'exec 3<>/dev/tty'],
  ];
  if (block !== undefined)
    probes.push(['mknod_block', node('escape-block', block)], ['read_block', 'busybox dd if=/dev/escape-block of=/dev/null bs=512 count=1']);
  if (tun !== undefined) probes.push(['mknod_tun', node('escape-tun', tun)], ['open_tun', 'exec 3<>/dev/escape-tun']);
  const run = 'probe() { out=$(sh -c "$2" 2>&1); rc=$?; echo "$1=$rc $(echo $out)"; }';
  return [run, ...probes.map(([name, cmd]) => `probe ${name} '${cmd}'`)].join('\n');
}

interface Outcome {
  code: number;
  message: string;
}

function parseProbes(log: string): Map<string, Outcome> {
  const results = new Map<string, Outcome>();
  for (const line of log.split('\n')) {
    const m = /^([a-z_]+)=(\d+) ?(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) results.set(m[1], { code: Number(m[2]), message: m[3] ?? '' });
  }
  return results;
}

type Case = { kind: 'v2'; root: string } | { kind: 'hybrid'; root: string } | { kind: 'v1' };

function caseOf(host: HostCgroups): Case {
  if (host.mode === 'v2' && host.v2Root !== undefined) return { kind: 'v2', root: host.v2Root };
  if (host.mode === 'hybrid' && host.v2Root !== undefined) return { kind: 'hybrid', root: host.v2Root };
  return { kind: 'v1' };
}

async function fixture(t: ExecutionContext): Promise<RuntimeFixture> {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  return fx;
}

/**
 * Runs the probes in a container whose devices are decided by `rules` (undefined: the spec's
 * default, i.e. deny all plus the default set) on cgroup v2, or, with no cgroup2 mount, by v1.
 */
async function runProbes(
  fx: RuntimeFixture,
  where: Case,
  script: string,
  rules: DeviceRule[] | undefined,
): Promise<{ results: Map<string, Outcome>; log: string }> {
  const id = fx.newId();
  const spec = fx.specFor(id, { args: ['sh', '-c', script] });
  const resources: LinuxResources = { ...spec.linux?.resources };
  // Hybrid: v1 lets everything through, so what is refused is refused by the v2 program.
  const specRules = where.kind === 'hybrid' ? ALLOW_ALL : rules;
  if (specRules !== undefined) resources.devices = specRules;
  spec.linux = { ...spec.linux, resources };
  const bundle = await fx.writeBundle(id, spec);
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  fx.track(id);
  await fx.runtime.create(id, bundle, { logPath: fx.logPath(id) });
  let v2: { driver: CgroupsV2; record: CgroupRecord } | undefined;
  try {
    if (where.kind === 'hybrid') {
      const pid = (await fx.runtime.state(id))?.pid;
      if (pid === undefined) throw new Error(`container ${id} has no init pid`);
      // Under the fixture's parent, so its clean-up finds it even if this test fails half-way.
      const driver = new CgroupsV2(where.root);
      const record = await driver.create(`${fx.cgroupParent}/${id}`, rules === undefined ? {} : { devices: rules });
      v2 = { driver, record };
      // The init is blocked before execve: everything the container runs is under the program.
      await fs.writeFile(driver.procsFiles(record)[0] ?? '', String(pid));
    }
    await fx.runtime.start(id);
    await withTimeout(fx.runtime.wait(id), 20_000);
    const log = await fs.readFile(fx.logPath(id), 'utf8');
    await fx.runtime.delete(id);
    return { results: parseProbes(log), log };
  } finally {
    if (v2 !== undefined) {
      const { driver, record } = v2;
      // On failure the container may still run: kill it first (an error here only means it is gone).
      await fx.runtime.kill(id, 'SIGKILL').catch(() => undefined);
      // Deliberately not thrown: a cgroup left behind fails the test's own leak check (fx.cleanup()).
      await driver.remove(record).catch(() => undefined);
    }
  }
}

test('escapes through device nodes fail on cgroup v2; the default nodes keep working', async (t) => {
  const where = caseOf(await hostCgroups());
  const fx = await fixture(t);
  const disk = await hostDisk();
  const targets: Targets = { disk, block: await openableBlockDevice(disk), tun: await openableByHost(['/dev/net/tun']) };
  const script = probeScript(targets);
  t.log(
    {
      v2: 'case: pure cgroup v2: the runtime attaches the program itself',
      hybrid: 'case: hybrid: v1 allows every device; the program on the unified mount must refuse',
      v1: 'case: no cgroup2 mount: no program can be attached; the v1 devices controller must refuse instead',
    }[where.kind],
  );
  t.log(
    `host disk b ${disk.major}:${disk.minor};`,
    targets.block === undefined
      ? 'no block device the host itself can open: block devices are checked for refusal only'
      : `control block device ${targets.block.path} (b ${targets.block.major}:${targets.block.minor})`,
    targets.tun === undefined ? '; no /dev/net/tun' : '; /dev/net/tun',
  );

  const guarded = await runProbes(fx, where, script, undefined);
  const r = guarded.results;
  const ctx = guarded.log;
  const refused = ['read_disk', 'open_disk_w', 'open_disk_rw', 'open_kmsg_w'];
  const made = ['mknod_disk', 'mknod_kmsg'];
  if (targets.block !== undefined) {
    refused.push('read_block');
    made.push('mknod_block');
  }
  if (targets.tun !== undefined) {
    refused.push('open_tun');
    made.push('mknod_tun');
  }
  for (const name of made) t.is(r.get(name)?.code, 0, `${name}: mknod stays allowed (CAP_MKNOD, "b *:* m", "c *:* m"): ${ctx}`);
  for (const name of refused) {
    t.not(r.get(name)?.code, 0, `${name} must fail: ${ctx}`);
    t.regex(r.get(name)?.message ?? '', EPERM, `${name} is refused by the device cgroup: ${ctx}`);
  }
  for (const name of ['null', 'zero', 'urandom']) t.is(r.get(name)?.code, 0, `${name}: ${ctx}`);
  t.regex(r.get('tty')?.message ?? '', /No such device or address/, `/dev/tty reaches its driver: ${ctx}`);

  // The control: the same probes with every device allowed reach the devices.
  const open = await runProbes(fx, where, script, ALLOW_ALL);
  const o = open.results;
  t.is(o.get('open_kmsg_w')?.code, 0, `with every device allowed /dev/kmsg opens: ${open.log}`);
  if (targets.block !== undefined) t.is(o.get('read_block')?.code, 0, `with every device allowed the block device reads: ${open.log}`);
  if (targets.tun !== undefined) t.is(o.get('open_tun')?.code, 0, open.log);
  for (const name of ['null', 'zero', 'urandom']) t.is(o.get(name)?.code, 0, `${name}: ${open.log}`);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] }, 'no container, cgroup or mount is left');
});

test('a spec rule is enforced by the program: a listed device opens read-only, and only that device', async (t) => {
  const where = caseOf(await hostCgroups());
  const fx = await fixture(t);
  // A device the host can open, so that a refusal can only come from the rules.
  const listed = (await openableBlockDevice(await hostDisk())) ?? (await openableByHost(['/dev/net/tun']));
  if (listed === undefined) throw new Error('neither a block device nor /dev/net/tun opens on this host: nothing to probe');
  const rules: DeviceRule[] = [{ allow: true, type: listed.type, major: listed.major, minor: listed.minor, access: 'r' }];
  const script = [
    `busybox mknod /dev/listed ${listed.type} ${listed.major} ${listed.minor}`,
    `busybox mknod /dev/other ${listed.type} ${listed.major} ${listed.minor + 1}`,
    'out=$(sh -c "exec 3</dev/listed" 2>&1); echo "read_listed=$? $(echo $out)"',
    'out=$(sh -c "exec 3>>/dev/listed" 2>&1); echo "write_listed=$? $(echo $out)"',
    'out=$(sh -c "exec 3</dev/other" 2>&1); echo "read_other=$? $(echo $out)"',
  ].join('\n');
  t.log(`case: ${where.kind}; rule "${listed.type} ${listed.major}:${listed.minor} r" (${listed.path})`);
  const { results, log } = await runProbes(fx, where, script, rules);
  t.is(results.get('read_listed')?.code, 0, log);
  t.regex(results.get('write_listed')?.message ?? '', EPERM, `write is not in the rule: ${log}`);
  // The next minor may have no driver (ENXIO) or be a partition; either way the cgroup refuses first.
  t.regex(results.get('read_other')?.message ?? '', EPERM, log);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test("the runtime's own device control (v1 devices controller on a hybrid or v1 host, the program on pure v2): escapes fail, and a device given to another container stays out of reach", async (t) => {
  const host = caseOf(await hostCgroups());
  // On a hybrid host the runtime drives v1: without the moves of the tests above, v1 is what answers.
  const own: Case = host.kind === 'hybrid' ? { kind: 'v1' } : host;
  t.log(own.kind === 'v1' ? 'case: the runtime drives the v1 devices controller' : 'case: pure v2: the runtime attaches the program');
  const fx = await fixture(t);
  const disk = await hostDisk();
  const targets: Targets = { disk, block: await openableBlockDevice(disk), tun: await openableByHost(['/dev/net/tun']) };
  const escapes = await runProbes(fx, own, probeScript(targets), undefined);
  const refused = ['read_disk', 'open_disk_w', 'open_disk_rw', 'open_kmsg_w', ...(targets.block ? ['read_block'] : []), ...(targets.tun ? ['open_tun'] : [])];
  for (const name of refused) t.regex(escapes.results.get(name)?.message ?? '', EPERM, `${name} is refused by the device cgroup: ${escapes.log}`);
  for (const name of ['null', 'zero', 'urandom']) t.is(escapes.results.get(name)?.code, 0, `${name}: ${escapes.log}`);

  // Container B is given a device; container A, with the default list, cannot reach it.
  const given = targets.block ?? targets.tun;
  if (given === undefined) throw new Error('neither a block device nor /dev/net/tun opens on this host: nothing to give a container');
  const defaults = fx.specFor('defaults', { args: ['true'] }).linux?.resources?.devices ?? [];
  const script = [
    `busybox mknod /dev/given ${given.type} ${given.major} ${given.minor}`,
    'out=$(sh -c "exec 3</dev/given" 2>&1); echo "open_given=$? $(echo $out)"',
  ].join('\n');
  const holder = await runProbes(fx, own, script, [...defaults, { allow: true, type: given.type, major: given.major, minor: given.minor, access: 'rwm' }]);
  t.is(holder.results.get('open_given')?.code, 0, `the container given ${given.path} opens it: ${holder.log}`);
  const other = await runProbes(fx, own, script, undefined);
  t.regex(other.results.get('open_given')?.message ?? '', EPERM, `another container cannot open ${given.path}: ${other.log}`);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] }, 'no container, cgroup or mount is left');
});

test('the kernel verifier accepts the programs the generator makes; the addon reports errno and the verifier log', async (t) => {
  const host = await hostCgroups();
  if (host.v2Root === undefined) {
    t.log('case: no cgroup2 mount: a device program has nowhere to attach; attaching to a plain directory must fail');
    t.throws(() => attachDeviceFilter('/tmp', encodeProgram(deviceProgramFor(undefined))), { code: 'EBADF' });
    return;
  }
  const root = host.v2Root;
  const parent = path.join(root, `tessera-test-devbpf-${process.pid}`);
  await fs.mkdir(parent);
  t.teardown(async () => {
    for (const e of await fs.readdir(parent, { withFileTypes: true }).catch(() => []))
      if (e.isDirectory()) await fs.rmdir(path.join(parent, e.name)).catch(() => undefined);
    await fs.rmdir(parent).catch(() => undefined);
  });
  const big: DeviceRule[] = Array.from({ length: 300 }, (_, i) => ({ allow: i % 3 !== 0, type: i % 2 === 0 ? 'c' : 'b', major: i, minor: -1, access: 'rw' }));
  const shapes: Record<string, DeviceRule[] | undefined> = {
    'the default set': undefined,
    'allow all ("a" last: a jump to the very next instruction)': ALLOW_ALL,
    'deny all after allow all': [...ALLOW_ALL, { allow: false }],
    'a hole in a wildcard': [
      { allow: true, type: 'c' },
      { allow: false, type: 'c', major: 1, minor: 11 },
    ],
    'numbers above 2^31': [{ allow: true, type: 'c', major: 0xffff_ffff, minor: 0x8000_0000, access: 'w' }],
    '300 rules': big,
  };
  let n = 0;
  for (const [name, rules] of Object.entries(shapes)) {
    const dir = path.join(parent, `p${n++}`);
    await fs.mkdir(dir);
    const program = deviceProgramFor(rules);
    t.notThrows(() => attachDeviceFilter(dir, encodeProgram(program)), `${name} (${program.length} instructions)`);
    await fs.rmdir(dir);
  }
  const bad = new Int32Array([0xb7, 0, 0, 0, 1]); // r0 = 1, with no exit
  const error = t.throws<Error & { code?: string; verifierLog?: string }>(() => attachDeviceFilter(parent, bad));
  t.is(error.code, 'EINVAL');
  t.regex(error.verifierLog ?? '', /last insn is not an exit or jmp/);
  t.regex(error.message, /^BPF_PROG_LOAD of the device program \(1 instructions\): Invalid argument \(EINVAL\); verifier log:\n/);
  t.throws(() => attachDeviceFilter('/tmp', encodeProgram(deviceProgramFor(undefined))), {
    code: 'EBADF',
    message: /^BPF_PROG_ATTACH \(BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI\) to \/tmp: Bad file descriptor/,
  });
  t.throws(() => attachDeviceFilter(path.join(parent, 'missing'), bad), { code: 'ENOENT', message: /^open cgroup directory / });
  t.throws(() => attachDeviceFilter(parent, new Int32Array([0x95, 0, 0, 0])), { message: /5 integers per instruction/ });
  t.throws(() => attachDeviceFilter(parent, new Int32Array([0x95, 11, 0, 0, 0])), { message: /instruction 0 is malformed/ });
});
