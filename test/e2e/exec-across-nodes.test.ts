// tsctl exec on a 3-node cluster of network namespaces (node-1 and node-2 managers, node-3 a
// worker), with real tsd processes, containers and the tsctl binary: a task on node-3 reached
// through the leader and through the follower (which forwards to the leader), the exit code,
// stdout and stderr apart, stdin piped through (more than the flow-control window), a command that
// cannot be run, a terminal whose size follows a resize (a pseudo-terminal on the test's side,
// driven by test/helpers/pty-run.py), Ctrl-C killing the process, the audit entry, and node-3's
// tsd killed mid-exec ending the call with an error instead of a hang.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ApiClient } from '../../cli/client.js';
import type { Service, Task } from '../../common/resources/types.js';
import { createNetnsCluster, destroyNetnsCluster, type NetnsClusterState } from '../../cli/local-cluster/netns-cluster.js';
import { MembersApiClient } from '../../control-plane/raft/host/members-api.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { saveClusterLogs } from '../helpers/cluster-logs.js';
import { startUnderlayRegistry, type UnderlayRegistry } from '../helpers/underlay-registry.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const TSCTL = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const PTY_RUN = fileURLToPath(new URL('../helpers/pty-run.py', import.meta.url));

let cluster: NetnsClusterState;
let client: ApiClient;
let workDir: string;
let registry: UnderlayRegistry | undefined;
let task: Task;
/** The API sockets of the Raft leader and of the other manager. */
let leaderSocket: string;
let followerSocket: string;
const octet = 100 + Math.floor(Math.random() * 100);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs tsctl to its end (never a timed assertion: the timeout only keeps a hang from stalling the suite). */
function tsctl(server: string, args: string[], input?: Buffer): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSCTL, '--server', server, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('latin1'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Runs pty-run.py with `script`; its JSON answer. */
function ptyRun(script: object): Promise<{ exit: number; output: string; failed: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [PTY_RUN], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out) as { exit: number; output: string; failed: unknown });
      } catch {
        reject(new Error(`pty-run.py said: ${out}`));
      }
    });
    child.stdin.end(JSON.stringify(script));
  });
}

test.before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tessera-exec-'));
  const prefix = `x${process.pid.toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  cluster = await createNetnsCluster({
    prefix,
    nodes: 3,
    managers: 2,
    baseDir: join(workDir, 'cluster'),
    underlayOctet: octet,
    hostBridge: false,
    heartbeatMs: 300,
    nodeDownAfterMs: 4000,
    insecureRegistries: [`172.31.${octet}.254:5000`],
  });
  client = new ApiClient(cluster.apiSocket);
  registry = await startUnderlayRegistry(cluster, octet, workDir);
  const service: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'box', stack: 'ex' },
    spec: { image: registry.image, command: ['sleep', '100000'], placement: { constraints: ['node.hostname==node-3'] } },
  };
  await client.apply({ objectsJson: [JSON.stringify(service)] });
  task = await eventually(
    'the task running on node-3',
    async () => {
      const tasks = (await client.list({ kind: 'Task', stack: 'ex', service: 'box' })).objectsJson.map((j) => JSON.parse(j) as Task);
      const running = tasks.find((t) => t.status.state === 'running' && t.nodeName === 'node-3');
      if (!running) throw new Error(tasks.map((t) => `${t.metadata.name}@${t.nodeName ?? '-'} ${t.status.state}`).join('; ') || 'no task');
      return running;
    },
    120_000,
  );
  const members = new MembersApiClient(cluster.apiSocket, LOCAL_INSECURE);
  try {
    const leader = (await members.members()).find((m) => m.role === 'leader')?.id;
    const sockets = new Map(cluster.nodes.filter((n) => n.apiSocket !== undefined).map((n) => [n.name, n.apiSocket!]));
    leaderSocket = sockets.get(leader ?? '') ?? cluster.apiSocket;
    followerSocket = [...sockets.values()].find((s) => s !== leaderSocket)!;
  } finally {
    members.close();
  }
  const leaderNode = cluster.nodes.find((n) => n.apiSocket === leaderSocket)!.name;
  const here: Service = {
    ...service,
    metadata: { name: 'here', stack: 'ex' },
    spec: { ...service.spec, placement: { constraints: [`node.hostname==${leaderNode}`] } },
  };
  await client.apply({ objectsJson: [JSON.stringify(here)] });
});

test.after.always(async () => {
  const started = cluster as NetnsClusterState | undefined;
  (client as ApiClient | undefined)?.close();
  const keep = process.env.TESSERA_TEST_KEEP_LOG_DIR;
  if (keep && started) await saveClusterLogs(started, keep);
  if (started) await destroyNetnsCluster(started);
  registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test.serial('exec on a worker node through the leader: stdout, stderr and the exit code', async (t) => {
  const ran = await tsctl(leaderSocket, ['exec', task.metadata.name, '--', 'sh', '-c', 'echo out; echo err >&2; hostname; exit 3']);
  t.is(ran.code, 3, ran.stderr);
  // stdout and stderr stay apart; the process runs in the container (its hostname, not the node's).
  const [first, hostname, rest] = ran.stdout.split('\n');
  t.is(first, 'out');
  t.not(hostname, 'node-3');
  t.true(hostname !== undefined && hostname !== '');
  t.is(rest, '');
  t.is(ran.stderr, 'err\n');
});

test.serial('exec through the follower manager is forwarded to the leader', async (t) => {
  const ran = await tsctl(followerSocket, [
    'exec',
    '--stack',
    'ex',
    '-e',
    'GREETING=hello there',
    task.metadata.name,
    '--',
    'sh',
    '-c',
    'cat /proc/1/cmdline; echo "$GREETING"',
  ]);
  t.is(ran.code, 0, ran.stderr);
  // The container's own process 1, and the variable given with -e.
  t.is(ran.stdout, 'sleep\u0000100000\u0000hello there\n');
});

test.serial("exec into a task on the leader's own node goes through its own agent's session too", async (t) => {
  const local = await eventually(
    'the task running on the leader',
    async () => {
      const tasks = (await client.list({ kind: 'Task', stack: 'ex', service: 'here' })).objectsJson.map((j) => JSON.parse(j) as Task);
      return tasks.find((x) => x.status.state === 'running');
    },
    120_000,
  );
  const ran = await tsctl(followerSocket, ['exec', local.metadata.name, '--', 'sh', '-c', 'exit 0']);
  t.is(ran.code, 0, ran.stderr);
  t.is(local.nodeName, cluster.nodes.find((n) => n.apiSocket === leaderSocket)?.name);
});

test.serial('stdin is piped through, beyond the flow-control window, and its end reaches the process', async (t) => {
  // 1 MiB of random bytes: four times the window per direction, so credit must flow both ways.
  const input = randomBytes(1024 * 1024);
  const ran = await tsctl(leaderSocket, ['exec', '-i', task.metadata.name, '--', 'sha256sum'], input);
  t.is(ran.code, 0, ran.stderr);
  t.is(ran.stdout.split(' ')[0], createHash('sha256').update(input).digest('hex'));
  const echoed = await tsctl(followerSocket, ['exec', '-i', task.metadata.name, '--', 'cat'], input);
  t.is(echoed.code, 0, echoed.stderr);
  t.true(Buffer.from(echoed.stdout, 'latin1').equals(input), `cat gave back ${echoed.stdout.length} bytes of ${input.length}`);
});

test.serial('a command that cannot be run exits 127 or 126 with a message; an unknown task is an error', async (t) => {
  const missing = await tsctl(leaderSocket, ['exec', task.metadata.name, '--', 'no-such-program']);
  t.is(missing.code, 127);
  t.regex(missing.stderr, /tsctl exec: .*no-such-program|ENOENT/);
  const notExecutable = await tsctl(leaderSocket, ['exec', task.metadata.name, '--', '/etc/hostname']);
  t.is(notExecutable.code, 126, notExecutable.stderr);
  const unknown = await tsctl(leaderSocket, ['exec', 'ex_box.9.nosuchtask', '--', 'true']);
  t.is(unknown.code, 125);
  t.regex(unknown.stderr, /no task "ex_box\.9\.nosuchtask"/);
  const noTerminal = await tsctl(leaderSocket, ['exec', '-it', task.metadata.name, '--', 'sh']);
  t.not(noTerminal.code, 0);
  t.regex(noTerminal.stderr, /the input device is not a TTY/);
});

test.serial("a terminal: the size is the client terminal's and follows a resize; the exit code comes back", async (t) => {
  const script = {
    argv: [process.execPath, TSCTL, '--server', followerSocket, 'exec', '-it', task.metadata.name, '--', 'sh'],
    size: [24, 80],
    steps: [
      { send: 'stty size\r' },
      { expect: '24 80' },
      { resize: [40, 123] },
      // stty asks the terminal itself; asked again until the resize has travelled to the node.
      { repeat: 'stty size\r', until: '40 123' },
      { send: 'tty\r' },
      { expect: '/dev/pts/\\d+' },
      { send: 'exit 7\r' },
    ],
  };
  const result = await ptyRun(script);
  t.is(result.failed, null, result.output);
  t.is(result.exit, 7, result.output);
});

test.serial('Ctrl-C without a terminal kills the process in the container', async (t) => {
  const child = spawn(process.execPath, [TSCTL, '--server', leaderSocket, 'exec', task.metadata.name, '--', 'sh', '-c', 'echo ready; exec sleep 4242'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve()));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  child.kill('SIGINT');
  t.is(await exited, 130, stderr);
  await eventually(
    'the sleep to be gone from the container',
    async () => {
      const ps = await tsctl(leaderSocket, ['exec', task.metadata.name, '--', 'ps', '-o', 'args']);
      if (ps.code !== 0) throw new Error(`ps: ${ps.stderr}`);
      if (ps.stdout.includes('sleep 4242')) throw new Error(ps.stdout);
      return true;
    },
    30_000,
  );
  t.pass();
});

test.serial('every exec is in the audit log, with the task and never the stdin', async (t) => {
  const marker = `stdin-marker-${randomBytes(8).toString('hex')}`;
  const ran = await tsctl(leaderSocket, ['exec', '-i', task.metadata.name, '--', 'cat'], Buffer.from(marker));
  t.is(ran.stdout, marker);
  const entries = (await client.auditLog({ limit: 1000, caller: '' })).entriesJson;
  const execs = entries.filter((e) => (JSON.parse(e) as { method: string }).method === 'Exec');
  t.true(execs.length > 0);
  t.true(execs.some((e) => e.includes(task.metadata.name)));
  t.false(entries.some((e) => e.includes(marker)));
});

/** tsctl with a user's context, from node-1's namespace (the context names the managers' underlay addresses). */
function tsctlAs(context: string, args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, TESSERA_CONTEXT: context };
    delete env['TESSERA_SERVER'];
    const child = spawn('nsenter', [`--net=/run/netns/${cluster.nodes[0]!.netns}`, process.execPath, TSCTL, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

test.serial('operators exec only into services that pass baseline; viewers not at all; the refusal is audited', async (t) => {
  const contexts: Record<string, string> = {};
  for (const [name, role] of [
    ['carol', 'operator'],
    ['bob', 'viewer'],
  ] as const) {
    contexts[name] = join(workDir, `${name}.json`);
    const added = await tsctl(leaderSocket, ['cluster', 'user', 'add', name, '--role', role, '--output', contexts[name]]);
    t.is(added.code, 0, added.stderr);
  }
  const privileged: Service = {
    apiVersion: 'tessera/v1',
    kind: 'Service',
    metadata: { name: 'priv', stack: 'ex' },
    spec: { image: registry!.image, command: ['sleep', '100000'], capAdd: ['NET_ADMIN'], placement: { constraints: ['node.hostname==node-3'] } },
  };
  await client.apply({ objectsJson: [JSON.stringify(privileged)] });
  const privTask = await eventually(
    'the privileged task running',
    async () => {
      const tasks = (await client.list({ kind: 'Task', stack: 'ex', service: 'priv' })).objectsJson.map((j) => JSON.parse(j) as Task);
      const running = tasks.find((x) => x.status.state === 'running');
      if (running === undefined)
        throw new Error(tasks.map((x) => `${x.metadata.name} ${x.status.state} ${x.status.message ?? ''} ${x.status.error ?? ''}`).join('; ') || 'no task');
      return running;
    },
    60_000,
  );
  const allowed = await tsctlAs(contexts['carol']!, ['exec', task.metadata.name, '--', 'sh', '-c', 'exit 5']);
  t.is(allowed.code, 5, allowed.stderr);
  const refused = await tsctlAs(contexts['carol']!, ['exec', privTask.metadata.name, '--', 'true']);
  t.is(refused.code, 125);
  t.regex(refused.stderr, /user:carol \(operator\) may not exec into task .*admission level baseline.*capAdd\[0\]: NET_ADMIN/);
  const viewer = await tsctlAs(contexts['bob']!, ['exec', task.metadata.name, '--', 'true']);
  t.is(viewer.code, 125);
  t.regex(viewer.stderr, /user:bob \(viewer\) may not call Exec: viewers have read-only access/);
  // The audit log is the answering manager's: carol's context may have reached either.
  const entries: Array<{ method: string; objects: Array<{ name: string }>; result: { ok: boolean } }> = [];
  for (const socket of [leaderSocket, followerSocket]) {
    const manager = new ApiClient(socket);
    try {
      for (const e of (await manager.auditLog({ limit: 1000, caller: 'user:carol' })).entriesJson) entries.push(JSON.parse(e) as (typeof entries)[number]);
    } finally {
      manager.close();
    }
  }
  t.true(entries.some((e) => e.method === 'Exec' && !e.result.ok && e.objects.some((o) => o.name === privTask.metadata.name)));
  t.true(entries.some((e) => e.method === 'Exec' && e.result.ok && e.objects.some((o) => o.name === task.metadata.name)));
});

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

/** Starts tsctl exec with its stdout a pipe; resolves once the command printed `ready`. */
async function startExec(
  server: string,
  command: string[],
  readOutput: boolean,
): Promise<{ exited: Promise<number>; stderr: () => string; kill: (s: NodeJS.Signals) => void }> {
  const child = spawn(process.execPath, [TSCTL, '--server', server, 'exec', task.metadata.name, '--', ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      if (!c.toString('latin1').includes('ready')) return;
      child.stdout.off('data', onData);
      // Not reading on: the pipe fills and tsctl stops taking output.
      if (!readOutput) child.stdout.pause();
      resolve();
    };
    child.stdout.on('data', onData);
    void exited.then((code) => reject(new Error(`tsctl exec ended (${code}) before it was ready: ${stderr}`)));
  });
  return { exited, stderr: () => stderr, kill: (signal) => child.kill(signal) };
}

test.serial('a client that reads nothing holds the output back: neither the manager nor the agent buffers it', async (t) => {
  const leaderPid = cluster.nodes.find((n) => n.apiSocket === leaderSocket)!.pid;
  const agentPid = cluster.nodes[2]!.pid;
  // `cat /dev/zero` writes as fast as it is let; without flow control gigabytes would pile up.
  const exec = await startExec(leaderSocket, ['sh', '-c', 'echo ready; exec cat /dev/zero'], false);
  await sleep(2000);
  const before = { leader: await rssBytes(leaderPid), agent: await rssBytes(agentPid) };
  await sleep(3000);
  const after = { leader: await rssBytes(leaderPid), agent: await rssBytes(agentPid) };
  t.log(`RSS growth while the client read nothing: leader ${after.leader - before.leader} B, agent ${after.agent - before.agent} B`);
  t.true(after.leader - before.leader < 32 * 1024 * 1024, `leader grew ${after.leader - before.leader} B`);
  t.true(after.agent - before.agent < 32 * 1024 * 1024, `agent grew ${after.agent - before.agent} B`);
  exec.kill('SIGINT');
  t.is(await exec.exited, 130, exec.stderr());
});

test.serial('node-3 cut off the network mid-exec: the call ends once the node is marked down', async (t) => {
  const node3 = cluster.nodes[2]!;
  const exec = await startExec(leaderSocket, ['sh', '-c', 'echo ready; sleep 1000'], true);
  const guard = setTimeout(() => exec.kill('SIGKILL'), 60_000);
  await run('ip', ['-n', cluster.switchNetns, 'link', 'set', node3.uplink, 'down']);
  try {
    t.is(await exec.exited, 125, exec.stderr());
    t.regex(exec.stderr(), /node node-3: the node is down/);
  } finally {
    clearTimeout(guard);
    await run('ip', ['-n', cluster.switchNetns, 'link', 'set', node3.uplink, 'up']);
  }
  // The task was orphaned and replaced on node-3 (its constraint) once the node is back.
  task = await eventually(
    'a task running on node-3 again',
    async () => {
      const tasks = (await client.list({ kind: 'Task', stack: 'ex', service: 'box' })).objectsJson.map((j) => JSON.parse(j) as Task);
      return tasks.find((x) => x.status.state === 'running' && x.desiredState === 'running' && x.nodeName === 'node-3');
    },
    120_000,
  );
});

test.serial("node-3's tsd killed mid-exec: the client gets an error naming the node and a non-zero exit", async (t) => {
  const exec = await startExec(leaderSocket, ['sh', '-c', 'echo ready; sleep 1000'], true);
  // A guard against a hang, not a speed check: the call must end on its own.
  const guard = setTimeout(() => exec.kill('SIGKILL'), 60_000);
  process.kill(cluster.nodes[2]!.pid, 'SIGKILL');
  const code = await exec.exited;
  clearTimeout(guard);
  t.is(code, 125, exec.stderr());
  t.regex(exec.stderr(), /node node-3: .*session with this manager ended/);
});
