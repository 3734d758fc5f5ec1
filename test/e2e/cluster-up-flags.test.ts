// `tsctl cluster up --nodes 2` (the built binary, as a user runs it) hands its daemon flags to
// every node's tsd (issue 12 §3): read back from each running tsd's /proc/PID/cmdline and parsed
// with tsd's own parser, and seen in what the nodes did with them. A flag that only names one
// node's address is refused before anything is made. `cluster down` removes what was made.
// Its own prefix, underlay octet, data root, cgroup parent and context file keep it apart from
// other tests and from a user's `tsctl cluster up`.
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { CliContext } from '../../cli/context.js';
import { parseNodeArgv } from '../../daemon/node-options.js';
import type { Service, Task } from '../../common/resources/types.js';
import { destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { buildBusyboxImage } from '../helpers/busybox-image.js';
import { eventually } from '../helpers/eventually.js';
import { freeUnderlayOctet as freeOctetIn } from '../helpers/tsctl-cluster.js';

const run = promisify(execFile);
const TSCTL = join(process.cwd(), 'bin', 'tsctl');

let workDir: string;
let contextFile: string;
const prefix = `f${process.pid.toString(36).slice(-3)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
const cgroupParent = `cuf-${prefix}`;
let octet = 0;
let registryProcess: ChildProcess | undefined;

function tsctl(args: string[]) {
  return run(TSCTL, args, { env: { ...process.env, TESSERA_CONTEXT: contextFile }, timeout: 90_000 });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** An underlay octet no address of this machine uses yet (the cluster's bridge gets 172.31.X.254). */
const freeUnderlayOctet = (): Promise<number> => freeOctetIn(20, 80);

async function cgroupHierarchies(): Promise<string[]> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').flatMap((line) => {
    const [before, after] = line.split(' - ');
    const fsType = after?.split(' ')[0];
    const mountPoint = before?.split(' ')[4];
    return mountPoint && (fsType === 'cgroup' || fsType === 'cgroup2') ? [mountPoint] : [];
  });
}

async function readState(): Promise<NetnsClusterState | undefined> {
  const text = await readFile(contextFile, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as CliContext).netns;
}

/** A running tsd's arguments after its main.js: [mode, ...options, (join:) manager]. */
async function tsdArguments(pid: number): Promise<string[]> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  const main = argv.findIndex((a) => a.endsWith(join('dist', 'daemon', 'main.js')));
  if (main < 0) throw new Error(`pid ${pid} is not a tsd: ${argv.join(' ')}`);
  return argv.slice(main + 1);
}

/** The options part of `init OPTIONS` or `join OPTIONS --token-file F MANAGER`. */
function optionsOnly(args: string[]): string[] {
  const [mode, ...rest] = args;
  if (mode === 'init') return rest;
  const withoutManager = rest.slice(0, -1);
  const token = withoutManager.indexOf('--token-file');
  return token < 0 ? withoutManager : [...withoutManager.slice(0, token), ...withoutManager.slice(token + 2)];
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-cuf-'));
  contextFile = join(workDir, 'context.json');
  octet = await freeUnderlayOctet();
});

/**
 * A plain-HTTP docker-registry on the cluster's bridge address (172.31.X.254, in this namespace:
 * cluster up puts the bridge here), holding busybox: what the nodes can pull only with
 * --insecure-registry (else TLS to a plain-HTTP port fails).
 */
async function startRegistry(host: string): Promise<string> {
  const config = join(workDir, 'registry.yml');
  await writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${join(workDir, 'registry')}\nhttp:\n  addr: ${host}\n`);
  registryProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
  const built = await buildBusyboxImage(join(workDir, 'image'));
  const image = `${host}/tessera/busybox:1`;
  await eventually(
    'the registry to take the image',
    () => run('skopeo', ['copy', '--insecure-policy', '--dest-tls-verify=false', `oci:${built.ociLayoutDir}:latest`, `docker://${image}`]).then(() => true),
    30_000,
    500,
  );
  return image;
}

test.after.always(async () => {
  if (registryProcess?.pid !== undefined && registryProcess.exitCode === null) registryProcess.kill('SIGTERM');
  // `cluster down` is the last test; this catches a failure before or in it.
  const state = await readState();
  if (state) await destroyNetnsCluster(state);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const clusterFlags = () => ['--nodes', '2', '--data-root', join(workDir, 'data'), '--netns-prefix', prefix, '--underlay-octet', String(octet)];
const registry = () => `172.31.${octet}.254:5000`;

test.serial("a flag that names one node's address is refused before anything is made", async (t) => {
  const err = await t.throwsAsync(tsctl(['cluster', 'up', ...clusterFlags(), '--advertise-address', '10.1.2.3']));
  const stderr = String((err as Error & { stderr?: string }).stderr);
  t.regex(stderr, /--advertise-address cannot be used with --nodes 2: it names one address; each node of a multi-node cluster gets its own underlay address/);
  t.false(await exists(contextFile), 'no cluster was recorded');
  t.false(await exists(`/run/netns/${prefix}-n1`), 'no namespace was made');
});

test.serial("every node's tsd runs with the flags given to cluster up", async (t) => {
  await tsctl([
    'cluster',
    'up',
    ...clusterFlags(),
    '--heartbeat-ms',
    '700',
    '--node-down-after-ms',
    '7000',
    '--insecure-registry',
    registry(),
    '--cgroup-parent',
    cgroupParent,
    '--history-revisions',
    '321',
  ]);
  const state = await readState();
  if (!state) return t.fail('cluster up recorded no multi-node cluster in the context');
  t.is(state.nodes.length, 2);
  for (const node of state.nodes) {
    const args = await tsdArguments(node.pid);
    t.log(`${node.name} (pid ${node.pid}): tsd ${args.join(' ')}`);
    t.is(args[0], node.name === 'node-1' ? 'init' : 'join');
    const config = parseNodeArgv(optionsOnly(args));
    t.is(config.heartbeatMs, 700, node.name);
    t.is(config.nodeDownAfterMs, 7000, node.name);
    t.deepEqual(config.insecureRegistries, [registry()], node.name);
    t.is(config.historyRevisions, 321, node.name);
    t.is(config.cgroupParent, `${cgroupParent}/${prefix}/node-${node.name.slice(-1)}`, node.name);
    t.is(config.dataRoot, join(workDir, 'data', 'cluster', node.name), node.name);
    t.is(config.advertiseAddress, node.underlayAddress, node.name);
  }
});

test.serial('every node pulls from the plain-HTTP registry and runs its container under the given cgroup parent', async (t) => {
  const state = await readState();
  if (!state) return t.fail('no cluster');
  const image = await startRegistry(registry());
  const client = new ApiClient(state.apiSocket);
  try {
    const service: Service = {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: { name: 'flags', stack: 'cuf' },
      spec: { image, command: ['sleep', '100000'], mode: 'global' },
    };
    await client.apply({ objectsJson: [JSON.stringify(service)] });
    const running = await eventually(
      'a running task on each node',
      async () => {
        const tasks = (await client.list({ kind: 'Task', stack: 'cuf', service: 'flags' })).objectsJson.map((j) => JSON.parse(j) as Task);
        const live = tasks.filter((task) => task.status.state === 'running');
        if (live.length === state.nodes.length) return live;
        // The newest task per node says why (a global service replaces rejected tasks).
        const byAge = [...tasks].sort((a, b) => (a.metadata.createdAt ?? '').localeCompare(b.metadata.createdAt ?? ''));
        const newest = new Map(byAge.map((task) => [task.nodeName ?? '-', task]));
        throw new Error([...newest.values()].map((task) => `${task.nodeName ?? '-'} ${task.status.state} ${task.status.message ?? ''}`).join('; '));
      },
      45_000,
    );
    t.deepEqual(running.map((task) => task.nodeName ?? '(unplaced)').sort(), state.nodes.map((n) => n.name).sort());
    const hierarchies = await cgroupHierarchies();
    t.log(
      `cgroup case: ${hierarchies.length === 1 ? 'pure cgroup v2' : `${hierarchies.length} hierarchies (v1 controllers${hierarchies.some((h) => h.endsWith('unified')) ? ' + cgroup2: hybrid' : ''})`}`,
    );
    for (const task of running) {
      const node = state.nodes.find((n) => n.name === task.nodeName)!;
      const expected = `${cgroupParent}/${prefix}/${node.name}/${task.status.containerId ?? '?'}`;
      const found = [];
      for (const root of hierarchies) if (await exists(join(root, expected))) found.push(root);
      t.log(`${node.name}: container cgroup ${expected} in ${found.join(' ') || 'no hierarchy'}`);
      t.true(found.length > 0, `${task.nodeName}'s container is in ${expected}`);
    }
  } finally {
    client.close();
  }
});

test.serial('cluster down removes the namespaces, the bridge and the cgroups under the given parent', async (t) => {
  const state = await readState();
  if (!state) return t.fail('no cluster to take down');
  await tsctl(['cluster', 'down']);
  t.false(await exists(contextFile), 'the context is removed');
  for (const node of state.nodes) t.false(await exists(`/run/netns/${node.netns}`), `${node.netns} is gone`);
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
  t.false(links.includes(`${state.bridge}:`), `${state.bridge} is gone`);
  const hierarchies = await cgroupHierarchies();
  t.log(`cgroup hierarchies: ${hierarchies.join(' ')}`);
  for (const root of hierarchies) t.false(await exists(join(root, cgroupParent)), `${join(root, cgroupParent)} is gone`);
});
