// User namespaces per service (issue 15, `userns: auto`): real containers started by the worker
// (image store, shifted layers, overlay rootfs, native runtime, bridge in a network namespace of the
// test's own). The node's subordinate-id files are temporary files of the test (the host's
// /etc/subuid is not touched); everything else is the product's code path.
//
// The "escape" is simulated by what an escaped container root would reach first: host files. A
// host directory is bind-mounted into the container; a root-owned 0600 file and a root-owned
// directory in it must refuse the container's root (EACCES), while the same container with the
// host's ids (`userns: host`) reads and writes them, so the refusal is the namespace's doing.
import test, { type ExecutionContext } from 'ava';
import { chmod, lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { API_VERSION, type ServiceSpec, type Task } from '../../common/resources/types.js';
import { DeliveredFiles } from '../../common/dispatcher/stack-files.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { containerIdFor, logPathFor } from '../../agent/worker/task-runner.js';
import type { Worker } from '../../agent/worker/worker.js';
import { UsernsAllocator } from '../../agent/userns/allocator.js';
import { decodeAcl } from '../../agent/userns/search-acl.js';
import { lgetxattr, mount, umount } from '../../agent/runtime/native.js';
import type { LayerOwnership } from '../../agent/userns/range-rootfs.js';
import { dataPaths, type DaemonConfig } from '../../daemon/config.js';
import { eventually } from '../helpers/eventually.js';
import { startWorkerHost, type TaskReport } from '../helpers/worker-host.js';

const SUBUID_START = 300_000_000;

interface Node {
  config: DaemonConfig;
  worker: Worker;
  runtime: NativeRuntime;
  reports: TaskReport[];
  /** What the worker logged. */
  logs: string[];
  imageRef: string;
  /** The image's layer directories in the store (host side). */
  layerDirs: string[];
  files: DeliveredFiles;
  hostDir: string;
  subid: { subuid: string; subgid: string };
}

async function startNode(t: ExecutionContext, layerOwnership: LayerOwnership = 'auto'): Promise<Node> {
  const host = await startWorkerHost(t, { name: 'userns', subnet: '10.219.9.0/24' });
  const { config, paths, scratch, reports, imageRef } = host;
  const layerDirs = (await host.images.get(imageRef))?.layerDirs ?? [];
  // The node's subordinate ids: a `tessera` entry in the uid file, none in the gid file (recorded by the agent).
  const subid = { subuid: join(scratch, 'subuid'), subgid: join(scratch, 'subgid') };
  await writeFile(subid.subuid, `someone:100000:65536\ntessera:${SUBUID_START}:${4 * 65_536}\n`);
  await writeFile(subid.subgid, 'someone:100000:65536\n');
  // Host files an escaped container root would go for: root's own, 0600, and a root-owned directory.
  const hostDir = join(scratch, 'host');
  // A host bind source must be reachable by the container's root, an unprivileged id (docs/security.md).
  await chmod(scratch, 0o711);
  await mkdir(join(hostDir, 'rootdir'), { recursive: true });
  await chmod(join(hostDir, 'rootdir'), 0o755);
  await writeFile(join(hostDir, 'shadow'), 'host-secret\n', { mode: 0o600 });
  const logs: string[] = [];
  const files = new DeliveredFiles();
  files.apply(true, [{ kind: 'Secret', stack: '', name: 'db-password', data: Buffer.from('s3cret-in-container\n') }], []);
  const runtime = new NativeRuntime({ stateRoot: paths.runtimeState, cgroupParent: host.cgroupParent });
  const worker = host.startWorker({
    runtime,
    userns: new UsernsAllocator({ dir: join(config.dataRoot, 'userns'), subidFiles: subid, layerOwnership }),
    log: (message) => {
      logs.push(message);
      t.log(message);
    },
  });
  return { config, worker, runtime, reports, logs, imageRef, layerDirs, files, hostDir, subid };
}

function taskOf(service: string, imageRef: string, script: string, extra: Partial<ServiceSpec> = {}): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name: `${service}.1.t${Math.floor(Math.random() * 36 ** 4).toString(36)}` },
    spec: {
      serviceName: service,
      serviceStack: '',
      serviceGeneration: 1,
      slot: 1,
      spec: { image: imageRef, command: ['sh', '-c', script], stopGracePeriodMs: 500, ...extra },
    },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state: 'assigned', timestamp: new Date().toISOString() },
  };
}

/** The container's output (its JSON-lines log) once `marker` is in it. */
async function outputUntil(node: Node, task: Task, marker: string): Promise<string> {
  const path = logPathFor(dataPaths(node.config).logs, task.metadata.name);
  return eventually(
    () => `${task.metadata.name} to print ${marker} (reports: ${JSON.stringify(node.reports.filter((r) => r.task === task.metadata.name))})`,
    async () => {
      const failed = node.reports.find((r) => r.task === task.metadata.name && (r.state === 'failed' || r.state === 'rejected'));
      if (failed) throw new Error(`task ${failed.state}: ${failed.message ?? ''}`);
      const lines = (await readFile(path, 'utf8').catch(() => ''))
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { log: string }).log)
        .join('');
      return lines.includes(marker) ? lines : undefined;
    },
    60_000,
    100,
  );
}

/** The named groups of a directory's access ACL. */
function aclGroups(dir: string): number[] {
  const value = lgetxattr(dir, 'system.posix_acl_access');
  return value === undefined ? [] : decodeAcl(value).flatMap((e) => (e.tag === 0x08 ? [e.id] : []));
}

/** What the escape probes print: one "name=ok" or "name=denied" line each. */
const ESCAPE_PROBES = [
  'cat /host/shadow >/dev/null 2>/tmp/e && echo read0600=ok || { echo read0600=denied; cat /tmp/e; }',
  'touch /host/rootdir/planted 2>/tmp/e && echo writedir=ok || { echo writedir=denied; cat /tmp/e; }',
  ': >/tmp/e; echo x >>/host/shadow 2>/tmp/e && echo append=ok || { echo append=denied; cat /tmp/e; }',
  'chown 0:0 /host/rootdir 2>/tmp/e && echo chown=ok || { echo chown=denied; cat /tmp/e; }',
].join('; ');

function probeResults(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of output.matchAll(/^(read0600|writedir|append|chown)=(ok|denied)$/gm)) out[match[1]!] = match[2]!;
  return out;
}

/** Owners (host side) of every file in the image's layers: none may have moved into a range. */
async function layerOwners(dirs: readonly string[]): Promise<Set<string>> {
  const owners = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    const info = await lstat(path);
    owners.add(`${info.uid}:${info.gid}`);
    if (info.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  for (const dir of dirs) await visit(dir);
  return owners;
}

// Run with the layers idmapped (forced: a node where the probe fails fails this test instead of
// quietly copying) and with the chowned copies (the fallback, forced): the same container either way.
const confinedContainer = test.macro({
  title: (_provided, ownership: 'idmapped' | 'copy') =>
    `userns auto (${ownership} layers): root inside is an unprivileged range outside; host root files refuse it; the container works`,
  exec: async (t, ownership: 'idmapped' | 'copy') => {
    const node = await startNode(t, ownership);
    const script = [
      'echo uid_map: $(cat /proc/self/uid_map)',
      'echo gid_map: $(cat /proc/self/gid_map)',
      'echo id: $(id -u):$(id -g)',
      // The image's files as the container sees them: its root's.
      'echo owners: $(stat -c %u:%g / /etc /etc/passwd /bin)',
      ESCAPE_PROBES,
      // The container's own files: its rootfs (/ itself and /etc), its secret, its volume.
      'echo hello >/made-at-root && echo own-root=ok',
      'echo more >>/etc/passwd && echo own-etc=ok',
      'echo secret: $(cat /run/secrets/db-password)',
      'echo data >/data/file && echo own-volume=ok',
      'echo done; exec sleep 600',
    ].join('; ');
    const task = taskOf('confined', node.imageRef, script, {
      userns: 'auto',
      secrets: [{ source: 'db-password', target: 'db-password', mode: 0o400 }],
      mounts: [
        { type: 'bind', source: node.hostDir, target: '/host' },
        { type: 'volume', target: '/data' },
      ],
    });
    node.worker.reconcile([task], node.files);
    const output = await outputUntil(node, task, 'done');
    t.log(output);
    t.regex(output, new RegExp(`uid_map: 0 ${SUBUID_START} 65536`), 'uid 0 inside is the start of the tessera range outside');
    // The gid file had no tessera entry: the agent recorded its default range there.
    t.regex(output, new RegExp(`gid_map: 0 ${0x7000_0000} 65536`));
    t.regex(output, /id: 0:0/);
    t.regex(output, /owners: 0:0 0:0 0:0 0:0/, "the container's root owns / and the image's files");
    t.true(
      node.logs.some((m) => m.includes(ownership === 'idmapped' ? 'idmapped mounts per range' : 'chowned copies per range')),
      'the choice is logged',
    );
    // The image's layers on the host: still host root's; copies of them only for the fallback.
    t.deepEqual([...(await layerOwners(node.layerDirs))], ['0:0'], 'nothing in the layers was chowned');
    const shifted = join(node.config.dataRoot, 'userns', 'layers', `${SUBUID_START}-${0x7000_0000}`);
    t.is(
      await stat(shifted).then(
        () => true,
        () => false,
      ),
      ownership === 'copy',
    );
    t.deepEqual(probeResults(output), { read0600: 'denied', writedir: 'denied', append: 'denied', chown: 'denied' });
    t.regex(output, /Permission denied|Operation not permitted/);
    for (const line of ['own-root=ok', 'own-etc=ok', 'secret: s3cret-in-container', 'own-volume=ok']) t.true(output.includes(line), line);

    // Seen from the host: what the container's root made is owned by the range, not by root.
    const bundle = join(dataPaths(node.config).containers, containerIdFor(task));
    const made = await stat(join(bundle, 'upper', 'made-at-root'));
    t.deepEqual([made.uid, made.gid], [SUBUID_START, 0x7000_0000]);
    t.is(await readFile(join(node.hostDir, 'shadow'), 'utf8'), 'host-secret\n', 'the host file is unchanged');
    await t.throwsAsync(stat(join(node.hostDir, 'rootdir', 'planted')), { code: 'ENOENT' });
    t.true((await readFile(node.subid.subgid, 'utf8')).includes(`tessera:${0x7000_0000}:${4000 * 65_536}`), 'the default gid range is recorded');
    t.is((await readFile(node.subid.subuid, 'utf8')).match(/tessera/g)?.length, 1, 'the existing uid entry is used, not added to');

    // The allocation is on disk, root's only.
    const allocations = join(node.config.dataRoot, 'userns', 'allocations.json');
    t.is((await stat(allocations)).mode & 0o777, 0o600);
    t.is((await stat(join(node.config.dataRoot, 'userns'))).mode & 0o777, 0o700);
    t.deepEqual((JSON.parse(await readFile(allocations, 'utf8')) as { services: Record<string, number> }).services, { '_/confined': 0 });

    // A process exec'd into the container (health checks, tsctl exec) joins its user namespace too.
    const exec = await node.runtime.exec(containerIdFor(task), { args: ['sh', '-c', 'cat /proc/self/uid_map; cat /host/shadow 2>&1'] });
    exec.stdin.end();
    const chunks: Buffer[] = [];
    exec.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    await Promise.all([exec.exit, new Promise((resolve) => exec.stdout.on('end', resolve))]);
    const execOutput = Buffer.concat(chunks).toString();
    t.regex(execOutput, new RegExp(`^\\s*0\\s+${SUBUID_START}\\s+65536`));
    t.regex(execOutput, /Permission denied/);

    // An agent started again (a new allocator over the same directory) finds the same range.
    const again = new UsernsAllocator({ dir: join(node.config.dataRoot, 'userns'), subidFiles: node.subid });
    t.like(await again.held('_/confined'), { uidStart: SUBUID_START, gidStart: 0x7000_0000, size: 65_536 });
    // The way to the container's mounts: search for the range's root group only, modes as before.
    const containers = dataPaths(node.config).containers;
    t.is((await stat(containers)).mode & 0o777, 0o710);
    t.true(aclGroups(containers).includes(0x7000_0000), 'containers/ lets the range root pass');

    // No task of the service left: its range and its shifted layers are freed.
    node.worker.reconcile([], node.files);
    await eventually('the range, its shifted layers and its search grant to be gone', async () => {
      const services = (JSON.parse(await readFile(allocations, 'utf8')) as { services: Record<string, number> }).services;
      const layersLeft = await stat(shifted).then(
        () => true,
        () => false,
      );
      return Object.keys(services).length === 0 && !layersLeft && aclGroups(containers).length === 0;
    });
    t.is((await stat(containers)).mode & 0o777, 0o710);
  },
});

test(confinedContainer, 'idmapped');
test(confinedContainer, 'copy');

test('control: the same probes with the host ids reach the host files (the refusal above is the namespace)', async (t) => {
  const node = await startNode(t);
  const task = taskOf('unconfined', node.imageRef, `echo uid_map: $(cat /proc/self/uid_map); ${ESCAPE_PROBES}; echo done; exec sleep 600`, {
    userns: 'host',
    mounts: [{ type: 'bind', source: node.hostDir, target: '/host' }],
  });
  node.worker.reconcile([task], node.files);
  const output = await outputUntil(node, task, 'done');
  t.regex(output, /uid_map: 0 0 4294967295/);
  t.deepEqual(probeResults(output), { read0600: 'ok', writedir: 'ok', append: 'ok', chown: 'ok' });
});

test('two services get disjoint ranges, each stable for its tasks', async (t) => {
  const node = await startNode(t);
  const script = 'echo uid_map: $(cat /proc/self/uid_map); echo done; exec sleep 600';
  const a1 = taskOf('alpha', node.imageRef, script, { userns: 'auto' });
  const b1 = taskOf('beta', node.imageRef, script, { userns: 'auto' });
  const a2 = { ...taskOf('alpha', node.imageRef, script, { userns: 'auto' }), spec: { ...a1.spec, slot: 2 } };
  node.worker.reconcile([a1, b1, a2], node.files);
  const start = async (task: Task) => Number(/uid_map: 0 (\d+) 65536/.exec(await outputUntil(node, task, 'done'))?.[1]);
  const [alpha1, beta, alpha2] = [await start(a1), await start(b1), await start(a2)];
  t.log({ alpha1, beta, alpha2 });
  t.is(alpha1, alpha2, 'tasks of one service share its range');
  t.true(Math.abs(alpha1 - beta) >= 65_536, 'the two ranges do not overlap');
  for (const s of [alpha1, beta]) t.true(s >= SUBUID_START && s + 65_536 <= SUBUID_START + 4 * 65_536, 'both lie in the node range');
});

test('userns auto with a read-only rootfs, a tmpfs, a read-only volume and an init', async (t) => {
  const node = await startNode(t);
  const script =
    'echo uid_map: $(cat /proc/self/uid_map); touch /x 2>&1; echo t >/scratch/f && echo tmpfs=ok; ls /ro >/dev/null && echo rovolume=ok; echo done; exec sleep 600';
  const task = taskOf('readonly', node.imageRef, script, {
    userns: 'auto',
    readOnly: true,
    init: true,
    mounts: [
      { type: 'tmpfs', target: '/scratch', sizeBytes: 1 << 20 },
      { type: 'volume', target: '/ro', readOnly: true },
    ],
  });
  node.worker.reconcile([task], node.files);
  const output = await outputUntil(node, task, 'done');
  t.log(output);
  t.regex(output, new RegExp(`uid_map: 0 ${SUBUID_START} 65536`));
  t.regex(output, /Read-only file system/);
  t.regex(output, /tmpfs=ok/);
  t.regex(output, /rovolume=ok/);
});

test('userns auto: a read-only bind of a nosuid,nodev,noexec host mount (its flags are locked in the namespace) is kept read-only', async (t) => {
  const node = await startNode(t);
  const locked = join(node.hostDir, 'locked');
  await mkdir(locked);
  mount('tmpfs', locked, 'tmpfs', ['nosuid', 'nodev', 'noexec'], 'mode=0755,size=1m');
  t.teardown(() => umount(locked, true));
  await writeFile(join(locked, 'f'), 'from-the-host\n');
  const task = taskOf('locked', node.imageRef, 'cat /locked/f; touch /locked/x 2>&1; echo done; exec sleep 600', {
    userns: 'auto',
    // Names none of the source's flags: the runtime's read-only remount must keep them itself.
    mounts: [{ type: 'bind', source: locked, target: '/locked', readOnly: true }],
  });
  node.worker.reconcile([task], node.files);
  const output = await outputUntil(node, task, 'done');
  t.log(output);
  t.regex(output, /from-the-host/);
  t.regex(output, /Read-only file system/);
});
