// The release as a user gets it: `npm run package` makes the tarball, deploy/install.sh installs it
// (here under a directory of the test's, with --root, so the host's /usr/local and /etc are not
// touched), and the installed tsd, run from the installed tree with its own Node.js and only the
// settings file, brings up a node in a network namespace of the test's own that serves the
// example stack. Nothing of the checkout (sources, dev dependencies, tsx) is on the path it runs.
// The systemd unit is checked as text: this machine has no systemd as PID 1 to load it.
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { eventually } from '../helpers/eventually.js';
import { listCgroups } from '../helpers/tsd-node.js';

const run = promisify(execFile);

test('npm run package + deploy/install.sh: the installed tsd serves the example stack from its settings file alone', async (t) => {
  t.timeout(8 * 60_000);
  const id = `tsr${process.pid.toString(36)}`.slice(0, 8);
  const work = await mkdtemp(join(tmpdir(), 'tessera-release-'));
  const netns = `${id}-ns`;
  let tsd: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();
  const root = join(work, 'root');
  const lib = join(root, 'usr/local/lib/tessera');
  const node = join(lib, 'node/bin/node');
  const dataRoot = join(work, 'data');
  const config = join(work, 'tsd.yaml');
  const tsctl = (...args: string[]) =>
    run(node, [join(lib, 'dist/cli/main.js'), '--server', `unix:${join(dataRoot, 'tsd.sock')}`, ...args], { timeout: 120_000 });
  t.teardown(async () => {
    if (tsd?.exitCode === null) {
      tsd.kill('SIGTERM');
      await exited;
    }
    if (tsd !== undefined)
      await run(node, [join(lib, 'dist/daemon/main.js'), 'cleanup', '--config', config]).catch((err: Error) => t.log(`cleanup: ${err.message}`));
    await run('ip', ['netns', 'delete', netns]).catch(() => undefined); // absent when the test failed before making it
    for (const cgroup of await listCgroups(id)) await run('rmdir', [cgroup]).catch(() => undefined); // deepest first; a busy one shows in the leak check below
    await rm(work, { recursive: true, force: true });
  });

  const packaged = await run('bash', ['deploy/package.sh', join(work, 'out')], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  const tarball = packaged.stdout.trim().split('\n').pop()!;
  t.regex(tarball, /tessera-[\d.]+-linux-\w+\.tar\.gz$/);
  const listing = (await run('tar', ['-tzf', tarball], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  t.false(/\/node_modules\/(ava|typescript|tsx|oxlint)\//.test(listing), 'no development dependency ships');
  t.false(/\/dist\/test\//.test(listing), 'no compiled test ships');

  await mkdir(root);
  const installed = await run('bash', ['deploy/install.sh', '--root', root, tarball], { timeout: 300_000 });
  t.regex(installed.stdout, /installed in .*usr\/local\/lib\/tessera/);
  for (const command of ['tsd', 'tsctl', 'tessera-runtime']) {
    const wrapper = await readFile(join(root, 'usr/local/bin', command), 'utf8');
    t.regex(wrapper, /exec \/usr\/local\/lib\/tessera\/node\/bin\/node /, `${command} runs the release's own Node.js`);
  }
  const unit = await readFile(join(root, 'etc/systemd/system/tsd.service'), 'utf8');
  for (const line of ['Delegate=yes', 'KillMode=process', 'Wants=network-online.target']) t.true(unit.split('\n').includes(line), `the unit has ${line}`);
  t.regex(unit, /^After=.*\bnetwork-online\.target\b/m);
  t.regex(unit, /^ExecStart=\/usr\/local\/bin\/tsd run --config \/etc\/tessera\/tsd\.yaml --live-restore$/m);
  const example = await readFile(join(root, 'etc/tessera/tsd.yaml'), 'utf8');
  t.regex(example, /^#data-root: "\/var\/lib\/tessera"$/m, 'the settings file lists the settings, commented out');

  // The installed tsd, given nothing but its settings file.
  await run('ip', ['netns', 'add', netns]);
  await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  const settings = {
    'data-root': dataRoot,
    listen: '127.0.0.1:7420',
    'advertise-address': '127.0.0.1',
    'metrics-listen': '127.0.0.1:7421',
    'node-name': 'release-node',
    bridge: `${id}br`,
    subnet: '10.219.5.0/24',
    'nft-table': id,
    'cgroup-parent': id,
    'heartbeat-ms': 500,
  };
  await writeFile(
    config,
    Object.entries(settings)
      .map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`)
      .join(''),
    { mode: 0o600 },
  );
  const log = await open(join(work, 'tsd.log'), 'a');
  tsd = spawn('nsenter', [`--net=/run/netns/${netns}`, node, join(lib, 'dist/daemon/main.js'), 'run', '--config', config], {
    stdio: ['ignore', log.fd, log.fd],
  });
  exited = new Promise((resolve) => tsd!.once('exit', resolve));
  await log.close();
  const tsdLog = () => readFile(join(work, 'tsd.log'), 'utf8');
  await eventually(
    'the installed tsd to be ready',
    async () => (await tsctl('get', 'nodes', '-o', 'json').catch(() => ({ stdout: '' }))).stdout.includes('"ready"') || undefined,
    60_000,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await tsdLog()}`);
  });
  t.regex(await tsdLog(), /ready: node release-node/);
  t.is((await stat(dataRoot)).mode & 0o777, 0o711, 'the data root from the settings file, with its mode');

  // The example stack, with the example image the release itself builds.
  const image = join(work, 'busybox.tar');
  await run(node, [join(lib, 'dist/deploy/build-example-image.js'), image], { timeout: 120_000 });
  await tsctl('image', 'load', image);
  await tsctl('apply', '-f', join(lib, 'examples/hello/stack.yaml'));
  const page = await eventually(
    'the example to answer on its published port',
    async () =>
      (
        await run('ip', ['netns', 'exec', netns, 'busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'], { timeout: 5000 }).catch(() => ({
          stdout: '',
        }))
      ).stdout || undefined,
    60_000,
  );
  t.regex(page, /^hello from hello-\d+-/);
  await tsctl('delete', '-f', join(lib, 'examples/hello/stack.yaml'));

  tsd.kill('SIGTERM');
  await exited;
  t.deepEqual(
    (await listCgroups(id)).filter((c) => !c.endsWith(`/${id}`)),
    [],
    'the stopped tsd (without --live-restore) leaves no container cgroup',
  );
});
