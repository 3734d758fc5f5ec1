// The native runtime against real namespaces and cgroups: isolation, process settings, exit codes,
// and failing creates that must leave nothing behind.

import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';

async function fixture(t: ExecutionContext): Promise<RuntimeFixture> {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  return fx;
}

/** Cleans up inside the test so leftovers fail it. */
async function assertNothingLeft(t: ExecutionContext, fx: RuntimeFixture): Promise<void> {
  const left = await fx.cleanup();
  t.deepEqual(left, { cgroups: [], mounts: [] }, 'no cgroup or mount left behind');
}

test('the container process is pid 1 and sees only its own processes', async (t) => {
  const fx = await fixture(t);
  const { exit, log } = await fx.run({ args: ['sh', '-c', 'echo "pid=$$"; sleep 5 & ps -o pid,comm'] });
  t.is(exit.exitCode, 0, log);
  t.regex(log, /^pid=1$/m);
  const pids = log
    .split('\n')
    .slice(2)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => Number(l.split(/\s+/)[0]));
  // pid 1 is the shell, which execs ps as its last command; pid 2 is the background sleep.
  t.deepEqual(
    pids.sort((a, b) => a - b),
    [1, 2],
    `ps saw: ${log}`,
  );
  await assertNothingLeft(t, fx);
});

test('the container has its own hostname, mounts and network namespace', async (t) => {
  const fx = await fixture(t);
  const { exit, log } = await fx.run({
    args: ['sh', '-c', 'hostname; echo ---; cat /proc/self/mountinfo; echo ---; ls /sys/class/net'],
    hostname: 'inside-box',
  });
  t.is(exit.exitCode, 0, log);
  const [hostname, mountinfo, links] = log.split('---\n');
  t.is(hostname?.trim(), 'inside-box');
  const mounts = (mountinfo ?? '')
    .trim()
    .split('\n')
    .map((l) => l.split(' '));
  const mountPoints = mounts.map((f) => f[4]);
  const root = mounts.find((f) => f[4] === '/');
  t.is(root?.[3], fx.rootfs, 'the root mount is the bundle rootfs');
  for (const expected of ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys']) t.true(mountPoints.includes(expected), expected);
  for (const mp of mountPoints) t.false(mp?.startsWith('/work') || mp?.startsWith('/sys/fs/cgroup') || mp?.startsWith(fx.dir), `host mount ${mp} visible`);
  t.deepEqual(links?.trim().split(/\s+/), ['lo'], 'only loopback in a new network namespace');
  t.not(hostname?.trim(), (await fs.readFile('/proc/sys/kernel/hostname', 'utf8')).trim());
  await assertNothingLeft(t, fx);
});

test('env, cwd, uid, gid and supplementary groups are honoured', async (t) => {
  const fx = await fixture(t);
  const { exit, log } = await fx.run({
    args: ['sh', '-c', 'echo "greeting=$GREETING"; pwd; id -u; id -g; id -G; touch /tmp/x && stat -c %u:%g /tmp/x'],
    env: ['GREETING=hello world'],
    cwd: '/home/app',
    uid: 1000,
    gid: 1000,
    additionalGids: [2000],
  });
  t.is(exit.exitCode, 0, log);
  t.deepEqual(log.trim().split('\n'), ['greeting=hello world', '/home/app', '1000', '1000', '1000 2000', '1000:1000']);
  await assertNothingLeft(t, fx);
});

test('masked and read-only paths are in place', async (t) => {
  const fx = await fixture(t);
  const { exit, log } = await fx.run({
    args: ['sh', '-c', 'echo 1 > /proc/sys/kernel/domainname && echo writable || echo readonly; ls /sys/firmware | wc -l'],
  });
  t.is(exit.exitCode, 0, log);
  t.regex(log, /readonly/);
  t.regex(log, /^0$/m, '/sys/firmware is masked by an empty tmpfs');
  await assertNothingLeft(t, fx);
});

test('exit codes are reported', async (t) => {
  const fx = await fixture(t);
  const three = await fx.run({ args: ['sh', '-c', 'exit 3'] });
  t.deepEqual(three.exit, { exitCode: 3, oomKilled: false });
  const ok = await fx.run({ args: ['true'] });
  t.deepEqual(ok.exit, { exitCode: 0, oomKilled: false });
  await assertNothingLeft(t, fx);
});

test('a container killed by SIGKILL reports the signal; state follows its life', async (t) => {
  const fx = await fixture(t);
  const id = await fx.create({ args: ['sleep', '60'] });
  t.is((await fx.runtime.state(id))?.status, 'created');
  await fx.runtime.start(id);
  const state = await fx.runtime.state(id);
  t.is(state?.status, 'running');
  t.true((state?.pid ?? 0) > 1);
  await fx.runtime.kill(id, 'SIGKILL');
  const exit = await withTimeout(fx.runtime.wait(id), 5000);
  t.deepEqual(exit, { exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  t.is((await fx.runtime.state(id))?.status, 'stopped');
  await fx.runtime.kill(id, 'SIGTERM'); // a stopped container: no-op, no error
  await fx.runtime.delete(id);
  t.is(await fx.runtime.state(id), undefined);
  await assertNothingLeft(t, fx);
});

test('SIGTERM reaches a container init that handles it', async (t) => {
  const fx = await fixture(t);
  const id = await fx.create({ args: ['sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done'] });
  await fx.runtime.start(id);
  const deadline = Date.now() + 5000;
  while (!(await fs.readFile(fx.logPath(id), 'utf8')).includes('ready') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await fx.runtime.kill(id, 'SIGTERM');
  const exit = await withTimeout(fx.runtime.wait(id), 5000);
  t.is(exit.exitCode, 7);
  t.regex(await fs.readFile(fx.logPath(id), 'utf8'), /got-term/);
  await fx.runtime.delete(id);
  await assertNothingLeft(t, fx);
});

test('a created container can be killed and deleted without starting', async (t) => {
  const fx = await fixture(t);
  const id = await fx.create({ args: ['sleep', '60'] });
  await t.throwsAsync(fx.runtime.delete(id), { message: /still running/ });
  await fx.runtime.kill(id, 'SIGKILL');
  const exit = await withTimeout(fx.runtime.wait(id), 5000);
  t.is(exit.signal, 'SIGKILL');
  await t.throwsAsync(fx.runtime.start(id), { message: /only a freshly created container can start/ });
  await fx.runtime.delete(id);
  await assertNothingLeft(t, fx);
});

async function assertCreateFails(t: ExecutionContext, fx: RuntimeFixture, id: string, message: RegExp): Promise<void> {
  const bundle = path.join(fx.dir, 'bundles', id);
  const err = await t.throwsAsync(fx.runtime.create(id, bundle, { logPath: fx.logPath(id) }));
  t.regex(err.message, message);
  t.is(await fx.runtime.state(id), undefined, 'no state left');
  t.deepEqual(await fx.leftoverCgroups(), [], 'no cgroup left');
  t.false(
    await fs.stat(path.join(fx.dir, 'state', id)).then(
      () => true,
      () => false,
    ),
    'no state dir left',
  );
}

test('failing creates give a clear error and leave nothing behind', async (t) => {
  const fx = await fixture(t);
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });

  const missingRoot = fx.newId();
  await fx.writeBundle(missingRoot, { ...fx.specFor(missingRoot, { args: ['true'] }), root: { path: '/nonexistent/rootfs' } });
  await assertCreateFails(t, fx, missingRoot, /root\.path \/nonexistent\/rootfs: ENOENT/);

  const badCwd = fx.newId();
  await fx.writeBundle(badCwd, fx.specFor(badCwd, { args: ['true'], cwd: '/no/such/dir' }));
  await assertCreateFails(t, fx, badCwd, /step 'chdir to cwd \/no\/such\/dir'.*ENOENT/);

  const noExe = fx.newId();
  await fx.writeBundle(noExe, fx.specFor(noExe, { args: ['no-such-program', 'x'] }));
  await assertCreateFails(t, fx, noExe, /step 'find executable 'no-such-program''.*ENOENT/);

  const badField = fx.newId();
  const spec = fx.specFor(badField, { args: ['true'] });
  await fx.writeBundle(badField, { ...spec, process: { ...spec.process, cwd: 'relative' } });
  await assertCreateFails(t, fx, badField, /config\.json: invalid OCI config: process\.cwd: must be an absolute path/);

  const badMount = fx.newId();
  await fx.writeBundle(badMount, { ...fx.specFor(badMount, { args: ['true'] }), mounts: [{ destination: '/data', type: 'bind', source: '/no/such/source' }] });
  await assertCreateFails(t, fx, badMount, /mounts\[0\] \(\/data\): bind source \/no\/such\/source: ENOENT/);

  await assertNothingLeft(t, fx);
});

test('creating an id twice is refused', async (t) => {
  const fx = await fixture(t);
  const id = await fx.create({ args: ['sleep', '60'] });
  const bundle = path.join(fx.dir, 'bundles', id);
  await t.throwsAsync(fx.runtime.create(id, bundle, { logPath: fx.logPath(id) }), { message: /already exists/ });
  t.is((await fx.runtime.state(id))?.status, 'created', 'the first container is untouched');
  await assertNothingLeft(t, fx);
});

test('an execve failure at start is reported with the step and errno', async (t) => {
  const fx = await fixture(t);
  // Executable bit but no valid format: found at create, refused by execve at start.
  await fs.writeFile(path.join(fx.rootfs, 'bin/not-a-program'), 'garbage without a shebang\n', { mode: 0o755 });
  const id = await fx.create({ args: ['not-a-program'] });
  await t.throwsAsync(fx.runtime.start(id), { message: /step 'execve \/bin\/not-a-program'.*Exec format error \(ENOEXEC\)/ });
  const exit = await withTimeout(fx.runtime.wait(id), 5000);
  t.is(exit.exitCode, 127);
  await fx.runtime.delete(id);
  await assertNothingLeft(t, fx);
});

test('bind mounts (file and directory, read-only) and a read-only rootfs', async (t) => {
  const fx = await fixture(t);
  const shared = path.join(fx.dir, 'shared');
  await fs.mkdir(shared);
  await fs.writeFile(path.join(shared, 'in-dir'), 'dir content\n');
  const secret = path.join(fx.dir, 'secret.txt');
  await fs.writeFile(secret, 'secret content\n');
  const { exit, log } = await fx.run({
    args: [
      'sh',
      '-c',
      [
        'cat /data/in-dir /run/secrets/token',
        'echo new > /data/from-container && echo data-writable',
        '(echo x > /run/secrets/token) 2>/dev/null || echo secret-readonly',
        'touch /new-root-file 2>/dev/null || echo root-readonly',
      ].join('; '),
    ],
    readonlyRootfs: true,
    binds: [
      { source: shared, destination: '/data' },
      { source: secret, destination: '/run/secrets/token', readonly: true },
    ],
  });
  t.is(exit.exitCode, 0, log);
  t.deepEqual(log.trim().split('\n'), ['dir content', 'secret content', 'data-writable', 'secret-readonly', 'root-readonly']);
  t.is(await fs.readFile(path.join(shared, 'from-container'), 'utf8'), 'new\n');
  t.is(await fs.readFile(secret, 'utf8'), 'secret content\n');
  await assertNothingLeft(t, fx);
});
