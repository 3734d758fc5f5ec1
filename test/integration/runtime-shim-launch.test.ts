// How tessera-shim is launched: tsd posix_spawns it and writes the spawn plan (binary, from
// native/spawn_plan_wire.cc) on fd 4; the shim reports on fd 3. These tests drive the real shim
// binary with bad plans, and check that the per-profile seccomp cache in the addon never hands one
// container another's filter.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import crypto from 'node:crypto';
import { SHIM_PATH, spawnShim } from '../../agent/runtime/native.js';
import type { OciSeccomp } from '../../agent/runtime/seccomp.js';
import { buildSpawnPlan } from '../../agent/runtime/spawn-plan.js';
import { processStartTime } from '../../agent/runtime/state-store.js';
import { RuntimeFixture, withTimeout } from '../helpers/runtime-fixture.js';
import { hostCgroups } from '../helpers/host-cgroups.js';

interface ShimOutcome {
  code: number | null;
  report: Buffer;
}

/** Runs the shim binary with `plan` on its plan fd; returns its exit code and the report it wrote. */
async function runShimWithPlan(t: ExecutionContext, plan: Buffer): Promise<ShimOutcome & { stateDir: string }> {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-shim-launch-'));
  t.teardown(() => fs.rm(stateDir, { recursive: true, force: true }));
  const child = spawn(SHIM_PATH, ['--state-dir', stateDir, '--log', path.join(stateDir, 'log')], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    env: {},
  });
  const reportStream = child.stdio[3] as Readable;
  const planStream = child.stdio[4] as Writable;
  const chunks: Buffer[] = [];
  reportStream.on('data', (c: Buffer) => chunks.push(c));
  planStream.on('error', () => undefined); // the shim may close its end before reading it all
  planStream.end(plan);
  const code = await withTimeout(new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c))), 10_000);
  return { code, report: Buffer.concat(chunks), stateDir };
}

/** Decodes a failure record: 'F', int32 errno, uint16 length, text. */
function failureOf(report: Buffer): { errno: number; text: string } | undefined {
  if (report.length < 7 || report[0] !== 'F'.charCodeAt(0)) return undefined;
  const len = report.readUInt16LE(5);
  return { errno: report.readInt32LE(1), text: report.subarray(7, 7 + len).toString('utf8') };
}

const EPROTO = os.constants.errno.EPROTO;

test('the shim refuses bytes that are not a spawn plan, reports why and leaves nothing', async (t) => {
  const out = await runShimWithPlan(t, Buffer.from('{"rootfs":"/"}'));
  t.is(out.code, 1);
  t.deepEqual(failureOf(out.report), { errno: EPROTO, text: 'shim: not a spawn plan of this version' });
  t.deepEqual(await fs.readdir(out.stateDir), []);
});

test('the shim refuses a truncated spawn plan', async (t) => {
  // The right magic ("TSP2" little-endian: native/spawn_plan_wire.cc), then a string length that runs past the end.
  const plan = Buffer.alloc(12);
  plan.writeUInt32LE(0x54535032, 0);
  plan.writeUInt32LE(1000, 4);
  const out = await runShimWithPlan(t, plan);
  t.is(out.code, 1);
  t.deepEqual(failureOf(out.report), { errno: EPROTO, text: 'shim: spawn plan is truncated or malformed' });
  t.deepEqual(await fs.readdir(out.stateDir), []);
});

test('the shim refuses an empty plan (its creator died before writing it)', async (t) => {
  const out = await runShimWithPlan(t, Buffer.alloc(0));
  t.is(out.code, 1);
  t.is(failureOf(out.report)?.errno, EPROTO);
});

const DENY_MKDIR: OciSeccomp = {
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
};
const DENY_SYMLINK: OciSeccomp = {
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['symlink', 'symlinkat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
};

test('compiled seccomp filters are cached per profile: each container gets exactly its own', async (t) => {
  const fx = await RuntimeFixture.create();
  t.teardown(() => fx.cleanup());
  // The busybox rootfs is shared by the fixture's containers: each run uses its own names.
  const probe = (n: number): string => `mkdir /tmp/d${n}; echo "mkdir=$?"; ln -s /x /tmp/l${n}; echo "symlink=$?"; rm -rf /tmp/d${n} /tmp/l${n}`;
  const profiles: Array<[string, OciSeccomp | undefined, RegExp[]]> = [
    ['deny mkdir', DENY_MKDIR, [/mkdir=1/, /symlink=0/]],
    ['default profile', undefined, [/mkdir=0/, /symlink=0/]],
    ['deny symlink', DENY_SYMLINK, [/mkdir=0/, /symlink=1/]],
    ['deny mkdir again (from the cache)', DENY_MKDIR, [/mkdir=1/, /symlink=0/]],
    ['deny symlink again (from the cache)', DENY_SYMLINK, [/mkdir=0/, /symlink=1/]],
  ];
  for (const [n, [name, seccomp, expected]] of profiles.entries()) {
    const run = await fx.run({ args: ['sh', '-c', probe(n)], ...(seccomp === undefined ? {} : { seccomp }) });
    t.is(run.exit.exitCode, 0, `${name}: ${run.log}`);
    for (const re of expected) t.regex(run.log, re, name);
  }
  t.deepEqual(await fx.cleanup(), { cgroups: [], mounts: [] });
});

test('on cgroup v2 the shim creates the init directly in its cgroup (clone3 into the cgroup)', async (t) => {
  const { v2Root, mode } = await hostCgroups();
  if (v2Root === undefined) {
    t.log('case: cgroup v1 only: there is no cgroup2 tree to clone into');
    t.is(mode, 'v1');
    return;
  }
  t.log(`case: ${mode} host, cgroup2 at ${v2Root}`);
  // The plan is handed to the shim directly, with a v2 cgroup.procs file as its only cgroup, so
  // this runs on a hybrid host's controller-less cgroup2 tree as well as on a pure v2 host.
  const fx = await RuntimeFixture.create();
  const leaf = path.join(v2Root, `tessera-test-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  let initPid: number | undefined;
  t.teardown(async () => {
    if (initPid !== undefined) {
      try {
        process.kill(initPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (
      let i = 0;
      i < 100 &&
      (await fs.rmdir(leaf).then(
        () => false,
        (e: NodeJS.ErrnoException) => e.code === 'EBUSY',
      ));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await fx.cleanup();
  });
  await fs.mkdir(leaf);
  const id = fx.newId();
  const spec = fx.specFor(id, { args: ['true'] });
  const logPath = fx.logPath(id);
  await fs.mkdir(path.dirname(logPath), { recursive: true });
  const plan = await buildSpawnPlan({ spec, rootfs: fx.rootfs, cgroupProcsFiles: [path.join(leaf, 'cgroup.procs')], logPath, source: 'test' });
  const stateDir = path.join(fx.dir, 'shim-state');
  await fs.mkdir(stateDir);
  const child = await spawnShim(plan, { shimPath: SHIM_PATH, stateDir, logPath, logFormat: 'raw', logMaxSize: '0', logMaxFiles: '1', oomFile: '' });
  initPid = child.pid;
  t.regex(await fs.readFile(`/proc/${child.pid}/cgroup`, 'utf8'), new RegExp(`^0::/${path.basename(leaf)}$`, 'm'));
  t.is((await fs.readFile(path.join(leaf, 'cgroup.procs'), 'utf8')).trim(), String(child.pid), 'only the init is in the cgroup');
  process.kill(child.pid, 'SIGKILL');
  for (let i = 0; i < 250 && (await processStartTime(child.shimPid)) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(await processStartTime(child.shimPid), undefined, 'the shim exits with its init');
  t.regex(await fs.readFile(path.join(stateDir, 'exit.json'), 'utf8'), /"signal":9/);
});
