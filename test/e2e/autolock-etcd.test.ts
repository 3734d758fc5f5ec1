// Autolock with the etcd backend, real tsd processes (managers-lab.ts, from the sources: no build)
// and a real etcd (Debian's etcd-server) in the first manager's network namespace, which the second
// reaches over the lab's underlay. `tsd init --autolock --store etcd` writes no plaintext store key;
// a manager that joins re-wraps the store key it fetched; a rotation re-wraps both; a restarted
// manager is locked (no TLS port, no connection to etcd) until the right key comes; autolock off
// puts etcd-keys/kek back. Neither the unlock keys nor the store key are in any file of the data
// roots, as text, raw bytes, hex or base64.
import test, { type ExecutionContext } from 'ava';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { decodeKekFile, KEK_FILE } from '../../control-plane/raft/storage/keyring.js';
import { unlockedKek } from '../../control-plane/raft/storage/kek-lock.js';
import { newUnlockKey, parseUnlockKey } from '../../control-plane/raft/storage/unlock-key.js';
import { storeKeyDir } from '../../daemon/identity/store-key.js';
import { readSealedStoreKey, storeKeyFiles } from '../../daemon/identity/store-key-lock.js';
import { spawnEtcdInNetns } from '../helpers/etcd-netns.js';
import { eventually } from '../helpers/eventually.js';
import { filesUnder } from '../helpers/files-under.js';
import { encodedNeedles, markerNeedles } from '../helpers/marker-needles.js';
import { makeLab, type Lab, type LabNode } from '../helpers/managers-lab.js';

const UNLOCK_KEY = /TSUK-1-[a-z2-7]{52}/;
const ETCD_PORT = 2379;

function keyIn(out: string): string {
  const key = UNLOCK_KEY.exec(out)?.[0];
  if (!key) throw new Error(`no unlock key in: ${out}`);
  return key;
}

async function keyFiles(n: LabNode): Promise<string> {
  return (await readdir(storeKeyDir(n.dataRoot)))
    .filter((f) => !f.startsWith('.'))
    .sort()
    .join();
}

/** The store key a manager's etcd-keys give with this unlock key; undefined when it does not open them. */
async function storeKeyWith(n: LabNode, key: string): Promise<Buffer | undefined> {
  const dir = storeKeyDir(n.dataRoot);
  const kek = await unlockedKek(storeKeyFiles(dir), parseUnlockKey(key)).catch(() => undefined);
  return kek ? readSealedStoreKey(dir, kek) : undefined;
}

async function ready(lab: Lab, n: LabNode): Promise<void> {
  await eventually(
    `${n.name} to serve the API`,
    async () => ((await lab.tsctl(n, 'get', 'nodes', '-o', 'json').catch(() => '')).includes(`"${n.name}"`) ? true : undefined),
    90_000,
  );
}

/** Files under the data roots holding a key: unlock keys as text, raw bytes or base32; the store key raw, hex or base64 at any alignment. */
async function filesHolding(nodes: LabNode[], unlockKeys: string[], storeKey: Buffer): Promise<string[]> {
  const needles: Array<string | Buffer> = [storeKey, ...encodedNeedles(storeKey).map((n) => n.needle)];
  for (const key of unlockKeys) needles.push(...markerNeedles(key).map((n) => n.needle), key.slice('TSUK-1-'.length), parseUnlockKey(key));
  const hits: string[] = [];
  for (const n of nodes) {
    for (const file of await filesUnder(n.dataRoot)) {
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      for (const [i, needle] of needles.entries()) if (bytes.includes(needle)) hits.push(`${file} holds needle ${i}`);
    }
  }
  return hits;
}

/** Whether the node's tsd holds a TCP connection to etcd (its store is open). */
async function talksToEtcd(lab: Lab, n: LabNode): Promise<boolean> {
  const out = await lab.inNetns(n, 'ss', '-Htnp', 'state', 'established');
  return out.split('\n').some((line) => line.includes(`:${ETCD_PORT}`) && line.includes(`pid=${n.pid},`));
}

function logOnFailure(t: ExecutionContext, lab: Lab): void {
  t.teardown(async () => {
    if (t.passed) return;
    for (const n of lab.nodes) t.log(`--- ${n.name}\n${(await lab.log(n)).split('\n').slice(-40).join('\n')}`);
  });
}

test.serial('etcd backend: init --autolock writes no store key in the clear; join, rotation, a locked restart and autolock off', async (t) => {
  t.timeout(600_000);
  const lab = await makeLab({ count: 2, from: 'source' });
  const [m1, m2] = lab.nodes as [LabNode, LabNode];
  let etcd: ChildProcess | undefined;
  t.teardown(async () => {
    etcd?.kill('SIGTERM');
    await lab.destroy();
  });
  logOnFailure(t, lab);
  // etcd in m1's namespace, on its underlay address: m2 reaches it across the lab's bridge.
  const etcdUrl = `http://${m1.address}:${ETCD_PORT}`;
  etcd = spawnEtcdInNetns(m1.netns, etcdUrl, join(m1.dataRoot, '..', 'etcd'));
  await eventually(
    'etcd to answer',
    async () => ((await lab.inNetns(m1, 'curl', '-sf', `${etcdUrl}/health`).catch(() => '')).includes('true') ? true : undefined),
    30_000,
  );
  const store = ['--store', 'etcd', '--etcd-endpoints', etcdUrl];

  await lab.start(m1, ['init', '--autolock', ...store]);
  await ready(lab, m1);
  t.is(await keyFiles(m1), 'sealed-key,unlock', 'no etcd-keys/kek: the store key is on disk only sealed');
  t.notRegex(await lab.log(m1), UNLOCK_KEY);
  const first = keyIn(await lab.tsctl(m1, 'cluster', 'unlock-key'));
  const storeKey = await storeKeyWith(m1, first);
  if (!storeKey) return t.fail('the unlock key opens the sealed store key');

  // A manager that joins fetches the store key, then re-wraps it under the cluster's unlock key.
  const tokenOut = await lab.tsctl(m1, 'cluster', 'join-token', 'manager');
  const tokenFile = join(m2.dataRoot, 'join-token');
  await writeFile(tokenFile, tokenOut.split(/\s+/).find((w) => w.startsWith('TSJT-')) ?? '', { mode: 0o600 });
  await lab.start(m2, ['join', '--token-file', tokenFile, `${m1.address}:7420`, ...store]);
  await ready(lab, m2);
  await rm(tokenFile, { force: true });
  await eventually('mgr-2 to seal its store key under the unlock key', async () => (await keyFiles(m2)) === 'sealed-key,unlock', 30_000);
  t.deepEqual(await storeKeyWith(m2, first), storeKey, 'both managers hold the same store key');

  // Rotation through either manager re-wraps both; the old key opens neither.
  const second = keyIn(await lab.tsctl(m2, 'cluster', 'unlock-key', '--rotate'));
  for (const m of lab.nodes) {
    await eventually(`${m.name} to re-wrap under the new key`, async () => ((await storeKeyWith(m, second))?.equals(storeKey) ? true : undefined), 30_000);
    t.is(await storeKeyWith(m, first), undefined, `${m.name}: the old key no longer opens it`);
  }

  // Restarted, m1 is locked: no TLS port, its store not opened (no connection to etcd), the API refused.
  await lab.kill9(m1);
  await lab.start(m1, ['run', ...store]);
  await eventually('mgr-1 to wait locked', async () => ((await lab.log(m1)).includes('this manager is locked') ? true : undefined), 60_000);
  t.notRegex(await lab.inNetns(m1, 'ss', '-Hltn'), /:742[01]\b/);
  t.false(await talksToEtcd(lab, m1));
  const refused = await lab.tsctlWithInput(m1, '', 'get', 'nodes');
  t.regex(refused.stderr, /locked \(autolock\)/);
  const wrong = await lab.tsctlWithInput(m1, `${first}\n`, 'cluster', 'unlock');
  t.not(wrong.code, 0);
  t.regex(wrong.stderr, /wrong unlock key/);
  const other = await lab.tsctlWithInput(m1, `${newUnlockKey()}\n`, 'cluster', 'unlock');
  t.regex(other.stderr, /wrong unlock key/);
  t.false(await talksToEtcd(lab, m1));
  t.regex((await lab.tsctlWithInput(m1, `${second}\n`, 'cluster', 'unlock')).stdout, /manager mgr-1 is unlocked/);
  await ready(lab, m1);
  t.true(await talksToEtcd(lab, m1));
  t.is(await keyFiles(m1), 'sealed-key,unlock');

  t.deepEqual(await filesHolding(lab.nodes, [first, second], storeKey), []);

  // Off: each manager's etcd-keys/kek holds the store key again, and a restart needs no key.
  t.regex(await lab.tsctl(m1, 'cluster', 'update', '--autolock=false'), /autolock: off/);
  for (const m of lab.nodes) {
    await eventually(`${m.name} to have etcd-keys/kek again`, async () => (await keyFiles(m)) === KEK_FILE, 30_000);
    const path = join(storeKeyDir(m.dataRoot), KEK_FILE);
    t.deepEqual(decodeKekFile(path, await readFile(path)), storeKey);
    t.is((await stat(path)).mode & 0o777, 0o600);
  }
  // The search itself finds the key where it now is in the clear.
  t.true((await filesHolding([m1], [], storeKey)).some((hit) => hit.includes(join('etcd-keys', KEK_FILE))));
  await lab.kill9(m2);
  await lab.start(m2, ['run', ...store]);
  await ready(lab, m2);
  t.notRegex(await lab.log(m2), /this manager is locked/);
});
