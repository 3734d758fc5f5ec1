// Two managers sharing one etcd (`--store etcd`), real tsd processes, each in a network namespace
// of its own on a private underlay (test/helpers/managers-lab.ts, running dist/: needs `npm run
// build`); etcd runs in the lab's switch namespace. The second manager joins with the manager token
// and fetches the store key over mutual TLS (NodeCA.StoreKey); then it signs a user certificate
// with the CA key it read from etcd, and etcd holds only sealed values: the CA record, the meta and
// every object are ciphertext there.
import test, { type ExecutionContext } from 'ava';
import { execFile, type ChildProcess } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { eventually } from '../helpers/eventually.js';
import { spawnEtcdInNetns } from '../helpers/etcd-netns.js';
import { makeLab, type Lab, type LabNode } from '../helpers/managers-lab.js';

const run = promisify(execFile);

/** Every key and value in etcd, read through its JSON gateway from inside the switch namespace. */
async function etcdDump(lab: Lab, etcdUrl: string): Promise<Array<{ key: string; value: string }>> {
  const body = JSON.stringify({ key: Buffer.from('/').toString('base64'), range_end: Buffer.from('0').toString('base64') });
  const { stdout } = await run('nsenter', [`--net=/run/netns/${lab.switchNetns}`, 'curl', '-s', '-X', 'POST', `${etcdUrl}/v3/kv/range`, '-d', body]);
  const kvs = (JSON.parse(stdout) as { kvs?: Array<{ key: string; value?: string }> }).kvs ?? [];
  return kvs.map((kv) => ({ key: Buffer.from(kv.key, 'base64').toString('utf8'), value: Buffer.from(kv.value ?? '', 'base64').toString('utf8') }));
}

/** Waits until `n` lists nodes and the list holds `needle`; on a timeout the test log gets its tsd.log. */
async function serving(t: ExecutionContext, lab: Lab, n: LabNode, needle: string, what: string): Promise<void> {
  const lists = async (): Promise<true | undefined> => ((await lab.tsctl(n, 'get', 'nodes', '-o', 'json').catch(() => '')).includes(needle) ? true : undefined);
  await eventually(what, lists, 90_000).catch(async (err: Error) => {
    t.log(await lab.log(n));
    throw err;
  });
}

test('two managers on one etcd: the second joins with the store key, signs with the CA from etcd, and etcd holds only sealed values', async (t) => {
  t.timeout(600_000);
  const lab = await makeLab({ count: 2, from: 'dist', addressOnSwitch: true });
  let etcd: ChildProcess | undefined;
  t.teardown(async () => {
    // The managers stop before etcd does, so their shutdown does not wait on a store that is gone.
    for (const n of lab.nodes) await lab.stop(n);
    etcd?.kill('SIGTERM');
    await lab.destroy();
  });
  const etcdUrl = `http://${lab.switchAddress}:2379`;
  const store = ['--store', 'etcd', '--etcd-endpoints', etcdUrl];
  etcd = spawnEtcdInNetns(lab.switchNetns, etcdUrl, join(lab.dir, 'etcd'));
  await eventually('etcd to answer', async () => ((await etcdDump(lab, etcdUrl).catch(() => undefined)) ? true : undefined), 30_000);

  const [m1, m2] = lab.nodes as [LabNode, LabNode];
  await lab.start(m1, ['init', ...store]);
  await serving(t, lab, m1, '"ready"', 'the first manager');
  const token = (await lab.tsctl(m1, 'cluster', 'join-token', 'manager'))
    .trim()
    .split(/\s+/)
    .find((w) => w.startsWith('TSJT-'))!;
  const tokenFile = join(m2.dataRoot, 'join-token');
  await writeFile(tokenFile, token, { mode: 0o600 });
  await lab.start(m2, ['join', '--token-file', tokenFile, `${m1.address}:7420`, ...store]);
  await serving(t, lab, m2, 'mgr-2', 'the second manager to serve its API');
  await rm(tokenFile, { force: true });
  t.regex(await lab.log(m1), /store key sent to manager mgr-2/);

  const keys = await Promise.all(lab.nodes.map((n) => readFile(join(n.dataRoot, 'etcd-keys', 'kek'))));
  t.true(keys[0]!.equals(keys[1]!), 'both managers hold the same store key');
  for (const n of lab.nodes) t.is((await stat(join(n.dataRoot, 'etcd-keys', 'kek'))).mode & 0o777, 0o600);
  for (const n of lab.nodes) await t.throwsAsync(stat(join(n.dataRoot, 'certs', 'ca.key')), { code: 'ENOENT' }, `${n.name} keeps no ca.key`);

  // The second manager signs with the CA it read from etcd.
  await lab.tsctl(m2, 'cluster', 'user', 'add', 'alice', '--role', 'viewer', '--output', join(lab.dir, 'alice.json'));
  t.regex(await readFile(join(lab.dir, 'alice.json'), 'utf8'), /BEGIN CERTIFICATE/);

  const dump = await etcdDump(lab, etcdUrl);
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
  await lab.stop(m2);
  await lab.start(m2, ['join', `${m1.address}:7420`, ...store]);
  await serving(t, lab, m2, 'mgr-1', 'the second manager back');
});
