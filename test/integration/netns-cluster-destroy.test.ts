// `tsctl cluster down` (destroyNetnsCluster) over what is already gone and what cannot be removed:
// a missing namespace, bridge or cgroup is fine (destroy runs again over a half-built cluster), but
// a cgroup that a process still holds is left on the host, and destroy says so instead of hiding it.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { unlessAbsent } from '../../agent/fs-errors.js';
import { destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { hostCgroups } from '../helpers/host-cgroups.js';

function state(prefix: string, baseDir: string): NetnsClusterState {
  return {
    prefix,
    baseDir,
    hostBridge: false,
    bridge: `${prefix}ul`,
    switchNetns: `${prefix}-sw`, // never made: destroy finds it absent
    apiSocket: `unix:${join(baseDir, 'api.sock')}`,
    managerAddress: '127.0.0.1:1',
    cgroupRoot: prefix,
    nodes: [],
  };
}

test('destroy is quiet about what is already gone', async (t) => {
  const prefix = `tsd${randomBytes(3).toString('hex')}`;
  const baseDir = await mkdtemp(join(tmpdir(), 'tessera-destroy-'));
  const lines: string[] = [];
  await destroyNetnsCluster(state(prefix, baseDir), (line) => lines.push(line));
  t.deepEqual(lines, []);
});

test('destroy reports a cgroup it cannot remove because a process is still in it', async (t) => {
  const cgroups = await hostCgroups();
  // Any hierarchy shows the case; cgroup2 where there is one (pure v2, or hybrid's unified mount).
  const root = cgroups.v2Root ?? [...cgroups.v1Roots.values()][0];
  if (root === undefined) throw new Error('no cgroup hierarchy mounted');
  t.log(`cgroup mode ${cgroups.mode}; the busy cgroup is made under ${root}`);
  const prefix = `tsd${randomBytes(3).toString('hex')}`;
  const busy = join(root, prefix, 'busy');
  await mkdir(busy, { recursive: true });
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  const baseDir = await mkdtemp(join(tmpdir(), 'tessera-destroy-'));
  t.teardown(async () => {
    if (sleeper.pid !== undefined && sleeper.exitCode === null) {
      const exited = new Promise((resolve) => sleeper.once('exit', resolve));
      sleeper.kill('SIGKILL');
      await exited;
    }
    await unlessAbsent(rmdir(busy), undefined);
    await unlessAbsent(rmdir(join(root, prefix)), undefined);
    await rm(baseDir, { recursive: true, force: true });
  });
  if (sleeper.pid === undefined) throw new Error('could not start sleep');
  await writeFile(join(busy, 'cgroup.procs'), String(sleeper.pid));

  const lines: string[] = [];
  await destroyNetnsCluster(state(prefix, baseDir), (line) => lines.push(line));
  t.true(
    lines.some((line) => line.startsWith(`could not remove cgroup ${busy}:`) && line.includes('EBUSY')),
    `destroy should name the busy cgroup; it logged: ${JSON.stringify(lines)}`,
  );
});
