// Escape attempts that must fail inside a container with the default spec (Docker's capability
// set, the default seccomp profile, masked and read-only paths, pids limit), while the test
// process stays unharmed.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';
import { controllerDir } from '../helpers/host-cgroups.js';

const run = promisify(execFile);

async function fixture(t: ExecutionContext): Promise<RuntimeFixture> {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  return fx;
}

/** Runs `script` in a default container as root; each probe prints "<name>=<exit code>". */
async function probe(fx: RuntimeFixture, script: string): Promise<Map<string, string>> {
  const r = await fx.run({ args: ['sh', '-c', script] });
  const results = new Map<string, string>();
  for (const line of r.log.split('\n')) {
    const m = /^([a-z_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) results.set(m[1], m[2]);
  }
  return results;
}

test('mount, unshare, setns and module loading are refused', async (t) => {
  const fx = await fixture(t);
  const results = await probe(
    fx,
    [
      'mount -t tmpfs none /tmp 2>&1; echo "mount=$?"',
      'busybox unshare -n true 2>&1; echo "unshare_net=$?"',
      'busybox unshare -U true 2>&1; echo "unshare_user=$?"',
      'busybox nsenter -t 1 -n true 2>&1; echo "nsenter=$?"',
      'busybox chroot / true; echo "chroot=$?"', // CAP_SYS_CHROOT is in the default set: allowed
      'head -c 64 /dev/zero > /tmp/m.ko; busybox insmod /tmp/m.ko 2>&1; echo "insmod=$?"',
    ].join('; '),
  );
  t.not(results.get('mount'), '0');
  t.not(results.get('unshare_net'), '0');
  t.not(results.get('unshare_user'), '0');
  t.not(results.get('nsenter'), '0');
  t.is(results.get('chroot'), '0');
  t.not(results.get('insmod'), '0');
  // The kernel is never asked: the refusal is EPERM from seccomp/capabilities, not a parse error.
  const r = await fx.run({ args: ['sh', '-c', 'head -c 64 /dev/zero > /tmp/m.ko; busybox insmod /tmp/m.ko'] });
  t.regex(r.log, /Operation not permitted/);
});

test('/proc/sys and /sys are read-only, /proc/kcore is empty, host processes are invisible', async (t) => {
  const fx = await fixture(t);
  const results = await probe(
    fx,
    [
      'echo 1 > /proc/sys/vm/drop_caches; echo "drop_caches=$?"',
      'echo evil > /proc/sys/kernel/core_pattern; echo "core_pattern=$?"',
      'echo 1 > /sys/kernel/mm/ksm/run; echo "sys_write=$?"',
      'touch /sys/x; echo "sys_create=$?"',
      // This kernel has no /proc/kcore; where it exists it is masked. Either way nothing is read.
      'echo "kcore=$(cat /proc/kcore 2>/dev/null | wc -c)"',
      'echo "keys=$(cat /proc/keys | wc -c)"',
      'echo "timer_list=$(cat /proc/timer_list | wc -c)"',
      'echo "procs=$(ls /proc | grep -cE "^[0-9]+$")"',
      'echo c > /proc/sysrq-trigger; echo "sysrq=$?"',
    ].join('; '),
  );
  t.not(results.get('drop_caches'), '0');
  t.not(results.get('core_pattern'), '0');
  t.not(results.get('sys_write'), '0');
  t.not(results.get('sys_create'), '0');
  t.is(results.get('kcore'), '0');
  t.is(results.get('keys'), '0');
  t.is(results.get('timer_list'), '0');
  t.not(results.get('sysrq'), '0');
  // sh, the subshell running ls, and grep at most.
  t.true(Number(results.get('procs')) <= 4, `saw ${results.get('procs')} processes`);
  t.not((await fs.readFile('/proc/sys/kernel/core_pattern', 'utf8')).trim(), 'evil');
});

test('host block devices cannot be reached, even after mknod', async (t) => {
  const fx = await fixture(t);
  // A block device of this machine, by major:minor (its name varies: vda, sda, nvme0n1).
  const disks = (await fs.readdir('/sys/dev/block').catch(() => [] as string[])).filter((d) => /^\d+:\d+$/.test(d));
  const disk = disks[0];
  // Every Debian machine this runs on has a disk; none would mean nothing here is checked.
  if (disk === undefined) throw new Error('no block device in /sys/dev/block: this test has nothing to probe');
  const [major, minor] = disk.split(':');
  const results = await probe(
    fx,
    [
      `busybox mknod /tmp/disk b ${major} ${minor}; echo "mknod=$?"`,
      'head -c 512 /tmp/disk > /dev/null; echo "read=$?"',
      'ls /dev | tr "\\n" " " | sed "s/^/dev=/"; echo',
    ].join('; '),
  );
  // mknod itself is allowed (CAP_MKNOD, Docker's default); opening the node is what is refused.
  t.not(results.get('read'), '0');
  for (const name of (results.get('dev') ?? '').split(' ').filter((n) => n !== '')) {
    t.true(
      ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'mqueue', 'fd', 'stdin', 'stdout', 'stderr', 'ptmx', 'console'].includes(name),
      `unexpected /dev/${name}`,
    );
  }
});

test('a fork bomb stops at the pids limit; the test process is unharmed', async (t) => {
  const fx = await fixture(t);
  const id = await fx.create({ args: ['sh', '-c', 'b() { b | b & }; b; sleep 30'], pidsLimit: 32 });
  await fx.runtime.start(id);
  const eventsFile = path.join(await controllerDir('pids', fx.cgroupPathOf(id)), 'pids.events');
  const currentFile = path.join(await controllerDir('pids', fx.cgroupPathOf(id)), 'pids.current');
  let refused = 0;
  for (let i = 0; i < 50 && refused === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const events = await fs.readFile(eventsFile, 'utf8').catch(() => 'max 0');
    refused = Number(/max (\d+)/.exec(events)?.[1] ?? '0');
  }
  t.true(refused > 0, 'forks were refused at the limit');
  t.true(Number((await fs.readFile(currentFile, 'utf8')).trim()) <= 32);
  // The host (and this test process) can still fork.
  const { stdout } = await run('/bin/sh', ['-c', 'echo alive']);
  t.is(stdout.trim(), 'alive');
  await fx.runtime.kill(id, 'SIGKILL');
  const exit = await withTimeout(fx.runtime.wait(id), 10_000);
  t.is(exit.signal, 'SIGKILL');
});
