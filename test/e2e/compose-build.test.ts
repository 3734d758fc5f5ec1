// Issue 18 end to end on a 3-node netns cluster: `tsctl stack deploy` of a Compose project with two
// build: services (test/fixtures/compose-build: web and api built FROM the busybox image the test
// serves from a registry on the underlay, db running that image as it is), each tier pinned to its
// own node. The real CLI builds both images on the manager serving the call (node-1), pins each
// service to name:tag@digest, and the node that did not build api (node-2) fetches it from its
// peer by digest. web reaches api and api reaches db by service name over the overlay, and web's
// page (published on 8080) proves what the builds put in: the build arg made ENV, the COPY'd
// script, and the file a RUN made in api's first stage, copied into its final one. A second deploy
// with nothing changed takes every step from the cache, gets the same digests and rolls nothing;
// --dry-run lists the builds and runs none. TESSERA_TEST_KEEP_LOG_DIR=DIR keeps each tsd.log.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { Service, Task } from '../../common/resources/types.js';
import { createNetnsCluster, destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const STACK = 'cb';
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsctlMain = join(repoRoot, 'dist', 'cli', 'main.js');
const composeFile = join(repoRoot, 'test', 'fixtures', 'compose-build', 'compose.yaml');
const PAGE = 'web(built by tessera) <- api(built) <- db';
const octet = 100 + Math.floor(Math.random() * 100);

let cluster: NetnsClusterState;
let client: ApiClient;
let workDir: string;
let registry: UnderlayRegistry | undefined;
/** What the first deploy left running, for the second deploy to compare with. */
let firstDeploy: { images: Map<string, string>; taskIds: Map<string, string> } | undefined;

async function tsctl(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [tsctlMain, '--server', cluster.apiSocket, ...args], {
      env: { ...process.env, IMAGE: registry!.image },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 180_000,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`tsctl ${args.join(' ')} failed: ${e.stderr || e.message}${e.stdout ? `\nstdout: ${e.stdout}` : ''}`);
  }
}

async function services(): Promise<Map<string, Service>> {
  const res = await client.list({ kind: 'Service', stack: STACK }, 5000);
  return new Map(res.objectsJson.map((j) => JSON.parse(j) as Service).map((s) => [s.metadata.name, s]));
}

async function running(service: string): Promise<Task> {
  const all = (await client.list({ kind: 'Task', stack: STACK, service }, 5000)).objectsJson.map((j) => JSON.parse(j) as Task);
  const live = all.filter((t) => t.desiredState === 'running' && t.status.state === 'running');
  if (live.length === 1 && live[0]) return live[0];
  throw new Error(
    `${service}: ${live.length}/1 running: ${all.map((t) => `${t.metadata.name}@${t.nodeName ?? '-'} ${t.desiredState}/${t.status.state} ${t.status.message ?? ''} ${t.status.error ?? ''}`).join('; ')}`,
  );
}

async function pageOn(address: string): Promise<string> {
  const { stdout } = await run('nsenter', [`--net=/run/netns/${cluster.switchNetns}`, '/bin/busybox', 'wget', '-q', '-O', '-', `http://${address}:8080/`], {
    timeout: 8000,
  });
  return stdout.trim();
}

async function logOf(nodeName: string): Promise<string> {
  const node = cluster.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`no node ${nodeName}`);
  return readFile(join(node.dataRoot, 'tsd.log'), 'utf8');
}

const pinned = (service: string) =>
  new RegExp(`^docker\\.io/library/${STACK}-${service}:latest@sha256:[0-9a-f]{64}$|^${STACK}-${service}:latest@sha256:[0-9a-f]{64}$`);

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-compose-build-'));
  cluster = await createNetnsCluster({
    prefix: `b${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`,
    nodes: 3,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 10_000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
  });
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
});

test.after.always(async (t) => {
  // before() may have failed before assigning these: the declared types do not hold here.
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  const keep = process.env['TESSERA_TEST_KEEP_LOG_DIR'];
  if (keep && started) await saveClusterLogs(started, keep).catch((error: Error) => t.log(`saving logs: ${error.message}`));
  if (started) await destroyNetnsCluster(started);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('--dry-run lists both builds and runs none', async (t) => {
  t.timeout(120_000);
  const out = await tsctl('stack', 'deploy', '--dry-run', '-c', composeFile, STACK);
  t.regex(out, /^# builds, run one at a time before anything is applied/m);
  t.regex(out, /^# .*\bapi\b.*\.\/api.*\bfinal\b.*\bIMAGE\b/m, out);
  t.regex(out, /^# .*\bweb\b.*\.\/web.*\bIMAGE, GREETING\b/m, out);
  t.notRegex(out, /building on|^build \d\/\d/m, 'nothing built');
  t.deepEqual([...(await services()).keys()], [], 'nothing applied');
  const images = await tsctl('image', 'ls');
  t.notRegex(images, new RegExp(`${STACK}-(web|api)`), 'no image made');
});

test.serial('stack deploy builds web and api on the manager, pins them by digest, and the three tiers reach each other by name', async (t) => {
  t.timeout(300_000);
  const out = await tsctl('stack', 'deploy', '--detach', '-c', composeFile, STACK);
  t.log(
    out
      .split('\n')
      .filter((l) => /^build |built |building on/.test(l.replace(/^\[\w+\] /, '')))
      .join('\n'),
  );
  // Both builds ran, one after the other, on the manager serving the call.
  t.regex(out, /^build 1\/2: service (api|web) /m);
  t.regex(out, /^build 2\/2: service (api|web) /m);
  for (const service of ['web', 'api']) {
    t.regex(out, new RegExp(`^\\[${service}\\] building on node node-1$`, 'm'));
    t.regex(out, new RegExp(`^\\[${service}\\] built sha256:[0-9a-f]{64} \\([1-9]\\d* steps run, \\d+ cached\\)$`, 'm'));
  }
  t.regex(out, /^\[api\] step \d+\/\d+: RUN mkdir -p \/out/m, "api's RUN step ran");
  t.regex(out, /^service\/cb\/web created$/m);

  const specs = await services();
  const images = new Map<string, string>();
  for (const service of ['web', 'api']) {
    const image = specs.get(service)?.spec.image ?? '';
    t.regex(image, pinned(service), `${service} runs its image by digest`);
    const digest = image.slice(image.indexOf('@') + 1);
    t.regex(out, new RegExp(`^\\[${service}\\] built ${digest} `, 'm'), `${service} is pinned to the digest its build printed`);
    images.set(service, image);
  }
  t.is(specs.get('db')?.spec.image, registry!.image, 'db runs the base image as it is');

  const taskIds = new Map<string, string>();
  for (const [service, node] of [
    ['db', 'node-3'],
    ['api', 'node-2'],
    ['web', 'node-1'],
  ] as const) {
    const task = await eventually(`${service} running`, () => running(service), 150_000, 500);
    t.is(task.nodeName, node);
    taskIds.set(service, task.metadata.name);
  }
  // node-2 did not build api: it got the image from the peer that did (there is no registry that has it).
  t.regex(await logOf('node-2'), new RegExp(`image [^ ]*${STACK}-api:latest@sha256:[0-9a-f]{64} from peers: stored \\(node-1`));

  // web's page: ENV from the build arg, the COPY'd script, api's RUN-made tag, db's page, by name over the overlay.
  for (const node of cluster.nodes) {
    const page = await eventually(
      `the page on ${node.name}`,
      async () => {
        const text = await pageOn(node.underlayAddress);
        return text.endsWith('<- db') ? text : undefined;
      },
      60_000,
      500,
    );
    t.is(page, PAGE);
  }
  firstDeploy = { images, taskIds };
});

test.serial('a second deploy with nothing changed builds every step from the cache, keeps the digests and rolls nothing', async (t) => {
  if (!firstDeploy) return t.fail('the first deploy did not finish');
  t.timeout(200_000);
  const out = await tsctl('stack', 'deploy', '--detach', '-c', composeFile, STACK);
  for (const service of ['web', 'api']) {
    const digest = (firstDeploy.images.get(service) ?? '').split('@')[1] ?? '?';
    t.regex(out, new RegExp(`^\\[${service}\\] built ${digest} \\(0 steps run, [1-9]\\d* cached\\)$`, 'm'), `${service}: same digest, nothing run`);
  }
  t.notRegex(out, /^\[\w+\] {2}/m, 'no RUN printed output');
  t.regex(out, /^\[api\] step \d+: cached$/m);
  for (const service of ['db', 'api', 'web']) t.regex(out, new RegExp(`^service/cb/${service} unchanged$`, 'm'));

  const specs = await services();
  for (const service of ['web', 'api']) t.is(specs.get(service)?.spec.image, firstDeploy.images.get(service));
  // Nothing rolled: the same tasks still run, a while after the apply.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  for (const service of ['db', 'api', 'web'])
    t.is((await running(service)).metadata.name, firstDeploy.taskIds.get(service) ?? '(none)', `${service} was not replaced`);
  t.is(await pageOn(cluster.nodes[0]!.underlayAddress), PAGE);
});
