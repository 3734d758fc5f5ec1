// tsctl top on a 3-node cluster of network namespaces (2 managers, a worker; images from a real
// registry on the underlay): real containers on every node, read through their cgroups (v1 or v2,
// whichever this host has) and network namespaces. A task burning CPU shows clearly more than
// idle ones; one that fills 48 MiB of /dev/shm shows it against its limit; bytes served through a
// published port show as the server's network I/O; direct writes show as block I/O where the
// kernel accounts them (compared with the cgroup's own counters, read here); per-node totals;
// the follower manager forwards to the leader; a node whose tsd is stopped (no answer) or killed
// (no session) is a notice, and the other nodes' rows still come.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ApiClient } from '../../cli/client.js';
import type { Service, Task } from '../../common/resources/types.js';
import type { TaskTop__Output } from '../../proto/gen/tessera/api/v1/TaskTop.js';
import { detectCgroupMode } from '../../agent/runtime/cgroups/detect.js';
import { createNetnsCluster, destroyNetnsCluster, type NetnsClusterOptions, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const STACK = 'tp';
const WEB_PORT = 18080;

let cluster: NetnsClusterState;
let client: ApiClient;
let workDir: string;
let registry: UnderlayRegistry | undefined;
let image: string;
/** A tsd the test stopped (SIGSTOP): killed in the clean-up if a test failed before it did. */
let stoppedPid: number | undefined;
const octet = 100 + Math.floor(Math.random() * 100);
const registryHost = `172.31.${octet}.254:5000`;

function service(name: string, spec: Partial<Service['spec']>): string {
  const object: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name, stack: STACK },
    spec: { image, command: ['sleep', '100000'], stopGracePeriodMs: 300, ...spec },
  };
  return JSON.stringify(object);
}

async function runningTasks(): Promise<Task[]> {
  const res = await client.list({ kind: 'Task', stack: STACK });
  return res.objectsJson.map((j) => JSON.parse(j) as Task).filter((t) => t.desiredState === 'running' && t.status.state === 'running');
}

function rowOf(rows: readonly TaskTop__Output[], service: string, node?: string): TaskTop__Output {
  const row = rows.find((r) => r.service === service && (node === undefined || r.node === node));
  if (row === undefined) throw new Error(`no row for ${service}${node ? ` on ${node}` : ''}: ${rows.map((r) => `${r.task}@${r.node}`).join(', ')}`);
  return row;
}

async function tsctl(server: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [join(process.cwd(), 'dist/cli/main.js'), '--server', server, ...args], { timeout: 60_000 });
}

/** The block I/O the kernel counted for a task's container, read from its cgroup directly. */
async function kernelBlockIo(task: Task): Promise<{ read: number; write: number; where: string }> {
  const pid = task.status.pid;
  if (pid === undefined) throw new Error(`task ${task.metadata.name} has no pid`);
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  if ((await detectCgroupMode('/sys/fs/cgroup')) === 'v2') {
    const path = lines.find((l) => l.startsWith('0::'))?.slice(3) ?? '';
    const file = join('/sys/fs/cgroup', path, 'io.stat');
    const text = await readFile(file, 'utf8').catch(() => '');
    const sum = (key: string) => [...text.matchAll(new RegExp(`\\b${key}=(\\d+)`, 'g'))].reduce((s, m) => s + Number(m[1]), 0);
    return { read: sum('rbytes'), write: sum('wbytes'), where: file };
  }
  const path = lines.find((l) => /^\d+:([^:]*,)?blkio(,[^:]*)?:/.test(l))?.split(':')[2] ?? '';
  const file = join('/sys/fs/cgroup/blkio', path, 'blkio.throttle.io_service_bytes_recursive');
  const text = await readFile(file, 'utf8').catch(() => '');
  const sum = (op: string) => [...text.matchAll(new RegExp(`^\\d+:\\d+ ${op} (\\d+)$`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);
  return { read: sum('Read'), write: sum('Write'), where: file };
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-top-'));
  const prefix = `t${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  const options: NetnsClusterOptions = {
    prefix,
    nodes: 3,
    managers: 2,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    // Long enough that a stopped or killed node's tasks are still "running" in the store while we ask.
    nodeDownAfterMs: 60_000,
    insecureRegistries: [registryHost],
  };
  cluster = await createNetnsCluster(options);
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  image = registry.image;
});

test.after.always(async () => {
  if (stoppedPid !== undefined) {
    try {
      process.kill(stoppedPid, 'SIGKILL');
    } catch {
      // Already gone: nothing to clean.
    }
  }
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
  if (keep && started) await saveClusterLogs(started, keep);
  if (started) await destroyNetnsCluster(started);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('every node reports its running tasks: CPU of a burner, memory of a filler against its limit, pids', async (t) => {
  const on = (node: string) => ({ constraints: [`node.hostname==${node}`] });
  await client.apply({
    objectsJson: [
      service('idle', { mode: 'global' }),
      service('burn', { command: ['sh', '-c', 'while :; do :; done'], placement: on('node-2') }),
      service('mem', {
        command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 && exec sleep 100000'],
        resources: { limits: { memory: 256 * MiB } },
        placement: on('node-1'),
      }),
      service('io', {
        // Direct writes reach the disk from the task itself, so the kernel charges them to its cgroup.
        command: ['sh', '-c', 'dd if=/dev/zero of=/io.bin bs=1M count=16 oflag=direct && exec sleep 100000'],
        placement: on('node-3'),
      }),
      service('web', {
        command: ['sh', '-c', 'mkdir -p /www && dd if=/dev/zero of=/www/big bs=1k count=1024 && exec httpd -f -p 80 -h /www'],
        ports: [{ target: 80, published: WEB_PORT }],
        placement: on('node-3'),
      }),
    ],
  });
  const tasks = await eventually(
    '7 tasks running',
    async () => {
      const live = await runningTasks();
      if (live.length !== 7) throw new Error(`${live.length}/7 running: ${live.map((x) => `${x.metadata.name}@${x.nodeName ?? '-'}`).join(', ')}`);
      return live;
    },
    120_000,
  );
  // Let the filler finish and the burner run a moment.
  await new Promise((r) => setTimeout(r, 1500));
  const response = await client.top({});
  t.deepEqual(response.notices, []);
  t.deepEqual(response.tasks.map((r) => r.task).sort(), tasks.map((x) => x.metadata.name).sort(), 'one row per running task');
  t.deepEqual([...new Set(response.tasks.map((r) => r.node))].sort(), ['node-1', 'node-2', 'node-3']);
  for (const row of response.tasks)
    t.is<string | undefined, string | undefined>(row.node, tasks.find((x) => x.metadata.name === row.task)?.nodeName, `${row.task} on its own node`);
  const burn = rowOf(response.tasks, 'burn');
  const idle = response.tasks.filter((r) => r.service === 'idle');
  t.log(`burn ${burn.cpuPercent.toFixed(1)}%, idle ${idle.map((r) => `${r.node} ${r.cpuPercent.toFixed(2)}%`).join(', ')}`);
  // On 2 shared cores the burner may not get a whole one; it is still far above a sleeping task.
  t.true(burn.cpuPercent >= 10, `burner at ${burn.cpuPercent}%`);
  for (const r of idle) t.true(r.cpuPercent < 5 && r.cpuPercent * 4 < burn.cpuPercent, `idle ${r.task} at ${r.cpuPercent}%`);
  t.true(burn.cpuUsageNanos > 0);
  const mem = rowOf(response.tasks, 'mem');
  t.log(
    `mem ${(mem.memoryUsageBytes / MiB).toFixed(1)} MiB of ${(mem.memoryLimitBytes / MiB).toFixed(0)} MiB; idle ${idle.map((r) => (r.memoryUsageBytes / MiB).toFixed(1)).join(', ')} MiB`,
  );
  t.is(mem.memoryLimitBytes, 256 * MiB);
  t.true(mem.memoryUsageBytes >= 48 * MiB, `48 MiB in /dev/shm counts: ${mem.memoryUsageBytes}`);
  for (const r of idle) {
    t.is(r.memoryLimitBytes, 0, 'no limit');
    t.true(r.memoryUsageBytes < 16 * MiB, `idle ${r.task}: ${r.memoryUsageBytes}`);
    t.true(r.pids >= 1);
  }
  t.true(burn.pids >= 1);
});

test.serial('bytes served through a published port show as the server task’s network I/O', async (t) => {
  const before = rowOf((await client.top({ stack: STACK, service: 'web' })).tasks, 'web');
  const node3 = cluster.nodes[2]!;
  for (let i = 0; i < 3; i++) {
    const { stdout } = await run(
      'nsenter',
      [`--net=/run/netns/${cluster.switchNetns}`, '/bin/busybox', 'wget', '-q', '-O', '-', `http://${node3.underlayAddress}:${WEB_PORT}/big`],
      { timeout: 20_000, encoding: 'buffer', maxBuffer: 4 * MiB },
    );
    t.is(stdout.length, MiB);
  }
  const response = await client.top({ stack: STACK, service: 'web' });
  t.deepEqual(
    response.tasks.map((r) => r.service),
    ['web'],
    'only the service asked for',
  );
  const after = rowOf(response.tasks, 'web');
  t.log(`web: rx ${before.networkRxBytes} → ${after.networkRxBytes}, tx ${before.networkTxBytes} → ${after.networkTxBytes}`);
  t.true(after.networkTxBytes - before.networkTxBytes >= 3 * MiB, 'three 1 MiB bodies sent');
  t.true(after.networkRxBytes > before.networkRxBytes, 'the requests and acks received');
});

test.serial('block I/O is what the kernel accounted to the task’s cgroup (and the direct writes, where it accounts them)', async (t) => {
  const io = (await runningTasks()).find((x) => x.spec.serviceName === 'io')!;
  const kernel = await kernelBlockIo(io);
  const row = rowOf((await client.top({ stack: STACK, service: 'io' })).tasks, 'io');
  const kernelAfter = await kernelBlockIo(io);
  t.log(`io: top read ${row.blockReadBytes} write ${row.blockWriteBytes}; kernel (${kernel.where}) write ${kernel.write}..${kernelAfter.write}`);
  t.true(row.blockWriteBytes >= kernel.write && row.blockWriteBytes <= kernelAfter.write, 'the cgroup’s own write counter');
  t.true(row.blockReadBytes >= kernel.read && row.blockReadBytes <= kernelAfter.read, 'the cgroup’s own read counter');
  if (kernel.write === 0) t.log('this kernel/file system accounted none of the direct writes to the container’s cgroup: top shows 0 as the kernel does');
  else t.true(row.blockWriteBytes >= 16 * MiB, '16 MiB written with O_DIRECT');
});

test.serial('per-node totals beside capacity, one node alone, and the follower manager forwards to the leader', async (t) => {
  const all = await client.top({});
  const totals = await client.top({ byNode: true });
  t.deepEqual(totals.notices, []);
  t.deepEqual(
    totals.nodes.map((n) => [n.node, n.state, n.tasks]),
    ['node-1', 'node-2', 'node-3'].map((n) => [n, 'ready', all.tasks.filter((r) => r.node === n).length]),
  );
  for (const n of totals.nodes) {
    t.true(n.nanoCpus > 0 && n.memoryBytes > 0, 'capacity from the Node object');
    t.true(n.pids >= n.tasks);
  }
  const node2 = totals.nodes.find((n) => n.node === 'node-2')!;
  t.true(node2.cpuPercent >= 10, 'node-2 carries the burner');
  const one = await client.top({ byNode: true, node: 'node-3' });
  t.deepEqual(
    one.nodes.map((n) => n.node),
    ['node-3'],
  );
  await t.throwsAsync(client.top({ byNode: true, node: 'node-9' }), { message: /node "node-9" not found/ });
  await t.throwsAsync(client.top({ stack: STACK, service: 'nosuch' }), { message: /service "nosuch" not found/ });

  // node-2 is a manager too: its API forwards Top to the leader, which holds the sessions.
  const follower = cluster.nodes[1]!;
  const viaFollower = new ApiClient(follower.apiSocket!);
  t.teardown(() => viaFollower.close());
  const forwarded = await viaFollower.top({});
  t.deepEqual(forwarded.notices, []);
  t.deepEqual(forwarded.tasks.map((r) => r.task).sort(), all.tasks.map((r) => r.task).sort());

  // tsctl itself: the table, -o json and the per-node table.
  const table = await tsctl(cluster.apiSocket, 'top');
  t.log(`tsctl top:\n${table.stdout}`);
  t.regex(table.stdout.split('\n')[0] ?? '', /^TASK\s+NODE\s+CPU %\s+MEM USAGE \/ LIMIT/);
  t.regex(table.stdout, /^tp_mem\.1\.\S+\s+node-1\s+\d+\.\d\d%\s+\d+\.\d MiB \/ 256\.0 MiB\s/m);
  t.is(table.stderr, '');
  const json = JSON.parse((await tsctl(cluster.apiSocket, 'top', `${STACK}/burn`, '-o', 'json')).stdout) as TaskTop__Output[];
  t.deepEqual(
    json.map((r) => [r.service, r.node]),
    [['burn', 'node-2']],
  );
  const nodes = await tsctl(follower.apiSocket!, 'top', 'node');
  t.log(`tsctl top node (through the follower):\n${nodes.stdout}`);
  t.deepEqual(
    nodes.stdout
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/).slice(0, 2)),
    [
      ['node-1', 'ready'],
      ['node-2', 'ready'],
      ['node-3', 'ready'],
    ],
  );
});

test.serial('a node that does not answer, then one killed: a notice naming it, and the other nodes’ rows', async (t) => {
  const node3 = cluster.nodes[2]!;
  const onNode3 = (await runningTasks()).filter((x) => x.nodeName === 'node-3').length;
  t.true(onNode3 >= 3);
  // Stopped, its session stays open: the leader asks and waits its bounded time.
  process.kill(node3.pid, 'SIGSTOP');
  stoppedPid = node3.pid;
  const silent = await client.top({});
  t.log(silent.notices.join('\n'));
  t.deepEqual(silent.notices, ['node node-3: did not answer within 5 s; its tasks are not shown']);
  t.deepEqual([...new Set(silent.tasks.map((r) => r.node))].sort(), ['node-1', 'node-2']);
  t.true(rowOf(silent.tasks, 'burn').cpuPercent >= 10);

  process.kill(node3.pid, 'SIGKILL');
  stoppedPid = undefined;
  const afterKill = await eventually(
    'the leader to see node-3’s session end',
    async () => {
      const response = await client.top({});
      return response.notices.some((n) => /^node node-3: (no session with this manager|its session with this manager ended)/.test(n)) ? response : undefined;
    },
    30_000,
  );
  t.deepEqual(afterKill.notices.length, 1, afterKill.notices.join('\n'));
  t.deepEqual([...new Set(afterKill.tasks.map((r) => r.node))].sort(), ['node-1', 'node-2']);
  const cli = await tsctl(cluster.apiSocket, 'top');
  t.regex(cli.stderr, /^tsctl top: node node-3: .*its tasks are not shown$/m);
  t.regex(cli.stdout, /node-1/);
  t.regex(cli.stdout, /node-2/);
  t.notRegex(cli.stdout, /node-3/);
});
