// What tsd keeps under its data root is root's alone (issue 15, "File modes"): the data root 0711,
// its directories 0700 (containers/ and each bundle 0710 root:root, on the way to the root file
// systems), private files 0600, and container root file systems mounted nosuid,nodev on the host.
// The escape of CVE-2021-41091: a setuid-root binary a container makes in its rootfs must not give
// a host user root.
//
// Everything is real: the data root is prepared by the function tsd's start runs, the container is
// started by the worker (image store, overlay rootfs, bundle, native runtime, bridge network in a
// namespace of the test's own), and the host users are `nobody` through setpriv. Nothing stands in.
//
// The probe of "did exec honour the setuid bit": Debian's busybox drops a setuid start's privileges
// before its applet runs, so `id -u` alone cannot tell. What stays is glibc's answer to the kernel's
// AT_SECURE (set after an exec that changed the user): it removes LD_LIBRARY_PATH and the like from
// the environment at start. A control copy of the same binary on a file system without nosuid shows
// that the probe sees a setuid exec.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { API_VERSION, type Task } from '../../common/resources/types.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { mount, umount } from '../../agent/runtime/native.js';
import { containerIdFor, logPathFor } from '../../agent/worker/task-runner.js';
import type { Worker } from '../../agent/worker/worker.js';
import { dataPaths, defaultConfig, type DaemonConfig } from '../../daemon/config.js';
import { prepareDataRoot } from '../../daemon/data-root.js';
import { eventually } from '../helpers/eventually.js';
import { startWorkerHost, type TaskReport } from '../helpers/worker-host.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';

const run = promisify(execFile);
const NOBODY = 65534;
/** A variable glibc removes from the environment of a secure (setuid) start. */
const PROBE_VARIABLE = 'LD_LIBRARY_PATH=/tessera-setuid-probe';
const SUID_NAME = 'busybox-suid';

function modeOf(info: { mode: number }): string {
  return (info.mode & 0o7777).toString(8).padStart(4, '0');
}

async function modes(paths: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, path] of Object.entries(paths)) out[name] = modeOf(await stat(path));
  return out;
}

interface AsUser {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv as uid/gid nobody with no supplementary groups, or with group root (gid 0) when
 * `groupRoot`. setpriv itself keeps root's capabilities up to its execve (it sets PR_SET_KEEPCAPS),
 * so its exec passes any directory: a shell, already nobody's with no capabilities, makes the exec.
 */
async function asNobody(argv: string[], groupRoot: boolean, env: NodeJS.ProcessEnv = process.env): Promise<AsUser> {
  const groups = groupRoot ? ['--groups=0'] : ['--clear-groups'];
  const user = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, ...groups];
  try {
    const { stdout, stderr } = await run('setpriv', [...user, '--', '/bin/sh', '-c', 'exec "$0" "$@"', ...argv], { timeout: 10_000, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Error & { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** Whether `binary` (busybox), started by nobody, had a secure (setuid) start; what failed when it did not run. */
async function setuidStartOf(binary: string, groupRoot: boolean): Promise<boolean | AsUser> {
  const [name = '', value = ''] = PROBE_VARIABLE.split('=');
  const result = await asNobody([binary, 'env'], groupRoot, { ...process.env, [name]: value });
  if (result.code !== 0) return result;
  return !result.stdout.split('\n').includes(PROBE_VARIABLE);
}

/** Mount options (the per-mount ones, field 6 of mountinfo) of the mount at `point`. */
async function mountOptionsOf(point: string): Promise<string[] | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const line = text.split('\n').find((l) => l.split(' ')[4] === point);
  return line?.split(' ')[5]?.split(',');
}

function configFor(dataRoot: string): DaemonConfig {
  return { ...defaultConfig(), dataRoot };
}

test('at start, what an older tsd left gets the modes: data root, state dirs, tsd.log, bundles, logs, runtime records, rootfs mounts', async (t) => {
  const dataRoot = await mkdtemp(join(tmpdir(), 'tessera-modes-old-'));
  const config = configFor(dataRoot);
  const paths = dataPaths(config);
  const bundle = join(paths.containers, 'old-ctr');
  const rootfs = join(bundle, 'rootfs');
  t.teardown(async () => {
    await Promise.resolve()
      .then(() => umount(rootfs, true))
      .catch(() => undefined);
    await rm(dataRoot, { recursive: true, force: true });
  });
  // The layout an older tsd made: directories 0755, files 0644, a rootfs mount without nosuid.
  await chmod(dataRoot, 0o755);
  for (const dir of [paths.images, paths.runtimeState, paths.network, paths.run, paths.volumes, paths.raft, paths.logs, bundle])
    await mkdir(dir, { recursive: true, mode: 0o755 });
  await mkdir(join(paths.runtimeState, 'old-ctr'), { mode: 0o755 });
  const files = {
    tsdLog: paths.daemonLog,
    configJson: join(bundle, 'config.json'),
    containerLog: join(paths.logs, 'web.1.abc.log'),
    rotatedLog: join(paths.logs, 'web.1.abc.log.1'),
    stateJson: join(paths.runtimeState, 'old-ctr', 'state.json'),
    planJson: join(paths.runtimeState, 'old-ctr', 'plan.json'),
  };
  for (const file of Object.values(files)) await writeFile(file, '{}\n', { mode: 0o644 });
  const layer = join(dataRoot, 'layer');
  await makeBusyboxRootfs(layer);
  for (const dir of ['upper', 'work', 'rootfs']) await mkdir(join(bundle, dir));
  mount('overlay', rootfs, 'overlay', [], `lowerdir=${layer},upperdir=${join(bundle, 'upper')},workdir=${join(bundle, 'work')}`);
  t.false((await mountOptionsOf(rootfs))?.includes('nosuid'), 'the older mount is not nosuid');

  await prepareDataRoot(config, (m) => t.log(m));

  t.deepEqual(
    await modes({
      dataRoot,
      containers: paths.containers,
      bundle,
      logs: paths.logs,
      images: paths.images,
      runtime: paths.runtimeState,
      runtimeContainer: join(paths.runtimeState, 'old-ctr'),
      network: paths.network,
      run: paths.run,
      volumes: paths.volumes,
      raft: paths.raft,
    }),
    {
      dataRoot: '0711',
      containers: '0710',
      bundle: '0710',
      logs: '0700',
      images: '0700',
      runtime: '0700',
      runtimeContainer: '0700',
      network: '0700',
      run: '0700',
      volumes: '0700',
      raft: '0700',
    },
  );
  t.deepEqual(await modes(files), {
    tsdLog: '0600',
    configJson: '0600',
    containerLog: '0600',
    rotatedLog: '0600',
    stateJson: '0600',
    planJson: '0600',
  });
  const options = await mountOptionsOf(rootfs);
  t.true(options?.includes('nosuid') && options.includes('nodev'), `the rootfs is remounted nosuid,nodev (options: ${options?.join(',')})`);
  t.true(options?.includes('rw'), 'and stays read-write');

  // A second start changes nothing and does not fail on what the first one did.
  await prepareDataRoot(config, (m) => t.log(m));
  t.is(modeOf(await stat(dataRoot)), '0711');
});

interface Node {
  config: DaemonConfig;
  worker: Worker;
  reports: TaskReport[];
  imageRef: string;
}

/** A data root prepared as tsd's start does, an image store with busybox loaded, and a worker over a real runtime and bridge. */
async function startNode(t: ExecutionContext): Promise<Node> {
  const host = await startWorkerHost(t, { name: 'modes', subnet: '10.219.7.0/24' });
  const worker = host.startWorker({
    runtime: new NativeRuntime({ stateRoot: host.paths.runtimeState, cgroupParent: host.cgroupParent }),
    log: (message) => t.log(message),
  });
  return { config: host.config, worker, reports: host.reports, imageRef: host.imageRef };
}

function taskRunning(name: string, imageRef: string, command: string[]): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name },
    spec: {
      serviceName: 'modes',
      serviceStack: '',
      serviceGeneration: 1,
      slot: 1,
      spec: {
        image: imageRef,
        command,
        env: { DB_PASSWORD: 'hunter2-not-for-host-users' },
        mounts: [{ type: 'volume', target: '/data' }],
        stopGracePeriodMs: 1000,
      },
    },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state: 'assigned', timestamp: new Date().toISOString() },
  };
}

test('a container the worker starts: root-only modes, nosuid,nodev rootfs; its setuid-root binary gives no host user root', async (t) => {
  const { config, worker, reports, imageRef } = await startNode(t);
  const paths = dataPaths(config);
  // As root in the container: a setuid-root copy of busybox in its rootfs and in its volume.
  const made = `cp /bin/busybox /${SUID_NAME} && chmod 4755 /${SUID_NAME} && cp -a /${SUID_NAME} /data/ && echo made && exec sleep 600`;
  const task = taskRunning('modes.1.suid', imageRef, ['sh', '-c', made]);
  worker.reconcile([task]);
  await eventually(
    () => `the task to run (reports: ${JSON.stringify(reports)})`,
    async () => reports.some((r) => r.state === 'running') || reports.some((r) => r.state === 'failed' || r.state === 'rejected'),
    60_000,
    100,
  );
  t.false(
    reports.some((r) => r.state === 'failed' || r.state === 'rejected'),
    JSON.stringify(reports),
  );

  const id = containerIdFor(task);
  const bundle = join(paths.containers, id);
  const rootfs = join(bundle, 'rootfs');
  const copies = { merged: join(rootfs, SUID_NAME), upper: join(bundle, 'upper', SUID_NAME), volume: join(bundle, 'volumes', '0', '_data', SUID_NAME) };
  await eventually('the container to make its setuid binaries', async () => {
    const info = await stat(copies.volume).catch(() => undefined);
    return info !== undefined && (info.mode & 0o4000) !== 0;
  });
  for (const path of Object.values(copies)) t.is(modeOf(await stat(path)), '4755', `${path} is setuid root`);

  t.deepEqual(
    await modes({
      dataRoot: config.dataRoot,
      containers: paths.containers,
      bundle,
      configJson: join(bundle, 'config.json'),
      work: join(bundle, 'work'),
      anonymousVolumes: join(bundle, 'volumes'),
      logs: paths.logs,
      log: logPathFor(paths.logs, task.metadata.name),
      images: paths.images,
      runtime: paths.runtimeState,
      runtimeContainer: join(paths.runtimeState, id),
      stateJson: join(paths.runtimeState, id, 'state.json'),
      planJson: join(paths.runtimeState, id, 'plan.json'),
      network: paths.network,
      run: paths.run,
      volumes: paths.volumes,
    }),
    {
      dataRoot: '0711',
      containers: '0710',
      bundle: '0710',
      configJson: '0600',
      work: '0700',
      anonymousVolumes: '0700',
      logs: '0700',
      log: '0600',
      images: '0700',
      runtime: '0700',
      runtimeContainer: '0700',
      stateJson: '0600',
      planJson: '0600',
      network: '0700',
      run: '0700',
      volumes: '0700',
    },
  );
  for (const dir of [paths.containers, bundle]) {
    const info = await stat(dir);
    t.deepEqual([info.uid, info.gid], [0, 0], `${dir} is root:root`);
  }
  t.true((await readFile(join(bundle, 'config.json'), 'utf8')).includes('DB_PASSWORD'), 'config.json holds the environment');
  t.true((await readFile(logPathFor(paths.logs, task.metadata.name), 'utf8')).includes('made'), 'the log has what the container wrote');
  const options = await mountOptionsOf(rootfs);
  t.true(options?.includes('nosuid') && options.includes('nodev'), `the rootfs is mounted nosuid,nodev (options: ${options?.join(',')})`);

  // nobody, no groups: nothing under the data root is reachable, so nothing there runs.
  for (const [where, path] of Object.entries(copies)) {
    const tried = await asNobody([path, 'id', '-u'], false);
    t.not(tried.code, 0, `${where}: nobody ran ${path}`);
    t.regex(tried.stderr, /Permission denied/, `${where}: ${tried.stderr}`);
    t.not(tried.stdout.trim(), '0', `${where}: ran as root`);
  }
  for (const file of [join(bundle, 'config.json'), logPathFor(paths.logs, task.metadata.name), join(paths.runtimeState, id, 'plan.json')]) {
    const read = await asNobody(['cat', file], false);
    t.not(read.code, 0, `nobody read ${file}`);
    t.false(read.stdout.includes('hunter2'), `nobody read the environment in ${file}`);
  }

  // The control: the same binary, copied by root (setuid kept) where nothing is nosuid, reachable by
  // group root only. The probe must see its setuid start, else the assertions below prove nothing.
  const control = await mkdtemp(join(tmpdir(), 'tessera-modes-control-'));
  t.teardown(() => rm(control, { recursive: true, force: true }));
  await chmod(control, 0o710);
  await chown(control, 0, 0);
  const controlCopy = join(control, SUID_NAME);
  await copyFile(copies.merged, controlCopy);
  await chmod(controlCopy, 0o4755);
  t.is(await setuidStartOf(controlCopy, true), true, 'the probe sees a setuid start where the bit is honoured');
  await rm(controlCopy);

  // A member of group root passes containers/ and the bundle (0710) and reaches the merged rootfs:
  // the binary runs, but nosuid leaves it nobody's, and id says so.
  t.is(await setuidStartOf(copies.merged, true), false, 'the kernel did not honour the setuid bit through the nosuid mount');
  t.is((await asNobody([copies.merged, 'id', '-u'], true)).stdout.trim(), String(NOBODY));
  // The volume's copy (no nosuid mount there) stays out of reach: volumes/ is 0700.
  const volume = await asNobody([copies.volume, 'id', '-u'], true);
  t.not(volume.code, 0, 'group root ran the volume copy');
  t.regex(volume.stderr, /Permission denied/);
  // config.json is 0600 in a directory group root may pass through.
  t.not((await asNobody(['cat', join(bundle, 'config.json')], true)).code, 0, 'group root read config.json');

  // Cleanup by the worker: container, mounts and bundle go.
  worker.reconcile([]);
  await eventually('the task to end', async () => reports.some((r) => r.state === 'shutdown'), 30_000, 100);
  t.is(await mountOptionsOf(rootfs), undefined, 'the rootfs is unmounted');
  t.false(
    await stat(bundle).then(
      () => true,
      () => false,
    ),
    'the bundle is removed',
  );
});
