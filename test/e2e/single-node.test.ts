// End to end on one real node: tsd in a network namespace of the test's own, real containers from
// a busybox image the test builds, real nftables port publishing. Serial, because each step
// builds on the last and the node is expensive.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { Task } from '../../common/resources/types.js';
import { ApiClient } from '../../cli/client.js';
import { eventually } from '../helpers/eventually.js';
import { listCgroups, METRICS_PORT, type TestNode } from '../helpers/tsd-node.js';
import { startBusyboxNode, stopBusyboxNode } from '../helpers/busybox-node.js';
import { buildBusyboxImage } from '../helpers/busybox-image.js';

const run = promisify(execFile);

let node: TestNode;
let workDir: string;
let imageRef: string;

/** A one-service manifest in stack e2e running `command` (JSON list), with extra spec lines. */
function serviceManifest(name: string, command: string, specLines = ''): string {
  return `apiVersion: tessera/v1
kind: Service
metadata:
  name: ${name}
  stack: e2e
spec:
  image: ${imageRef}
  command: ${command}
${specLines}`;
}

const TICKER = '["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]';

function manifest(name: string, replicas: number, extra = ''): string {
  return serviceManifest(
    name,
    '["sh", "-c", "mkdir -p /www && echo \\"hello from $(hostname)\\" > /www/index.html && exec httpd -f -p 80 -h /www"]',
    `  replicas: ${replicas}\n  ports:\n    - target: 80\n      published: 8080\n  resources:\n    limits:\n      memory: 32Mi\n${extra}`,
  );
}

async function tasksOf(service: string): Promise<Task[]> {
  const out = await node.tsctl('get', 'tasks', '-o', 'json', '--stack', 'e2e');
  const parsed = JSON.parse(out) as Task[] | { items: Task[] };
  const tasks = Array.isArray(parsed) ? parsed : parsed.items;
  return tasks.filter((t) => t.spec.serviceName === service);
}

async function running(service: string, count: number): Promise<Task[] | undefined> {
  const tasks = (await tasksOf(service)).filter((t) => t.desiredState === 'running' && t.status.state === 'running');
  return tasks.length === count ? tasks : undefined;
}

async function fetchPage(host: string, port: number, path = '/'): Promise<string> {
  // busybox 1.35's `wget -T` crashes here, so the time limit is the caller's.
  const { stdout } = await run('ip', ['netns', 'exec', node.netns, 'busybox', 'wget', '-q', '-O', '-', `http://${host}:${port}${path}`], { timeout: 5000 });
  return stdout;
}

async function writeManifest(name: string, text: string): Promise<string> {
  const path = join(workDir, `${name}.yaml`);
  await writeFile(path, text);
  return path;
}

async function processAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test.before(async () => {
  ({ node, workDir, imageRef } = await startBusyboxNode('tessera-e2e-'));
});

test.after.always(async () => {
  await stopBusyboxNode(node, workDir);
});

test.serial('apply 3 replicas: all run and the published port answers from each of them', async (t) => {
  const path = await writeManifest('web', manifest('web', 3));
  t.regex(await node.tsctl('apply', '-f', path), /service\/e2e\/web created/);
  const tasks = await eventually('3 running tasks', () => running('web', 3), 60_000);
  t.deepEqual(
    tasks.map((x) => x.spec.slot).sort((a, b) => a - b),
    [1, 2, 3],
  );
  t.is(new Set(tasks.map((x) => x.status.address)).size, 3, 'each replica has its own address');

  const seen = new Set<string>();
  for (let i = 0; i < 40 && seen.size < 3; i++) seen.add((await fetchPage('127.0.0.1', 8080)).trim());
  t.is(seen.size, 3, `every replica answered on 127.0.0.1:8080 (saw ${[...seen].join(', ')})`);
  t.regex(await fetchPage(node.gateway, 8080), /^hello from web-/, "the port answers on the node's own address too");

  // Apply again is a no-op.
  t.regex(await node.tsctl('apply', '-f', path), /service\/e2e\/web unchanged/);
});

test.serial('a killed container is replaced within seconds', async (t) => {
  const before = (await running('web', 3))!;
  const victim = before.find((x) => x.spec.slot === 2)!;
  t.true(victim.status.pid !== undefined && (await processAlive(victim.status.pid)));
  process.kill(victim.status.pid!, 'SIGKILL');
  const after = await eventually(
    'a replacement for slot 2',
    async () => {
      const tasks = await running('web', 3);
      return tasks?.some((x) => x.spec.slot === 2 && x.metadata.name !== victim.metadata.name) ? tasks : undefined;
    },
    20_000,
  );
  t.is(after.length, 3);
  const old = (await tasksOf('web')).find((x) => x.metadata.name === victim.metadata.name);
  t.is(old?.status.state, 'failed');
  t.is(old?.status.exitCode, 137);
});

test.serial('scale to 5 and back to 1', async (t) => {
  await node.tsctl('scale', 'e2e/web=5');
  const five = await eventually('5 running tasks', () => running('web', 5), 60_000);
  t.deepEqual(
    five.map((x) => x.spec.slot).sort((a, b) => a - b),
    [1, 2, 3, 4, 5],
  );
  await node.tsctl('scale', 'web=1', '--stack', 'e2e');
  const one = await eventually(
    '1 running task',
    async () => {
      const tasks = await tasksOf('web');
      const live = tasks.filter((x) => x.status.state === 'running');
      return live.length === 1 ? live : undefined;
    },
    60_000,
  );
  t.is(one[0]!.spec.slot, 1);
  const scaledDown = (await tasksOf('web')).filter((x) => x.spec.slot > 1);
  t.deepEqual(
    scaledDown.filter((x) => x.status.state !== 'shutdown'),
    [],
    'scaled-down tasks are shut down (or already collected), not failed',
  );
  t.regex(await fetchPage('127.0.0.1', 8080), /^hello from web-1-/);
});

test.serial('restart policy none leaves an exited task exited', async (t) => {
  const path = await writeManifest('once', serviceManifest('once', '["sh", "-c", "echo bye; exit 3"]', '  restart:\n    condition: none\n'));
  await node.tsctl('apply', '--detach', '-f', path);
  const done = await eventually(
    'the task to fail',
    async () => {
      const tasks = await tasksOf('once');
      return tasks.length === 1 && tasks[0]!.status.state === 'failed' ? tasks[0] : undefined;
    },
    30_000,
  );
  t.is(done.status.exitCode, 3);
  await new Promise((r) => setTimeout(r, 3000));
  const later = await tasksOf('once');
  t.is(later.length, 1, 'no replacement was started');
  t.regex(await node.tsctl('logs', 'e2e/once'), /bye/);
  await node.tsctl('delete', '-f', path);
});

test.serial('a memory hog is OOM-killed and reported as such, tsd unharmed', async (t) => {
  const path = await writeManifest(
    'hog',
    serviceManifest(
      'hog',
      '["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]',
      '  resources:\n    limits:\n      memory: 16Mi\n  restart:\n    condition: none\n',
    ),
  );
  await node.tsctl('apply', '--detach', '-f', path);
  const task = await eventually(
    'the hog to be killed',
    async () => {
      const tasks = await tasksOf('hog');
      return tasks[0]?.status.state === 'failed' ? tasks[0] : undefined;
    },
    30_000,
  );
  t.true(task.status.oomKilled);
  t.regex(task.status.message ?? '', /out of memory/);
  t.is(task.status.exitCode, 137);
  t.regex(await node.tsctl('get', 'nodes'), /ready/, 'tsd still answers');
  await node.tsctl('delete', '-f', path);
});

test.serial('logs -f follows a running task', async (t) => {
  const path = await writeManifest('ticker', serviceManifest('ticker', TICKER));
  await node.tsctl('apply', '-f', path);
  await eventually('the ticker to run', () => running('ticker', 1), 30_000);
  const follower = spawn(process.execPath, [join(process.cwd(), 'dist', 'cli', 'main.js'), '--server', node.server, 'logs', '-f', 'e2e/ticker', '--no-prefix']);
  let output = '';
  follower.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // Until 5 lines came (tsctl's own start takes a while on a loaded machine), then stop following.
  await eventually('5 followed lines', async () => ([...output.matchAll(/^tick \d+$/gm)].length >= 5 ? true : undefined), 20_000).catch(() => undefined);
  follower.kill('SIGINT');
  await new Promise((r) => follower.once('exit', r));
  const ticks = [...output.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
  t.true(ticks.length >= 5, `followed at least 5 lines, got: ${output}`);
  t.deepEqual(
    ticks,
    [...ticks].sort((a, b) => a - b),
    'in order',
  );
  t.is(ticks[ticks.length - 1]! - ticks[0]! + 1, ticks.length, 'no line lost or repeated');
  await node.tsctl('delete', '-f', path);
});

test.serial('an image is pulled from a registry on the node', async (t) => {
  // The registry runs inside the node's namespace, so tsd reaches it on its own loopback.
  const registryDir = join(workDir, 'registry');
  await run('mkdir', ['-p', registryDir]);
  const config = join(workDir, 'registry.yml');
  await writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${registryDir}\nhttp:\n  addr: 127.0.0.1:5000\n`);
  const registry = spawn('nsenter', [`--net=/run/netns/${node.netns}`, '/usr/bin/docker-registry', 'serve', config], { stdio: 'ignore' });
  t.teardown(() => {
    registry.kill('SIGTERM');
  });
  await eventually('the registry to answer', () => fetchPage('127.0.0.1', 5000, '/v2/').then(() => true), 20_000);
  const image = await buildBusyboxImage(join(workDir, 'pushed'));
  await run('nsenter', [
    `--net=/run/netns/${node.netns}`,
    'skopeo',
    'copy',
    '--insecure-policy',
    '--dest-tls-verify=false',
    `oci:${image.ociLayoutDir}:latest`,
    'docker://127.0.0.1:5000/tessera/pulled:1',
  ]);
  const path = await writeManifest(
    'pulled',
    serviceManifest('pulled', '["sleep", "1000"]').replace(`image: ${imageRef}`, 'image: 127.0.0.1:5000/tessera/pulled:1'),
  );
  await node.tsctl('apply', '-f', path);
  await eventually('the pulled image to run', () => running('pulled', 1), 60_000);
  t.regex(await node.tsctl('image', 'ls'), /127\.0\.0\.1:5000\/tessera\/pulled:1/);
  await node.tsctl('delete', '-f', path);
});

test.serial('bad manifests are rejected whole, naming file, line and field', async (t) => {
  const path = await writeManifest(
    'bad',
    `${manifest('good', 1)}---
apiVersion: tessera/v1
kind: Service
metadata:
  name: broken
  stack: e2e
spec:
  image: ${imageRef}
  replicas: three
  colour: blue
`,
  );
  const err = await t.throwsAsync(node.tsctl('apply', '-f', path));
  t.regex(err!.message, /bad\.yaml:\d+:\d+/);
  t.regex(err!.message, /spec\.replicas/);
  t.regex(err!.message, /colour/);
  const services = JSON.parse(await node.tsctl('get', 'services', '-o', 'json')) as unknown[] | { items: unknown[] };
  const names = (Array.isArray(services) ? services : services.items).map((s) => (s as { metadata: { name: string } }).metadata.name);
  t.false(names.includes('good'), 'nothing of the rejected file was applied');
});

test.serial('/metrics serves process, API and task metrics that promtool accepts', async (t) => {
  // The CLI refuses bad manifests before they reach the server; the server must refuse them too.
  const client = new ApiClient(node.server);
  try {
    const err = await t.throwsAsync(
      client.apply({
        objectsJson: [JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name: 'x' }, spec: { image: 'busybox', replicas: -1 } })],
      }),
    );
    t.regex(err!.message, /spec\.replicas/);
  } finally {
    client.close();
  }
  // As Prometheus scrapes: HTTPS with a viewer's PEM files, the node's certificate checked by its
  // IP address (tsd's advertise address, 127.0.0.1 here). No certificate: no connection.
  const pemDir = join(workDir, 'prometheus-tls');
  await node.tsctl('cluster', 'user', 'add', 'prometheus', '--role', 'viewer', '--output', join(workDir, 'prometheus.tessera.json'), '--pem-dir', pemDir);
  const curl = (urlPath: string, ...args: string[]) =>
    run('ip', [
      'netns',
      'exec',
      node.netns,
      'curl',
      '-sS',
      '--fail',
      '--max-time',
      '10',
      '--cacert',
      join(pemDir, 'ca.pem'),
      ...args,
      `https://127.0.0.1:${METRICS_PORT}${urlPath}`,
    ]);
  const clientCert = ['--cert', join(pemDir, 'cert.pem'), '--key', join(pemDir, 'key.pem')];
  await t.throwsAsync(curl('/metrics'), undefined, 'refused without a client certificate');
  const metrics = (await curl('/metrics', ...clientCert)).stdout;
  t.regex(metrics, /^tessera_process_cpu_seconds_total /m);
  t.regex(metrics, /^container_cpu_usage_seconds_total\{[^}]*service="web"[^}]*\} /m, "the web tasks' containers in cAdvisor's names");
  t.regex(metrics, /^container_memory_working_set_bytes\{[^}]*node="node1"[^}]*\} /m);
  t.regex(metrics, /^tessera_api_requests_total\{method="Apply",code="OK"\} \d+/m);
  t.regex(metrics, /^tessera_api_requests_total\{method="Apply",code="INVALID_ARGUMENT"\} \d+/m);
  t.regex(metrics, /^tessera_tasks\{state="running"\} [1-9]/m);
  // Raft and store metrics under etcd's names (a single-member group: it leads; its writes were fsynced).
  t.regex(metrics, /^tessera_server_has_leader 1$/m);
  t.regex(metrics, /^tessera_server_is_leader 1$/m);
  t.regex(metrics, /^tessera_disk_wal_fsync_duration_seconds_count [1-9]/m);
  t.regex(metrics, /^tessera_debugging_mvcc_keys [1-9]/m);
  // Scheduler, controller and dispatcher metrics (docs/prometheus.md): this node's own agent session, its placed tasks, the passes.
  t.regex(metrics, /^tessera_dispatcher_sessions 1$/m);
  t.regex(metrics, /^tessera_scheduler_scheduling_duration_seconds_count [1-9]/m);
  t.regex(metrics, /^tessera_workqueue_adds_total\{name="service"\} [1-9]/m);
  t.regex(metrics, /^tessera_workqueue_work_duration_seconds_count\{name="scheduler"\} [1-9]/m);
  t.regex(metrics, /^tessera_service_rollout_state\{stack="[^"]*",service="[^"]+",state="none"\} [01]$/m);
  t.regex(metrics, /^tessera_dispatcher_status_updates_total [1-9]/m);
  const path = join(workDir, 'metrics.txt');
  await writeFile(path, metrics);
  const { stdout, stderr } = await run('sh', ['-c', `promtool check metrics < ${path}`]).catch((e: Error & { stdout: string; stderr: string }) => e);
  t.is(`${stdout}${stderr}`.trim(), '', `promtool finds no problems, but said: ${JSON.stringify(`${stdout}${stderr}`)}`);
  // Prometheus HTTP SD beside /metrics, behind the same client certificate: this node's metrics endpoint, found from the store.
  const groups = JSON.parse((await curl('/sd/nodes', ...clientCert)).stdout) as Array<{ targets: string[]; labels: Record<string, string> }>;
  t.is(groups.length, 1);
  t.regex(groups[0]!.targets[0]!, new RegExp(`:${METRICS_PORT}$`));
  t.like(groups[0]!.labels, { __meta_tessera_node_role: 'manager', __meta_tessera_node_state: 'ready' });
});

test.serial('kill -9 of tsd leaves containers running; the restarted tsd takes them over', async (t) => {
  const chatter = await writeManifest('chatter', serviceManifest('chatter', TICKER));
  await node.tsctl('apply', '-f', chatter);
  await eventually('chatter to run', () => running('chatter', 1), 30_000);
  await new Promise((r) => setTimeout(r, 600));
  const ticks = async () => [...(await node.tsctl('logs', 'e2e/chatter', '--no-prefix')).matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
  const ticksBefore = await ticks();
  const before = (await running('web', 1))!;
  t.truthy(before, 'web runs with one replica');
  const pid = before[0]!.status.pid!;
  await node.killDaemon();
  t.true(await processAlive(pid), 'the container outlives tsd');
  await node.restartDaemon();
  await new Promise((r) => setTimeout(r, 2000));
  const after = await eventually('web to be running again', () => running('web', 1), 30_000);
  t.is(after[0]!.metadata.name, before[0]!.metadata.name, 'the same task, not a replacement');
  t.is(after[0]!.status.pid, pid, 'the same container');
  const failed = (await tasksOf('web')).filter((x) => x.status.state === 'failed' && Date.parse(x.status.timestamp) > Date.now() - 10_000);
  t.deepEqual(failed, [], 'nothing reported as failed');
  t.regex(await fetchPage('127.0.0.1', 8080), /^hello from web-1-/, 'the published port still answers');
  // The log went on while no tsd was there (the shim owns it), as JSON lines with stream and time.
  const ticksAfter = await ticks();
  t.true(Math.max(...ticksAfter) > Math.max(...ticksBefore) + 5, `logs went on: ${Math.max(...ticksBefore)} → ${Math.max(...ticksAfter)}`);
  t.deepEqual(
    ticksAfter,
    ticksAfter.map((_, i) => ticksAfter[0]! + i),
    'no line lost or repeated',
  );
  const logFiles = await readdir(join(node.dataRoot, 'logs'));
  const raw = await readFile(
    join(
      node.dataRoot,
      'logs',
      logFiles.find((f) => f.startsWith('e2e_chatter'))!,
    ),
    'utf8',
  );
  t.regex(raw.split('\n')[0]!, /^\{"time":"[^"]+","stream":"stdout","seq":1,"log":"tick 1\\n"\}$/, 'the shim numbers its records from 1');
  await node.tsctl('delete', '-f', chatter);
});

test.serial('delete leaves no container, mount, veth or cgroup behind', async (t) => {
  const path = join(workDir, 'web.yaml');
  const pids = (await tasksOf('web')).map((x) => x.status.pid).filter((p): p is number => p !== undefined);
  await node.tsctl('delete', '-f', path);
  await eventually(
    'all web tasks to end',
    async () => {
      const tasks = await tasksOf('web').catch(() => []);
      return tasks.every((x) => ['shutdown', 'failed', 'complete'].includes(x.status.state)) ? true : undefined;
    },
    30_000,
  );
  await eventually(
    'no container processes',
    async () => {
      const alive = await Promise.all(pids.map(processAlive));
      return alive.some(Boolean) ? undefined : true;
    },
    20_000,
  );
  await eventually(
    'no mounts under the data root',
    async () => {
      const mounts = await readFile('/proc/self/mountinfo', 'utf8');
      return mounts.includes(node.dataRoot) ? undefined : true;
    },
    10_000,
  );
  await eventually(
    'no veth on the bridge',
    async () => {
      const links = await node.inNetns('ip', '-o', 'link', 'show', 'master', node.bridge).catch(() => '');
      return links.trim() === '' ? true : undefined;
    },
    10_000,
  );
  await eventually(
    'no container cgroups',
    async () => {
      const cgroups = (await listCgroups(node.cgroupParent)).filter((c) => !c.endsWith(`/${node.cgroupParent}`));
      return cgroups.length === 0 ? true : undefined;
    },
    10_000,
  );
  await t.throwsAsync(fetchPage('127.0.0.1', 8080), undefined, 'the published port is gone');
  t.deepEqual(await readdir(join(node.dataRoot, 'containers')), []);
});

test.serial(
  'with --live-restore, stopping tsd (SIGTERM, as systemd does) leaves containers and their network running; the next tsd takes them over',
  async (t) => {
    const web = await writeManifest('web-live', manifest('web', 1));
    await node.tsctl('apply', '-f', web);
    const before = await eventually('web to run', () => running('web', 1), 30_000);
    const pid = before[0]!.status.pid!;
    await node.killDaemon();
    await node.restartDaemon(['--live-restore']);
    await eventually('web to be taken over', () => running('web', 1), 30_000);
    await node.stopDaemon();
    t.regex(await node.log(), /live restore: this node's containers keep running/);
    t.true(await processAlive(pid), 'the container outlives a stopped tsd');
    t.true((await node.inNetns('ip', '-o', 'link', 'show')).includes(node.bridge), 'the bridge stays');
    t.regex(await fetchPage('127.0.0.1', 8080), /^hello from web-1-/, 'the published port answers with no tsd running');
    await node.restartDaemon();
    const after = await eventually('web to be running again', () => running('web', 1), 30_000);
    t.is(after[0]!.status.pid, pid, 'the same container, taken over');
    t.regex(await fetchPage('127.0.0.1', 8080), /^hello from web-1-/);
    await node.tsctl('delete', '-f', web);
  },
);

test.serial('stopping tsd removes the bridge and the nftables table', async (t) => {
  await node.stopDaemon();
  const links = await node.inNetns('ip', '-o', 'link', 'show');
  t.false(links.includes(node.bridge));
  const tables = await node.inNetns('nft', 'list', 'tables');
  t.false(tables.includes(node.prefix));
  t.deepEqual(
    (await listCgroups(node.cgroupParent)).filter((c) => !c.endsWith(`/${node.cgroupParent}`)),
    [],
  );
});
