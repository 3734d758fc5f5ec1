// Two managers sharing one etcd (`--store etcd`), real tsd processes, each in a network namespace
// of its own on a private underlay; etcd runs in the switch namespace this test makes. The second
// manager joins with the manager token and fetches the store key over mutual TLS (NodeCA.StoreKey);
// then it signs a user certificate with the CA key it read from etcd, and etcd holds only sealed
// values: the CA record, the meta and every object are ciphertext there. Needs `npm run build`.
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import { eventually } from '../helpers/eventually.js';
import { spawnEtcdInNetns } from '../helpers/etcd-netns.js';

const run = promisify(execFile);
const TSD = fileURLToPath(new URL('../../dist/daemon/main.js', import.meta.url));
const TSCTL = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const SWITCH_ADDRESS = '10.89.0.254';

interface Node {
  name: string;
  netns: string;
  address: string;
  dataRoot: string;
  socket: string;
  child?: ChildProcess;
}

test('two managers on one etcd: the second joins with the store key, signs with the CA from etcd, and etcd holds only sealed values', async (t) => {
  t.timeout(600_000);
  const prefix = `te${randomBytes(3).toString('hex')}`;
  const base = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const sw = `${prefix}-sw`;
  const nodes: Node[] = [1, 2].map((i) => ({
    name: `mgr-${i}`,
    netns: `${prefix}-n${i}`,
    address: `10.89.0.${i}`,
    dataRoot: join(base, `mgr-${i}`),
    socket: `unix:${join(base, `mgr-${i}.sock`)}`,
  }));
  let etcd: ChildProcess | undefined;
  const tsdArgs = (n: Node, i: number): string[] => [
    '--data-root',
    n.dataRoot,
    '--node-name',
    n.name,
    '--listen',
    `${n.address}:7420`,
    '--metrics-listen',
    `${n.address}:7421`,
    '--advertise-address',
    n.address,
    '--api-socket',
    n.socket,
    '--bridge',
    `${prefix}b`,
    '--subnet',
    `10.${160 + i}.9.0/24`,
    '--nft-table',
    prefix,
    '--cgroup-parent',
    `${prefix}/${n.name}`,
    '--store',
    'etcd',
    '--etcd-endpoints',
    `http://${SWITCH_ADDRESS}:2379`,
  ];
  const start = async (n: Node, i: number, verb: string[]): Promise<void> => {
    const log = await open(join(n.dataRoot, 'tsd.log'), 'a', 0o600);
    n.child = spawn('nsenter', [`--net=/run/netns/${n.netns}`, process.execPath, TSD, ...verb, ...tsdArgs(n, i)], { stdio: ['ignore', log.fd, log.fd] });
    await log.close();
  };
  const stop = async (n: Node): Promise<void> => {
    const child = n.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(true)));
    child.kill('SIGTERM');
    if (!(await Promise.race([exited, sleep(30_000).then(() => false)]))) child.kill('SIGKILL');
  };
  const tsctl = async (n: Node, ...args: string[]): Promise<string> =>
    (await run(process.execPath, [TSCTL, '--server', n.socket, ...args], { timeout: 30_000, cwd: base })).stdout;
  const logOf = (n: Node): Promise<string> => readFile(join(n.dataRoot, 'tsd.log'), 'utf8').catch(() => '');
  /** Every key and value in etcd, read through its JSON gateway from inside the switch namespace. */
  const etcdDump = async (): Promise<Array<{ key: string; value: string }>> => {
    const body = JSON.stringify({ key: Buffer.from('/').toString('base64'), range_end: Buffer.from('0').toString('base64') });
    const { stdout } = await run('nsenter', [`--net=/run/netns/${sw}`, 'curl', '-s', '-X', 'POST', `http://${SWITCH_ADDRESS}:2379/v3/kv/range`, '-d', body]);
    const kvs = (JSON.parse(stdout) as { kvs?: Array<{ key: string; value?: string }> }).kvs ?? [];
    return kvs.map((kv) => ({ key: Buffer.from(kv.key, 'base64').toString('utf8'), value: Buffer.from(kv.value ?? '', 'base64').toString('utf8') }));
  };
  t.teardown(async () => {
    for (const [i, n] of nodes.entries()) {
      await stop(n);
      await run(process.execPath, [
        TSD,
        'cleanup',
        '--data-root',
        n.dataRoot,
        '--bridge',
        `${prefix}b`,
        '--subnet',
        `10.${161 + i}.9.0/24`,
        '--nft-table',
        prefix,
      ]).catch(() => undefined);
      await run('ip', ['netns', 'del', n.netns]).catch(() => undefined);
    }
    etcd?.kill('SIGTERM');
    await run('ip', ['netns', 'del', sw]).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });

  await run('ip', ['netns', 'add', sw]);
  await run('ip', ['-n', sw, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', sw, 'link', 'add', `${prefix}u`, 'type', 'bridge']);
  await run('ip', ['-n', sw, 'addr', 'add', `${SWITCH_ADDRESS}/24`, 'dev', `${prefix}u`]);
  await run('ip', ['-n', sw, 'link', 'set', `${prefix}u`, 'up']);
  for (const [i, n] of nodes.entries()) {
    await mkdir(n.dataRoot, { recursive: true });
    await run('ip', ['netns', 'add', n.netns]);
    await run('ip', ['-n', n.netns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', sw, 'link', 'add', `${prefix}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
    await run('ip', ['-n', sw, 'link', 'set', `${prefix}v${i}`, 'master', `${prefix}u`, 'up']);
    await run('ip', ['-n', n.netns, 'addr', 'add', `${n.address}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', n.netns, 'link', 'set', 'eth0', 'up']);
  }
  const etcdUrl = `http://${SWITCH_ADDRESS}:2379`;
  etcd = spawnEtcdInNetns(sw, etcdUrl, join(base, 'etcd'));
  await eventually('etcd to answer', async () => ((await etcdDump().catch(() => undefined)) ? true : undefined), 30_000);

  const [m1, m2] = nodes as [Node, Node];
  await start(m1, 0, ['init']);
  await eventually(
    'the first manager',
    async () => ((await tsctl(m1, 'get', 'nodes', '-o', 'json').catch(() => '')).includes('"ready"') ? true : undefined),
    90_000,
  ).catch(async (err: Error) => {
    t.log(await logOf(m1));
    throw err;
  });
  const token = (await tsctl(m1, 'cluster', 'join-token', 'manager'))
    .trim()
    .split(/\s+/)
    .find((w) => w.startsWith('TSJT-'))!;
  const tokenFile = join(m2.dataRoot, 'join-token');
  await writeFile(tokenFile, token, { mode: 0o600 });
  await start(m2, 1, ['join', '--token-file', tokenFile, `${m1.address}:7420`]);
  await eventually(
    'the second manager to serve its API',
    async () => ((await tsctl(m2, 'get', 'nodes', '-o', 'json').catch(() => '')).includes('mgr-2') ? true : undefined),
    90_000,
  ).catch(async (err: Error) => {
    t.log(await logOf(m2));
    throw err;
  });
  await rm(tokenFile, { force: true });
  t.regex(await logOf(m1), /store key sent to manager mgr-2/);

  const keys = await Promise.all(nodes.map((n) => readFile(join(n.dataRoot, 'etcd-keys', 'kek'))));
  t.true(keys[0]!.equals(keys[1]!), 'both managers hold the same store key');
  for (const n of nodes) t.is((await stat(join(n.dataRoot, 'etcd-keys', 'kek'))).mode & 0o777, 0o600);
  for (const n of nodes) await t.throwsAsync(stat(join(n.dataRoot, 'certs', 'ca.key')), { code: 'ENOENT' }, `${n.name} keeps no ca.key`);

  // The second manager signs with the CA it read from etcd.
  await tsctl(m2, 'cluster', 'user', 'add', 'alice', '--role', 'viewer', '--output', join(base, 'alice.json'));
  t.regex(await readFile(join(base, 'alice.json'), 'utf8'), /BEGIN CERTIFICATE/);

  const dump = await etcdDump();
  const tessera = dump.filter((kv) => kv.key.startsWith('/tessera/'));
  t.true(
    tessera.some((kv) => kv.key === '/tessera/cluster/ca'),
    'the CA record is in etcd',
  );
  t.true(tessera.length > 3);
  for (const kv of tessera) {
    t.regex(kv.value, /^tsv1:\d+:[A-Za-z0-9+/=]+$/, kv.key);
    t.false(kv.value.includes('PRIVATE KEY') || kv.value.includes('mgr-1'), kv.key);
  }

  // A restart of the joined manager needs nothing but its files.
  await stop(m2);
  await start(m2, 1, ['join', `${m1.address}:7420`]);
  await eventually(
    'the second manager back',
    async () => ((await tsctl(m2, 'get', 'nodes', '-o', 'json').catch(() => '')).includes('mgr-1') ? true : undefined),
    90_000,
  );
});
