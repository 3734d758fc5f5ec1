// runc as an oracle: the same bundle must give the same observable result under both runtimes.

import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { RuntimeFixture } from '../helpers/runtime-fixture.js';

const run = promisify(execFile);

const PROBE =
  'echo "pid=$$"; hostname; id; pwd; echo "v=$V"; ls /dev | tr "\\n" " "; echo; ' +
  'cut -d" " -f5 /proc/self/mountinfo | sort | tr "\\n" " "; echo; ls /sys/class/net; exit 4';

test('our runtime and runc agree on the same bundle', async (t) => {
  const fx = await RuntimeFixture.create();
  t.teardown(async () => {
    await fx.cleanup();
  });
  const input = { args: ['sh', '-c', PROBE], hostname: 'oracle', uid: 1000, gid: 1000, cwd: '/home/app', env: ['V=same'] };

  const ours = await fx.run(input);

  const runcId = fx.newId();
  const bundle = await fx.writeBundle(runcId, fx.specFor(runcId, input));
  const runcRoot = path.join(fx.dir, 'runc-state');
  let runcOut = '';
  let runcCode = 0;
  try {
    const r = await run('runc', ['--root', runcRoot, 'run', '--bundle', bundle, runcId], { timeout: 20_000 });
    runcOut = r.stdout + r.stderr;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    runcCode = typeof e.code === 'number' ? e.code : -1;
    runcOut = (e.stdout ?? '') + (e.stderr ?? '');
  } finally {
    await run('runc', ['--root', runcRoot, 'delete', '--force', runcId]).catch(() => undefined);
  }
  t.is(runcCode, 4, runcOut);
  t.is(ours.exit.exitCode, 4, ours.log);
  const ourLines = ours.log.trim().split('\n');
  const runcLines = runcOut.trim().split('\n');
  // Everything but /dev's listing and the mount list must match exactly; runc adds a few extras there.
  t.deepEqual([...ourLines.slice(0, 5), ...ourLines.slice(7)], [...runcLines.slice(0, 5), ...runcLines.slice(7)]);
  const ourDev = new Set(ourLines[5]?.trim().split(' '));
  for (const entry of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'mqueue', 'fd', 'ptmx']) t.true(ourDev.has(entry), `/dev/${entry}`);
  const runcMounts = new Set(runcLines[6]?.trim().split(' '));
  for (const mp of ourLines[6]?.trim().split(' ') ?? []) t.true(runcMounts.has(mp), `runc also mounts ${mp}`);
  await fs.rm(runcRoot, { recursive: true, force: true });
  // runc removes only its leaf cgroups and leaves the parent dirs; cleanup() removes those.
  const left = await fx.cleanup();
  t.deepEqual(left.mounts, []);
  t.deepEqual(await fx.leftoverCgroups(), []);
});
