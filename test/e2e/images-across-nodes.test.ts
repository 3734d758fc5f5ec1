// Images across nodes, end to end on a 3-node cluster of network namespaces with NO registry:
// an image loaded on the manager runs on every node (the workers fetch its blobs from a peer over
// the cluster's mutual TLS), `tsctl image ls` shows the nodes holding it, and a node whose only
// peer for an image does not answer gives up on it in bounded time, goes to the registry (which
// fails here, as there is none), and gets the image once the peer is back.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { Service, Task } from '../../common/resources/types.js';
import { createNetnsCluster, destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { buildBusyboxImage, buildLayeredImage, type BusyboxImage, type LayeredImage } from '../helpers/busybox-image.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const tsctlMain = join(process.cwd(), 'dist', 'cli', 'main.js');
const STACK = 'imgs';
const LAYERED = 'docker.io/tessera/layered:v1';

let cluster: NetnsClusterState;
let client: ApiClient;
let workDir: string;
let busybox: BusyboxImage;
let layered: LayeredImage;
let layeredTarball: string;
/** A node's tsd we stopped with SIGSTOP; continued in after.always whatever happened. */
let stoppedPid: number | undefined;

async function tsctl(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [tsctlMain, '--server', cluster.apiSocket, ...args], { timeout: 120_000, maxBuffer: 4 * 1024 * 1024 });
  return stdout;
}

async function apply(name: string, spec: Partial<Service['spec']>): Promise<void> {
  const object: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: STACK },
    spec: { image: 'busybox', command: ['sleep', '100000'], ...spec },
  };
  await client.apply({ objectsJson: [JSON.stringify(object)] });
}

async function tasksOf(service: string): Promise<Task[]> {
  return (await client.list({ kind: 'Task', stack: STACK, service })).objectsJson.map((j) => JSON.parse(j) as Task);
}

function describe(tasks: Task[]): string {
  return tasks.map((t) => `${t.metadata.name}@${t.nodeName ?? '-'} ${t.status.state} ${t.status.message ?? ''} ${t.status.error ?? ''}`).join('; ');
}

async function running(service: string, count: number): Promise<Task[]> {
  const all = await tasksOf(service);
  const live = all.filter((t) => t.desiredState === 'running' && t.status.state === 'running');
  if (live.length === count) return live;
  throw new Error(`${live.length}/${count} running: ${describe(all)}`);
}

/** The NODES column of `tsctl image ls` for a reference, or undefined when the image is not listed. */
async function nodesColumn(reference: string): Promise<string | undefined> {
  const lines = (await tsctl('image', 'ls')).trim().split('\n');
  const header = lines[0] ?? '';
  if (!/^REFERENCE\s+DIGEST\s+SIZE\s+CREATED\s+NODES$/.test(header.trim())) throw new Error(`unexpected header: ${header}`);
  const row = lines.slice(1).find((line) => line.split(/\s+/)[0] === reference);
  return row?.trim().split(/\s+/).at(-1);
}

async function logOf(nodeName: string): Promise<string> {
  const node = cluster.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`no node ${nodeName}`);
  return readFile(join(node.dataRoot, 'tsd.log'), 'utf8');
}

/** An OCI layout as `image load` takes it, named by the annotation containerd and Docker write. */
async function layoutTarball(layoutDir: string, name: string, file: string): Promise<string> {
  const indexPath = join(layoutDir, 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> };
  for (const entry of index.manifests) entry.annotations = { ...entry.annotations, 'io.containerd.image.name': name };
  await writeFile(indexPath, JSON.stringify(index));
  await run('tar', ['-C', layoutDir, '-cf', file, 'oci-layout', 'index.json', 'blobs']);
  return file;
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-images-across-'));
  busybox = await buildBusyboxImage(join(workDir, 'busybox'));
  layered = await buildLayeredImage(join(workDir, 'layered'), { extraLayers: 2, layerBytes: 512 * 1024, base: busybox, seed: 11 });
  layeredTarball = await layoutTarball(layered.ociLayoutDir, LAYERED, join(workDir, 'layered.tar'));
  const octet = 100 + Math.floor(Math.random() * 100);
  cluster = await createNetnsCluster({
    prefix: `i${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`,
    nodes: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    // A node we freeze on purpose must not be declared down (and its tasks moved) meanwhile.
    nodeDownAfterMs: 120_000,
  });
  client = new ApiClient(cluster.apiSocket);
});

test.after.always(async () => {
  if (stoppedPid !== undefined) process.kill(stoppedPid, 'SIGCONT');
  // before() may have failed before assigning these: the declared types do not hold here.
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
  if (keep && started) await saveClusterLogs(started, keep);
  if (started) await destroyNetnsCluster(started);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('an image loaded on the manager runs on every node, its blobs fetched from a peer, and image ls names all three', async (t) => {
  t.regex(await tsctl('image', 'load', busybox.tarballPath), /docker\.io\/library\/busybox:latest/);
  t.is(await nodesColumn('docker.io/library/busybox:latest'), 'node-1', 'loaded on the manager alone');

  await apply('everywhere', { mode: 'global' });
  const tasks = await eventually('a running task on each node', () => running('everywhere', 3), 120_000);
  t.deepEqual(
    tasks.map((task) => task.nodeName).sort((a, b) => (a ?? '').localeCompare(b ?? '')),
    ['node-1', 'node-2', 'node-3'],
  );

  // The workers got it from a peer, never from the registry (there is none to reach).
  for (const worker of ['node-2', 'node-3']) {
    const log = await logOf(worker);
    t.regex(log, /image docker\.io\/library\/busybox:latest from peers: stored \(node-\d/, `${worker} fetched the image from a peer`);
    t.notRegex(log, /registry-1\.docker\.io|trying its registry/, `${worker} never went to the registry`);
  }
  const nodes = await eventually(
    'image ls to name all three nodes',
    async () => {
      const column = await nodesColumn('docker.io/library/busybox:latest');
      if (column !== 'node-1,node-2,node-3') throw new Error(`NODES is ${column ?? '(not listed)'}`);
      return column;
    },
    30_000,
  );
  t.is(nodes, 'node-1,node-2,node-3');
});

test.serial(
  'a peer that does not answer is given up on in bounded time; the node goes to its registry, then gets the image once the peer is back',
  async (t) => {
    // Put the layered image on node-2 alone: loaded on the manager, run on node-2, removed from the manager.
    await tsctl('image', 'load', layeredTarball);
    await apply('on-two', { image: LAYERED, placement: { constraints: ['node.hostname==node-2'] } });
    await eventually('the layered image running on node-2', () => running('on-two', 1), 120_000);
    await client.delete({ refs: [{ kind: 'Service', stack: STACK, name: 'on-two' }] });
    await eventually(
      'on-two gone',
      async () => {
        const left = await tasksOf('on-two');
        if (left.length > 0) throw new Error(`tasks left: ${describe(left)}`);
        return true;
      },
      60_000,
    );
    await tsctl('image', 'rm', LAYERED);
    await eventually(
      'node-2 the only holder',
      async () => {
        const column = await nodesColumn(LAYERED);
        if (column !== 'node-2') throw new Error(`NODES is ${column ?? '(not listed)'}`);
        return true;
      },
      30_000,
    );

    // node-2's tsd frozen: its session stays open (the manager still names it as the holder), but it answers nothing.
    const node2 = cluster.nodes.find((n) => n.name === 'node-2')!;
    process.kill(node2.pid, 'SIGSTOP');
    stoppedPid = node2.pid;
    try {
      await apply('on-three', { image: LAYERED, placement: { constraints: ['node.hostname==node-3'] } });
      const log = await eventually(
        'node-3 to give up on node-2 and try the registry',
        async () => {
          const text = await logOf('node-3');
          if (
            !/peer node-2 \([^)]*\), blob sha256:[0-9a-f]{64}: no answer within \d+ ms/.test(text) ||
            !/image docker\.io\/tessera\/layered:v1: not fetched from peers/.test(text)
          ) {
            throw new Error('not yet');
          }
          return text;
        },
        90_000,
      );
      t.regex(log, /trying its registry/);
      const failed = await eventually(
        'the task to fail on the registry (there is none)',
        async () => {
          const ended = (await tasksOf('on-three')).filter((task) => task.status.state === 'failed' || task.status.state === 'rejected');
          if (ended.length === 0) throw new Error(describe(await tasksOf('on-three')));
          return ended;
        },
        90_000,
      );
      t.true(failed.every((task) => task.nodeName === 'node-3'));
    } finally {
      process.kill(node2.pid, 'SIGCONT');
      stoppedPid = undefined;
    }
    // The restart policy runs it again; this time node-2 answers.
    const [task] = await eventually('on-three running on node-3', () => running('on-three', 1), 120_000);
    t.is(task?.nodeName, 'node-3');
    t.regex(await logOf('node-3'), /image docker\.io\/tessera\/layered:v1 from peers: stored \(node-2 held it\)/);
    await eventually(
      'image ls to name node-2 and node-3',
      async () => {
        const column = await nodesColumn(LAYERED);
        if (column !== 'node-2,node-3') throw new Error(`NODES is ${column ?? '(not listed)'}`);
        return true;
      },
      30_000,
    );
    t.pass();
  },
);
