// Nothing secret on disk: a real netns cluster of 3 managers (Raft store, a snapshot every 10
// entries) and a worker runs a service that consumes a Secret holding a random marker; it goes
// through writes, snapshots and a restart of each manager. Then every regular file under every
// node's data root (tsd.log, the audit log, the Raft WAL and snapshots, agent state, bundles and
// config.json, container logs, certificates) is read and searched for the marker as text, hex,
// base64 and base64url at its 3 alignments (marker-needles.ts), and likewise for a join token
// minted during the run and for the "TSJT-1-" prefix every token has. Mounts under a data root are
// not searched: a running consumer's secrets tmpfs holds the secret by design, and overlay
// mounts show what their upper directory (searched) holds. Needs `npm run build` (the nodes run dist/).
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { ApiClient } from '../../cli/client.js';
import {
  createNetnsCluster,
  destroyNetnsCluster,
  recordTsd,
  type ClusterNodeState,
  type NetnsClusterOptions,
  type NetnsClusterState,
} from '../../cli/local-cluster/netns-cluster.js';
import { MembersApiClient } from '../../control-plane/raft/host/members-api.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import type { Task } from '../../common/resources/types.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { eventually } from '../helpers/eventually.js';
import { filesUnder } from '../helpers/files-under.js';
import { markerNeedles } from '../helpers/marker-needles.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';

const TSD = fileURLToPath(new URL('../../dist/daemon/main.js', import.meta.url));
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const STACK = 'atrest';

test('marker needles: every alignment of the marker inside base64 data contains one of them', (t) => {
  const marker = `m-${randomBytes(12).toString('hex')}`;
  const needles = markerNeedles(marker).map((n) => n.needle);
  for (let before = 0; before < 6; before++) {
    const data = Buffer.concat([randomBytes(before), Buffer.from(marker), randomBytes(5)]);
    for (const encoded of [data.toString('base64'), data.toString('base64url'), data.toString('hex')]) {
      t.true(
        needles.some((n) => encoded.includes(n)),
        `offset ${before}: ${encoded}`,
      );
    }
  }
});

/** Mount points strictly under `root`, as this mount namespace (the host's, which tsd shares) sees them. */
async function mountsUnder(root: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(`${root}/`));
}

/** Every needle found in a regular file under `root` (mounts under it skipped): "file: encoding". */
async function hitsUnder(root: string, needles: ReadonlyArray<{ what: string; encoding: string; needle: string }>): Promise<string[]> {
  const mounts = await mountsUnder(root);
  const hits: string[] = [];
  for (const file of await filesUnder(root)) {
    if (mounts.some((m) => file.startsWith(`${m}/`))) continue;
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      // Deliberately skipped: a file removed between listing and reading (a WAL segment, a rotated log) holds nothing now.
      continue;
    }
    const text = bytes.toString('latin1');
    for (const n of needles) if (text.includes(n.needle)) hits.push(`${file}: ${n.what} as ${n.encoding}`);
  }
  return hits;
}

/** Starts a node's tsd again with the options it was made with (a manager needs no token: its certificate is on disk). */
async function startTsd(state: NetnsClusterState, node: ClusterNodeState): Promise<void> {
  const args = node.name === 'node-1' ? ['init', ...(node.tsdOptions ?? [])] : ['join', ...(node.tsdOptions ?? []), state.managerAddress];
  const log = await open(join(node.dataRoot, 'tsd.log'), 'a', 0o600);
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${node.netns}`, 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', node.name, process.execPath, TSD, ...args],
    { detached: true, stdio: ['ignore', log.fd, log.fd], env: { ...process.env, PATH: SYSTEM_PATH } },
  );
  await log.close();
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start tsd for ${node.name}`);
  // destroyNetnsCluster stops the tsd whose PID and start time are recorded.
  recordTsd(node, child.pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopTsd(node: ClusterNodeState): Promise<void> {
  if (!alive(node.pid)) return;
  process.kill(node.pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (alive(node.pid) && Date.now() < deadline) await sleep(100);
  if (alive(node.pid)) process.kill(node.pid, 'SIGKILL');
}

async function applyAll(client: ApiClient, objects: object[]): Promise<void> {
  await client.apply({ objectsJson: objects.map((o) => JSON.stringify(o)), dryRun: false, pruneStacks: [] });
}

test('a secret and a join token leave no trace on any node: writes, snapshots and a restart of each manager', async (t) => {
  t.timeout(900_000);
  const octet = 100 + Math.floor(Math.random() * 20);
  const workDir = await mkdtemp(join(tmpdir(), 'tessera-atrest-'));
  const options: NetnsClusterOptions = {
    prefix: `ar${randomBytes(3).toString('hex')}`,
    nodes: 4,
    managers: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 6000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
    daemon: { raftSnapshotEvery: 10 },
    readyTimeoutMs: 120_000,
  };
  let state: NetnsClusterState | undefined;
  let registry: UnderlayRegistry | undefined;
  t.teardown(async () => {
    registry?.stop();
    const keep = process.env['TESSERA_TEST_KEEP_LOG_DIR'];
    if (state && keep) await saveClusterLogs(state, join(keep, 'at-rest-marker'));
    if (state) await destroyNetnsCluster(state);
    await rm(workDir, { recursive: true, force: true });
  });
  state = await createNetnsCluster(options);
  const cluster = state;
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  const client = new ApiClient(cluster.apiSocket, 15_000);
  const members = new MembersApiClient(cluster.apiSocket, LOCAL_INSECURE, 5000);
  t.teardown(() => {
    client.close();
    members.close();
  });

  const marker = `tessera-marker-${randomBytes(16).toString('hex')}`;
  // A join token the managers saw (minted, then never used: the next one replaces it).
  const token = (await client.joinToken('worker')).token;
  const tokenSecret = token.split('-').at(-1)!;
  t.regex(token, /^TSJT-1-/);

  await applyAll(client, [
    { apiVersion: 'tessera/v1', kind: 'Secret', metadata: { name: 'marked', stack: STACK }, spec: { data: Buffer.from(`${marker}\n`).toString('base64') } },
    {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: { name: 'consumer', stack: STACK },
      spec: {
        image: registry.image,
        command: ['sh', '-c', 'wc -c /run/secrets/marked && exec sleep 3600'],
        replicas: 2,
        stopGracePeriodMs: 1000,
        secrets: [{ source: 'marked', target: 'marked' }],
      },
    },
  ]);
  const running = async (): Promise<Task[] | undefined> => {
    const tasks = (await client.list({ kind: 'Task', stack: STACK })).objectsJson.map((j) => JSON.parse(j) as Task);
    const up = tasks.filter((task) => task.status.state === 'running');
    return up.length >= 2 ? up : undefined;
  };
  await eventually('the consumers to run', running, 120_000);

  // Writes enough for several snapshots (one every 10 entries) on every manager.
  for (let i = 0; i < 40; i++) {
    await applyAll(client, [
      { apiVersion: 'tessera/v1', kind: 'Config', metadata: { name: `c${i}`, stack: STACK }, spec: { data: Buffer.from(`n${i}`).toString('base64') } },
    ]);
  }
  const managers = cluster.nodes.filter((n) => n.role === 'manager');
  for (const manager of managers) {
    await stopTsd(manager);
    await startTsd(cluster, manager);
    await eventually(
      `${manager.name} back as a voter`,
      async () => {
        const rows = await members.members();
        return rows.filter((m) => m.role === 'leader' || m.role === 'follower').length === 3 && rows.some((m) => m.id === manager.name && m.applied > 0)
          ? true
          : undefined;
      },
      120_000,
    ).catch(async (err: Error) => {
      t.log((await readFile(join(manager.dataRoot, 'tsd.log'), 'utf8').catch(() => '')).split('\n').slice(-40).join('\n'));
      throw err;
    });
    // More writes after each restart: the restarted manager replays, snapshots and seals again.
    for (let i = 0; i < 12; i++) {
      await applyAll(client, [
        {
          apiVersion: 'tessera/v1',
          kind: 'Config',
          metadata: { name: `${manager.name}-${i}`, stack: STACK },
          spec: { data: Buffer.from(`r${i}`).toString('base64') },
        },
      ]);
    }
  }
  await eventually('the consumers to run after the restarts', running, 120_000);
  for (const manager of managers) {
    const snapshots = (await filesUnder(join(manager.dataRoot, 'raft'))).filter((f) => /snap/.test(f));
    t.true(snapshots.length > 0, `${manager.name} wrote snapshots`);
  }

  const needles = [
    ...markerNeedles(marker).map((n) => ({ what: 'the secret marker', ...n })),
    ...markerNeedles(tokenSecret).map((n) => ({ what: 'the join token secret', ...n })),
    ...markerNeedles('TSJT-1-').map((n) => ({ what: 'a join token', ...n })),
  ];
  const hits: string[] = [];
  for (const node of cluster.nodes) hits.push(...(await hitsUnder(node.dataRoot, needles)));
  t.deepEqual(hits, [], 'no file under any data root holds the marker or a token in any encoding');
  // The check sees what it looks for: the running consumer's tmpfs (skipped above) does hold the marker.
  const consumerFiles = (await Promise.all(cluster.nodes.map(async (n) => (await mountsUnder(n.dataRoot)).filter((m) => m.endsWith('/files'))))).flat();
  t.true(consumerFiles.length > 0, 'a consumer has its secrets tmpfs mounted');
  const seen = (await Promise.all(consumerFiles.map(async (m) => (await filesUnder(m)).map((f) => readFile(f, 'utf8'))))).flat();
  t.true(
    (await Promise.all(seen)).some((text) => text.includes(marker)),
    'the secret reached the consumer (so the search had something to miss)',
  );
});
