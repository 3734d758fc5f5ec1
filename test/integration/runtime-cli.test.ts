// bin/tessera-runtime against runc (Debian's) on the same bundles: run output and exit codes
// (env, cwd, uid/gid, hostname, network interfaces), the create/start/state/kill/delete life
// cycle and its `state` JSON, exec, and an OOM kill.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuntimeFixture } from '../helpers/runtime-fixture.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../../bin/tessera-runtime');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function runCommand(file: string, args: string[], input?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 30_000, env: { ...process.env, TESSERA_RUNTIME_FROM_SOURCE: '1' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

interface Pair {
  fx: RuntimeFixture;
  ours: (...args: string[]) => Promise<Result>;
  runc: (...args: string[]) => Promise<Result>;
  bundle: (input: Parameters<RuntimeFixture['specFor']>[1]) => Promise<{ oursId: string; runcId: string; oursBundle: string; runcBundle: string }>;
}

async function pair(t: ExecutionContext): Promise<Pair> {
  const fx = await RuntimeFixture.create();
  const oursRoot = path.join(fx.dir, 'ours-root');
  const runcRoot = path.join(fx.dir, 'runc-root');
  const made: Array<{ oursId: string; runcId: string }> = [];
  const p: Pair = {
    fx,
    ours: (...args) => runCommand(CLI, ['--root', oursRoot, ...args]),
    runc: (...args) => runCommand('runc', ['--root', runcRoot, ...args]),
    bundle: async (input) => {
      const oursId = fx.newId();
      const runcId = fx.newId();
      made.push({ oursId, runcId });
      return {
        oursId,
        runcId,
        oursBundle: await fx.writeBundle(oursId, fx.specFor(oursId, input)),
        runcBundle: await fx.writeBundle(runcId, fx.specFor(runcId, input)),
      };
    },
  };
  t.teardown(async () => {
    for (const { oursId, runcId } of made) {
      await p.ours('delete', '--force', oursId);
      await p.runc('delete', '--force', runcId);
    }
    await fx.cleanup();
  });
  return p;
}

const PROBE = 'hostname; id; pwd; echo "v=$V"; ls /sys/class/net; echo err-line >&2; exit 4';

test('run: the same bundle gives the same output and exit code', async (t) => {
  const p = await pair(t);
  const b = await p.bundle({
    args: ['sh', '-c', PROBE],
    hostname: 'cli-box',
    uid: 1000,
    gid: 1000,
    additionalGids: [2000],
    cwd: '/home/app',
    env: ['V=same', 'PATH=/bin'],
  });
  const ours = await p.ours('run', '--bundle', b.oursBundle, b.oursId);
  const runc = await p.runc('run', '--bundle', b.runcBundle, b.runcId);
  t.is(runc.code, 4, runc.stderr);
  t.is(ours.code, 4, ours.stderr);
  t.is(ours.stdout, runc.stdout);
  t.is(ours.stderr, runc.stderr);
  t.is(ours.stdout, 'cli-box\nuid=1000(app) gid=1000(app) groups=2000(extra)\n/home/app\nv=same\nlo\n');
  t.deepEqual(await p.fx.leftoverMounts(), []);
});

test('create, state, start, kill, delete behave like runc', async (t) => {
  const p = await pair(t);
  const b = await p.bundle({ args: ['sleep', '60'] });
  for (const [cli, id, bundle] of [
    [p.ours, b.oursId, b.oursBundle],
    [p.runc, b.runcId, b.runcBundle],
  ] as const) {
    const label = cli === p.ours ? 'ours' : 'runc';
    t.is((await cli('create', '-b', bundle, id)).code, 0, label);
    t.is((await cli('create', '-b', bundle, id)).code, 1, `${label}: the id is taken`);
    const created = JSON.parse((await cli('state', id)).stdout) as Record<string, unknown>;
    // runc's keys; ours adds `warnings` only when the container runs without something asked for.
    t.deepEqual(
      Object.keys(created)
        .filter((k) => k !== 'warnings')
        .sort(),
      ['bundle', 'created', 'id', 'ociVersion', 'owner', 'pid', 'rootfs', 'status'],
      label,
    );
    if (created.warnings !== undefined) t.true(Array.isArray(created.warnings) && created.warnings.every((x) => typeof x === 'string'), label);
    t.like(created, { id, status: 'created', bundle, rootfs: p.fx.rootfs, owner: '' }, label);
    // Both report the spec version their state follows (runc "1.0.2-dev", ours "1.0.2"), not the bundle's.
    t.regex(String(created.ociVersion), /^1\.\d+\.\d+/);
    t.true(typeof created.pid === 'number' && created.pid > 0);
    t.false(Number.isNaN(Date.parse(String(created.created))));
    t.is((await cli('start', id)).code, 0, label);
    t.is((await cli('start', id)).code, 1, `${label}: a running container cannot start again`);
    t.like(JSON.parse((await cli('state', id)).stdout), { status: 'running' }, label);
    t.is((await cli('delete', id)).code, 1, `${label}: delete of a running container is refused`);
    t.is((await cli('kill', id, 'KILL')).code, 0, label);
    for (let i = 0; i < 50 && JSON.parse((await cli('state', id)).stdout).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 100));
    t.like(JSON.parse((await cli('state', id)).stdout), { status: 'stopped', pid: 0 }, label);
    t.is((await cli('delete', id)).code, 0, label);
    t.is((await cli('state', id)).code, 1, `${label}: gone after delete`);
    // The spec refuses delete of a created container without --force; runc 1.1 deletes it (its deviation).
    t.is((await cli('create', '-b', bundle, id)).code, 0, label);
    t.is((await cli('delete', id)).code, label === 'ours' ? 1 : 0, `${label}: delete of a created container`);
    if (label === 'ours') t.is((await cli('delete', '--force', id)).code, 0, `${label}: delete --force of a created container`);
  }
  t.deepEqual(await p.fx.leftoverMounts(), []);
});

test('exec: same output, exit code, env, cwd and user as runc exec', async (t) => {
  const p = await pair(t);
  const b = await p.bundle({ args: ['sleep', '60'], env: ['PATH=/bin', 'V=base'], uid: 1000, gid: 1000 });
  const results: Result[] = [];
  for (const [cli, id, bundle] of [
    [p.ours, b.oursId, b.oursBundle],
    [p.runc, b.runcId, b.runcBundle],
  ] as const) {
    t.is((await cli('create', '-b', bundle, id)).code, 0);
    t.is((await cli('start', id)).code, 0);
    results.push(await cli('exec', '--cwd', '/tmp', '-e', 'V=exec', '-u', '0:0', id, 'sh', '-c', 'id; pwd; echo "$V"; hostname; exit 3'));
    results.push(await cli('exec', id, 'sh', '-c', 'id -u; pwd'));
    await cli('kill', id, 'KILL');
  }
  const [oursA, oursB, runcA, runcB] = results;
  t.is(runcA?.code, 3, runcA?.stderr);
  t.is(oursA?.code, 3, oursA?.stderr);
  t.is(oursA?.stdout, runcA?.stdout);
  t.is(oursB?.stdout, runcB?.stdout);
  t.regex(oursA?.stdout ?? '', /^uid=0\(root\) gid=0\(root\)/);
});

test('an OOM kill: both report exit 137; ours records oomKilled', async (t) => {
  const p = await pair(t);
  const hog = { args: ['sh', '-c', 'x=$(head -c 100000000 /dev/zero | tr "\\000" a); echo survived'], memoryLimit: 16 * 1024 * 1024 };
  const b = await p.bundle(hog);
  const runc = await p.runc('run', '--bundle', b.runcBundle, b.runcId);
  t.is(runc.code, 137, runc.stderr);
  const oursRoot = path.join(p.fx.dir, 'ours-root');
  t.is((await p.ours('create', '-b', b.oursBundle, b.oursId)).code, 0);
  t.is((await p.ours('start', b.oursId)).code, 0);
  const exitFile = path.join(oursRoot, 'state', b.oursId, 'exit.json');
  let exit: { exitCode: number; oomKilled: boolean } | undefined;
  for (let i = 0; i < 100 && exit === undefined; i++) {
    exit = await fs.readFile(exitFile, 'utf8').then(
      (s) => JSON.parse(s) as { exitCode: number; oomKilled: boolean },
      () => undefined,
    );
    if (exit === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  t.like(exit, { exitCode: 137, oomKilled: true });
});
