// A container's open stdin and terminal (Service spec stdinOpen and tty): an open stdin is a pipe
// the shim holds and never writes, so reads block instead of seeing EOF; a terminal is a pty of
// the container's own devpts, its controlling terminal and stdio, whose output the shim logs as
// stdout. Both are the shim's fds, so they survive the creating process (live restore).

import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ContainerSpecInput } from '../../agent/runtime/spec.js';
import { type RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';
import { createInDoomedProcess, readLogRecords as records, runtimeFixture as fixture } from '../helpers/shim-creator.js';

/** Reads until EOF: the exit of a container that should have kept reading. */
const READ_THEN_REPORT = ['sh', '-c', 'read line; echo got-eof'];
/** How long a blocked read must stay blocked: a read of /dev/null ends in well under a millisecond. */
const STAYS_BLOCKED_MS = 2000;

async function logText(file: string): Promise<string> {
  return (await records(file)).map((r) => r.log).join('');
}

/** Writes the bundle and creates the container with a JSON log; returns its id. */
async function create(fx: RuntimeFixture, input: Partial<ContainerSpecInput> & { args: string[] }, stdinOpen: boolean): Promise<string> {
  const id = fx.newId();
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  const bundle = await fx.writeBundle(id, fx.specFor(id, input));
  fx.track(id);
  await fx.runtime.create(id, bundle, { logPath: fx.logPath(id), logFormat: 'json', ...(stdinOpen ? { stdinOpen: true } : {}) });
  return id;
}

/** SIGKILL (sh as PID 1 ignores TERM without a trap), the recorded exit, and nothing left behind. */
async function stop(t: ExecutionContext, fx: RuntimeFixture, ids: string[]): Promise<void> {
  for (const id of ids) {
    await fx.runtime.kill(id, 'SIGKILL');
    t.deepEqual(await withTimeout(fx.runtime.wait(id), 10_000), { exitCode: 137, signal: 'SIGKILL', oomKilled: false }, id);
  }
  // The first container made the shared parent cgroup: it goes last.
  for (const id of [...ids].reverse()) await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
}

async function stillReading(t: ExecutionContext, fx: RuntimeFixture, id: string): Promise<void> {
  const state = await fx.runtime.state(id);
  t.is(state?.status, 'running', `${id} ended: ${await logText(fx.logPath(id))}`);
  t.false((await logText(fx.logPath(id))).includes('got-eof'), id);
}

test('an open stdin blocks reads instead of ending them; without it the same read sees EOF at once', async (t) => {
  const fx = await fixture(t);
  const open = await create(fx, { args: READ_THEN_REPORT }, true);
  await fx.runtime.start(open);
  const pid = (await fx.runtime.state(open))?.pid ?? 0;
  t.regex(await fs.readlink(`/proc/${pid}/fd/0`), /^pipe:\[\d+\]$/, 'stdin is the pipe the shim holds');
  await new Promise((r) => setTimeout(r, STAYS_BLOCKED_MS));
  await stillReading(t, fx, open);

  const closed = await create(fx, { args: READ_THEN_REPORT }, false);
  await fx.runtime.start(closed);
  t.deepEqual(await withTimeout(fx.runtime.wait(closed), 10_000), { exitCode: 0, oomKilled: false });
  t.deepEqual(
    (await records(fx.logPath(closed))).map((r) => [r.stream, r.log]),
    [['stdout', 'got-eof\n']],
  );
  await fx.runtime.delete(closed);
  await stop(t, fx, [open]);
});

test('a terminal: tty names /dev/pts/N of its own devpts, owned by the user; stdio are terminals; all is logged as stdout', async (t) => {
  const fx = await fixture(t);
  const script = 'tty; test -t 0 && test -t 1 && test -t 2 && echo all-terminals; echo "TERM=$TERM"; stat -c "owner %u" "$(tty)"; echo to-stderr >&2';
  const id = await create(fx, { args: ['sh', '-c', script], terminal: true, uid: 1000, gid: 1000 }, false);
  await fx.runtime.start(id);
  t.deepEqual(await withTimeout(fx.runtime.wait(id), 10_000), { exitCode: 0, oomKilled: false });
  const logged = await records(fx.logPath(id));
  t.deepEqual([...new Set(logged.map((r) => r.stream))], ['stdout'], 'a terminal has one stream');
  const text = logged.map((r) => r.log).join('');
  // The terminal's output processing (ONLCR) ends lines with \r\n, as `docker logs` of a -t container shows.
  t.regex(text, /^\/dev\/pts\/\d+\r\n/m);
  t.regex(text, /^all-terminals\r\n/m);
  t.regex(text, /^TERM=xterm\r\n/m);
  t.regex(text, /^owner 1000\r\n/m);
  t.regex(text, /^to-stderr\r\n/m);
  await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('a terminal in a user namespace: its own devpts, and the terminal belongs to the mapped user', async (t) => {
  const fx = await fixture(t);
  // The mapped root is an unprivileged host uid: it must be able to reach the rootfs.
  await fs.chmod(fx.dir, 0o755);
  const id = fx.newId();
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  const spec = fx.specFor(id, { args: ['sh', '-c', 'tty; stat -c "owner %u" "$(tty)"; test -t 0 && echo is-terminal'], terminal: true, uid: 1000, gid: 1000 });
  spec.linux?.namespaces?.push({ type: 'user' });
  if (spec.linux !== undefined) {
    spec.linux.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
    spec.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
  }
  fx.track(id);
  await fx.runtime.create(id, await fx.writeBundle(id, spec), { logPath: fx.logPath(id), logFormat: 'json' });
  await fx.runtime.start(id);
  t.deepEqual(await withTimeout(fx.runtime.wait(id), 10_000), { exitCode: 0, oomKilled: false }, await logText(fx.logPath(id)));
  const text = await logText(fx.logPath(id));
  t.regex(text, /^\/dev\/pts\/\d+\r\n/m);
  t.regex(text, /^owner 1000\r\n/m);
  t.regex(text, /^is-terminal\r\n/m);
  await fx.runtime.delete(id);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('a terminal without a devpts at /dev/pts fails create at that step and leaves nothing behind', async (t) => {
  const fx = await fixture(t);
  const id = fx.newId();
  await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
  const spec = fx.specFor(id, { args: ['true'], terminal: true });
  spec.mounts = (spec.mounts ?? []).filter((m) => m.destination !== '/dev/pts');
  const bundle = await fx.writeBundle(id, spec);
  await t.throwsAsync(fx.runtime.create(id, bundle, { logPath: fx.logPath(id) }), { message: /open the terminal.*\/dev\/pts\/ptmx/ });
  t.is(await fx.runtime.state(id), undefined);
  // Inherited stdio has no shim between the creator and the container to hold a terminal's master.
  await t.throwsAsync(fx.runtime.create(id, bundle, { stdio: 'inherit' }), { message: /process\.terminal needs the container's output logged by its shim/ });
  t.is(await fx.runtime.state(id), undefined);
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('-i -t and -t alone: reads block on the terminal, and both outlive their creator (re-adopted)', async (t) => {
  const fx = await fixture(t);
  const script = ['sh', '-c', 'tty; read line; echo got-eof'];
  const jobs = [];
  for (const stdinOpen of [true, false]) {
    const id = fx.newId();
    await fs.mkdir(path.join(fx.dir, 'logs'), { recursive: true });
    const bundle = await fx.writeBundle(id, fx.specFor(id, { args: script, terminal: true }));
    fx.track(id);
    jobs.push({ id, bundle, logPath: fx.logPath(id), stdinOpen });
  }
  await createInDoomedProcess(t, fx, jobs);
  await new Promise((r) => setTimeout(r, STAYS_BLOCKED_MS));
  for (const { id } of jobs) {
    // The fixture's runtime is a new instance on the same state root: it re-adopts.
    await stillReading(t, fx, id);
    t.regex(await logText(fx.logPath(id)), /^\/dev\/pts\/\d+\r\n/m, id);
  }
  await stop(
    t,
    fx,
    jobs.map((j) => j.id),
  );
});
