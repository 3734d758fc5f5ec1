// Issue 6 end to end on a 3-node netns cluster: a Compose stack of three tiers (web → api → db,
// busybox httpd stand-ins, test/fixtures/three-tier) deployed with `tsctl stack deploy`. Each tier
// is pinned to its own node, so every hop resolves a service name and crosses the overlay. db's
// page carries its secret, api's its config; web publishes 8080 on every node. Then a rolling
// update (start-first) is followed event by event through the API's Watch to show there is never
// a moment without a healthy web replica, and an update whose health check cannot pass rolls back
// by itself. TESSERA_TEST_KEEP_LOG_DIR=DIR keeps each node's tsd.log there.
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { Service, Task } from '../../common/resources/types.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { createNetnsCluster, destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';
import { watchServiceTasks } from '../helpers/task-watch.js';

const run = promisify(execFile);
const STACK = 'tt';
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsctlMain = join(repoRoot, 'dist', 'cli', 'main.js');

let cluster: NetnsClusterState;
let client: ApiClient;
let workDir: string;
let stackDir: string;
let registry: UnderlayRegistry | undefined;
const secretMarker = `s3cret-${randomBytes(6).toString('hex')}`;
const octet = 100 + Math.floor(Math.random() * 100);

async function tsctl(env: Record<string, string>, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [tsctlMain, '--server', cluster.apiSocket, ...args], {
      env: { ...process.env, ...env },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 240_000,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`tsctl ${args.join(' ')} failed: ${e.stderr || e.message}${e.stdout ? `\nstdout: ${e.stdout}` : ''}`);
  }
}

function deploy(version: string, ...extraFiles: string[]): Promise<string> {
  const files = ['compose.yaml', ...extraFiles].flatMap((f) => ['-c', join(stackDir, f)]);
  return tsctl({ IMAGE: registry!.image, VERSION: version }, 'stack', 'deploy', '--detach', ...files, STACK);
}

async function tasksOf(service: string): Promise<Task[]> {
  return (await client.list({ kind: 'Task', stack: STACK, service }, 5000)).objectsJson.map((j) => JSON.parse(j) as Task);
}

async function serviceNamed(name: string): Promise<Service> {
  const res = await client.list({ kind: 'Service', stack: STACK }, 5000);
  const found = res.objectsJson.map((j) => JSON.parse(j) as Service).find((s) => s.metadata.name === name);
  if (!found) throw new Error(`service ${name} not found`);
  return found;
}

const healthyRunning = (t: Task): boolean => t.desiredState === 'running' && t.status.state === 'running' && t.status.health === 'healthy';

async function healthy(service: string, count: number, version?: string): Promise<Task[]> {
  const all = await tasksOf(service);
  const good = all.filter((t) => healthyRunning(t) && (version === undefined || t.spec.spec.env?.['VERSION'] === version));
  if (good.length === count) return good;
  throw new Error(
    `${service}: ${good.length}/${count} healthy${version ? ` at v${version}` : ''}: ${all.map((t) => `${t.metadata.name}@${t.nodeName ?? '-'} ${t.desiredState}/${t.status.state}/${t.status.health ?? '-'} ${t.status.message ?? ''} ${t.status.error ?? ''}`).join('; ')}`,
  );
}

async function pageOn(address: string): Promise<string> {
  const { stdout } = await run('nsenter', [`--net=/run/netns/${cluster.switchNetns}`, '/bin/busybox', 'wget', '-q', '-O', '-', `http://${address}:8080/`], {
    timeout: 8000,
  });
  return stdout.trim();
}

/** Follows web's tasks from now on and records the fewest healthy running ones at any revision. */
async function followHealthyWeb(): Promise<{ fewest: () => number; stop: () => void }> {
  let fewest = Infinity;
  const watch = await watchServiceTasks(cluster.apiSocket, client, { stack: STACK, service: 'web' }, (tasks) => {
    fewest = Math.min(fewest, tasks.filter(healthyRunning).length);
  });
  return { fewest: () => (watch.broken() ? -1 : fewest), stop: () => watch.stop() };
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-3tier-'));
  stackDir = join(workDir, 'stack');
  // The fixture is copied so the secret file, written per run, never lands in the repository.
  await cp(join(repoRoot, 'test', 'fixtures', 'three-tier'), stackDir, { recursive: true });
  await writeFile(join(stackDir, 'db_password.txt'), `${secretMarker}\n`);
  const prefix = `t${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  cluster = await createNetnsCluster({
    prefix,
    nodes: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 3000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
  });
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
});

test.after.always(async () => {
  // before() may have failed before assigning these: the declared types do not hold here.
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  const keep = process.env['TESSERA_TEST_KEEP_LOG_DIR'];
  if (keep && started) await saveClusterLogs(started, keep);
  if (started) await destroyNetnsCluster(started);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('three tiers on three nodes reach each other by name, with a secret and a config', async (t) => {
  await deploy('1');
  const [db] = await eventually('db healthy', () => healthy('db', 1), 120_000, 500);
  const api = await eventually('api healthy', () => healthy('api', 2), 120_000, 500);
  const web = await eventually('web healthy', () => healthy('web', 2), 120_000, 500);
  t.is(db!.nodeName, 'node-3');
  t.deepEqual(
    api.map((x) => x.nodeName),
    ['node-2', 'node-2'],
  );
  t.deepEqual(
    web.map((x) => x.nodeName),
    ['node-1', 'node-1'],
  );
  // depends_on service_healthy: api started only after db was healthy, web after api.
  const started = (ts: Task[]) => Math.min(...ts.map((x) => Date.parse(x.status.startedAt ?? x.status.timestamp)));
  t.true(started(api) >= started([db!]), 'api started after db');
  t.true(started(web) >= started(api), 'web started after api');

  // The published port answers on every node, also on node-3 and node-2 that run no web replica.
  for (const node of cluster.nodes) {
    const page = await eventually(
      `the page on ${node.name}`,
      async () => {
        const text = await pageOn(node.underlayAddress);
        return text.includes('db:') ? text : undefined;
      },
      60_000,
      500,
    );
    t.is(page, `web v1 <- api(hello-from-config) <- db:${secretMarker}`);
  }
});

test.serial('a rolling update (start-first) never leaves web without a healthy replica', async (t) => {
  const follow = await followHealthyWeb();
  try {
    await deploy('2');
    await eventually('web healthy at v2', () => healthy('web', 2, '2'), 120_000, 500);
    await eventually(
      'the rollout to complete',
      async () => {
        const s = await serviceNamed('web');
        const state = s.status?.update?.state;
        if (state !== 'completed') {
          const all = await tasksOf('web');
          throw new Error(
            `update state ${state ?? '-'}: ${JSON.stringify(s.status?.update)}; tasks ${all.map((x) => `${x.metadata.name} v${x.spec.spec.env?.['VERSION']} gen${x.spec.serviceGeneration} ${x.desiredState}/${x.status.state}/${x.status.health ?? '-'}`).join('; ')}`,
          );
        }
        return state;
      },
      60_000,
      500,
    );
    t.true(follow.fewest() >= 1, `fewest healthy web replicas during the update: ${follow.fewest()}`);
  } finally {
    follow.stop();
  }
  t.regex(await pageOn(cluster.nodes[1]!.underlayAddress), /^web v2 <- /);
});

test.serial('an update whose health check fails rolls back by itself', async (t) => {
  const follow = await followHealthyWeb();
  try {
    await deploy('3', 'broken-health.yaml');
    const service = await eventually(
      'the automatic rollback',
      async () => {
        const s = await serviceNamed('web');
        if (s.status?.update?.state !== 'rollback_completed')
          throw new Error(`update state ${s.status?.update?.state ?? '-'}: ${s.status?.update?.message ?? ''}`);
        return s;
      },
      180_000,
      500,
    );
    t.truthy(service.status?.update?.rollbackReason, 'the rollback says why');
    const web = await eventually('web healthy again at v2', () => healthy('web', 2, '2'), 60_000, 500);
    t.deepEqual(
      web.map((x) => x.spec.spec.healthcheck?.test),
      [
        ['CMD-SHELL', "grep -q 'api(' /www/index.html"],
        ['CMD-SHELL', "grep -q 'api(' /www/index.html"],
      ],
    );
    t.true(follow.fewest() >= 1, `fewest healthy web replicas during the failed update: ${follow.fewest()}`);
  } finally {
    follow.stop();
  }
  t.regex(await pageOn(cluster.nodes[0]!.underlayAddress), /^web v2 <- api\(hello-from-config\) <- db:/);
});
