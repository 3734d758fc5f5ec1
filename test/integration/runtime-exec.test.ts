// exec into a running container: namespaces, cgroup and identity of the container, with pipes
// and with a TTY, exit codes, and failures that leave no process behind.

import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execCollect } from '../../agent/runtime/exec.js';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';
import { controllerDir } from '../helpers/host-cgroups.js';

async function runningContainer(t: ExecutionContext): Promise<{ fx: RuntimeFixture; id: string; pid: number }> {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const id = await fx.create({ args: ['sleep', '60'], hostname: 'exec-box', uid: 1000, gid: 1000, env: ['PATH=/bin:/sbin:/usr/bin', 'FROM=container'] });
  await fx.runtime.start(id);
  const state = await fx.runtime.state(id);
  if (state === undefined) throw new Error('container vanished');
  return { fx, id, pid: state.pid };
}

async function finish(t: ExecutionContext, fx: RuntimeFixture, id: string): Promise<void> {
  await fx.runtime.kill(id, 'SIGKILL');
  await withTimeout(fx.runtime.wait(id), 5000);
  await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
}

test('exec without a TTY joins every namespace and the cgroup, with the container identity', async (t) => {
  const { fx, id, pid } = await runningContainer(t);
  const script =
    'hostname; id -u; id -g; echo "$FROM"; pwd; cat /proc/self/cgroup | grep memory; ls /sys/class/net | tr "\\n" " "; echo; ps -o pid,comm | grep -c sleep; read line; echo "got $line"; exit 5';
  const ran = await execCollect(await fx.runtime.exec(id, { args: ['sh', '-c', script] }), 'hello\n');
  t.is(ran.exit.exitCode, 5, ran.stderr);
  const lines = ran.stdout.trim().split('\n');
  t.is(lines[0], 'exec-box');
  t.deepEqual(lines.slice(1, 4), ['1000', '1000', 'container']);
  t.is(lines[4], '/');
  t.true(lines[5]?.endsWith(`/${fx.cgroupPathOf(id)}`) || lines[5]?.endsWith(':/'), `cgroup line: ${lines[5]}`);
  t.is(lines[6]?.trim(), 'lo', 'only the container network namespace links');
  t.is(lines[7], '1', 'sees the container sleep (same pid namespace)');
  t.is(lines[8], 'got hello');
  // The exec'd process is in the container's cgroup on the host side too.
  const procs = await fs.readFile(path.join(await controllerDir('memory', fx.cgroupPathOf(id)), 'cgroup.procs'), 'utf8');
  t.true(procs.split('\n').includes(String(pid)));
  await finish(t, fx, id);
});

test('exec with env, cwd and user overrides', async (t) => {
  const { fx, id } = await runningContainer(t);
  const ran = await execCollect(
    await fx.runtime.exec(id, { args: ['sh', '-c', 'echo "$X"; pwd; id -u'], env: ['X=override', 'PATH=/bin'], cwd: '/tmp', user: { uid: 0, gid: 0 } }),
  );
  t.deepEqual(ran.stdout.trim().split('\n'), ['override', '/tmp', '0']);
  await finish(t, fx, id);
});

test('exec with a TTY gets a terminal from the container devpts', async (t) => {
  const { fx, id } = await runningContainer(t);
  const proc = await fx.runtime.exec(id, {
    args: ['sh', '-c', 'tty; test -t 0 && test -t 1 && echo both-terminals; read x; echo "typed $x"; exit 9'],
    tty: true,
  });
  t.is(proc.stderr, undefined);
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stdin.write('abc\n');
  const exit = await withTimeout(proc.exit, 10_000);
  await new Promise((r) => setTimeout(r, 100));
  t.is(exit.exitCode, 9, out);
  t.regex(out, /^\/dev\/pts\/\d+\r$/m);
  t.regex(out, /both-terminals/);
  t.regex(out, /typed abc/);
  (proc.stdout as unknown as { destroy(): void }).destroy();
  await finish(t, fx, id);
});

test('exec of a missing program fails clearly and leaves no process; exec into a stopped container is refused', async (t) => {
  const { fx, id } = await runningContainer(t);
  const procsFile = path.join(await controllerDir('pids', fx.cgroupPathOf(id)), 'cgroup.procs');
  const before = await fs.readFile(procsFile, 'utf8');
  const err = await t.throwsAsync(fx.runtime.exec(id, { args: ['/no/such/program'] }));
  t.regex(err.message, /find executable.*ENOENT/);
  t.is(await fs.readFile(procsFile, 'utf8'), before, 'no process left in the container');
  await t.throwsAsync(fx.runtime.exec(id, { args: [''] }), { message: /args\[0\]/ });
  await t.throwsAsync(fx.runtime.exec(id, { args: ['true'], cwd: 'relative' }), { message: /cwd must be absolute/ });
  await fx.runtime.kill(id, 'SIGKILL');
  await withTimeout(fx.runtime.wait(id), 5000);
  await t.throwsAsync(fx.runtime.exec(id, { args: ['true'] }), { message: /stopped, not running/ });
  await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});
