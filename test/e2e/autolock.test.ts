// Autolock with real tsd processes and real files (test/helpers/managers-lab.ts, from the sources:
// no build): `tsd init --autolock`, a locked manager after a restart that serves nothing but the
// unlock call on its root socket, wrong keys refused, rotation of the unlock key across three
// managers (a restarted one opens with the new key only), autolock turned off (a kek file again).
// After each, the data roots (logs, audit log, Raft files) are searched for the unlock keys: they
// must not be anywhere on disk.
import test, { type ExecutionContext } from 'ava';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { unlockedKek } from '../../control-plane/raft/storage/keyring-lock.js';
import { newUnlockKey, parseUnlockKey } from '../../control-plane/raft/storage/unlock-key.js';
import { eventually } from '../helpers/eventually.js';
import { filesUnder } from '../helpers/files-under.js';
import { makeLab, type Lab, type LabNode } from '../helpers/managers-lab.js';

const UNLOCK_KEY = /TSUK-1-[a-z2-7]{52}/;

function keysDir(n: LabNode): string {
  return join(n.dataRoot, 'raft', 'keys');
}

async function keyFiles(n: LabNode): Promise<string[]> {
  return (await readdir(keysDir(n))).filter((f) => !f.startsWith('.')).sort();
}

function keyIn(out: string): string {
  const key = UNLOCK_KEY.exec(out)?.[0];
  if (!key) throw new Error(`no unlock key in: ${out}`);
  return key;
}

async function ready(lab: Lab, n: LabNode): Promise<void> {
  await eventually(
    `${n.name} to serve the API`,
    async () => ((await lab.tsctl(n, 'get', 'nodes', '-o', 'json').catch(() => '')).includes('"ready"') ? true : undefined),
    90_000,
  );
}

async function locked(lab: Lab, n: LabNode): Promise<void> {
  await eventually(`${n.name} to wait locked`, async () => ((await lab.log(n)).includes('this manager is locked') ? true : undefined), 60_000);
}

/** Every file under the data roots (and the lab's sockets' directory) holding one of the keys, as text or as its raw bytes' base32. */
async function filesHolding(nodes: LabNode[], keys: string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const n of nodes) {
    for (const file of await filesUnder(n.dataRoot)) {
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) continue;
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      for (const key of keys) {
        if (bytes.includes(key.slice('TSUK-1-'.length)) || bytes.includes(parseUnlockKey(key))) hits.push(`${file} holds ${key.slice(0, 12)}…`);
      }
    }
  }
  return hits;
}

async function opensWith(n: LabNode, key: string): Promise<boolean> {
  return (await unlockedKek(keysDir(n), parseUnlockKey(key))) !== undefined;
}

async function listening(lab: Lab, n: LabNode): Promise<string> {
  return lab.inNetns(n, 'ss', '-Hltn');
}

function logOnFailure(t: ExecutionContext, lab: Lab): void {
  t.teardown(async () => {
    if (t.passed) return;
    for (const n of lab.nodes) t.log(`--- ${n.name}\n${(await lab.log(n)).split('\n').slice(-40).join('\n')}`);
  });
}

test.serial('tsd init --autolock: no kek file; restarted, the manager serves only the unlock call until the right key comes', async (t) => {
  const lab = await makeLab({ count: 1, from: 'source' });
  t.teardown(() => lab.destroy());
  logOnFailure(t, lab);
  const [m1] = lab.nodes as [LabNode];
  await lab.start(m1, ['init', '--autolock']);
  await ready(lab, m1);

  // The key is on no disk: keys/ holds the wrapped data keys and the salt, no kek file.
  t.deepEqual(await keyFiles(m1), ['deks', 'unlock']);
  const log = await lab.log(m1);
  t.regex(log, /Autolock is on\. This output is not a terminal, so the unlock key is not printed here/);
  t.notRegex(log, UNLOCK_KEY);
  const key = keyIn(await lab.tsctl(m1, 'cluster', 'unlock-key'));
  t.true(await opensWith(m1, key), 'the keyring is wrapped under the KEK derived from the unlock key');
  t.regex(await lab.tsctl(m1, 'cluster', 'unlock'), /manager mgr-1 is not locked/);

  await lab.kill9(m1);
  await lab.start(m1, ['run']);
  await locked(lab, m1);
  // Nothing but the root socket: no TLS port (API, dispatcher, NodeCA, Raft), no metrics.
  t.notRegex(await listening(lab, m1), /:742[01]\b/);
  const refused = await lab.tsctlWithInput(m1, '', 'get', 'nodes');
  t.not(refused.code, 0);
  t.regex(refused.stderr, /locked \(autolock\).*tsctl cluster unlock/);
  t.regex(await lab.tsctl(m1, 'cluster', 'unlock-key').catch((err: Error) => err.message), /locked/);

  // Wrong keys: refused, counted, then slowed.
  const other = newUnlockKey();
  const wrong = await lab.tsctlWithInput(m1, `${other}\n`, 'cluster', 'unlock');
  t.not(wrong.code, 0);
  t.regex(wrong.stderr, /wrong unlock key/);
  const malformed = await lab.tsctlWithInput(m1, 'nonsense\n', 'cluster', 'unlock');
  t.regex(malformed.stderr, /unlock key: expected TSUK-1-<key>/);
  t.notRegex(malformed.stderr, /nonsense/);
  const third = await lab.tsctlWithInput(m1, `${other}\n`, 'cluster', 'unlock');
  t.regex(third.stderr, /wrong unlock key.*next attempt is taken in \d+ s/);
  const slowed = await lab.tsctlWithInput(m1, `${key}\n`, 'cluster', 'unlock');
  t.regex(slowed.stderr, /3 wrong unlock keys: try again in \d+ s/);
  t.regex(await lab.log(m1), /a wrong unlock key was refused \(3 wrong so far\)/);

  // A key file others may read is refused before it is sent.
  const keyFile = join(m1.dataRoot, '..', 'unlock-key');
  await writeFile(keyFile, `${key}\n`, { mode: 0o644 });
  const loose = await lab.tsctlWithInput(m1, '', 'cluster', 'unlock', '--key-file', keyFile);
  t.regex(loose.stderr, /must be its owner's alone \(chmod 600\)/);
  await rm(keyFile);
  await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
  await eventually(
    'the unlock to be taken',
    async () => {
      const res = await lab.tsctlWithInput(m1, '', 'cluster', 'unlock', '--key-file', keyFile);
      return res.code === 0 ? res.stdout : undefined;
    },
    30_000,
    1000,
  );
  await rm(keyFile);
  await ready(lab, m1);
  t.deepEqual(await keyFiles(m1), ['deks', 'unlock']);
  t.regex(await listening(lab, m1), /:7420\b/);

  // Audited: who read the key; and the key itself nowhere on disk (logs, audit log, Raft files).
  t.regex(
    await readFile(join(m1.dataRoot, 'audit', 'audit.log'), 'utf8'),
    /"method":"UnlockKey".*"caller":"local:root"|"caller":"local:root".*"method":"UnlockKey"/,
  );
  t.deepEqual(await filesHolding([m1], [key]), []);
});

async function joinManagers(t: ExecutionContext, lab: Lab, joining: LabNode[]): Promise<void> {
  const m1 = lab.nodes[0]!;
  const token = keyOfJoin(await lab.tsctl(m1, 'cluster', 'join-token', 'manager'));
  for (const m of joining) {
    // Through a 0600 file, never argv; removed once the node is in.
    const tokenFile = join(m.dataRoot, 'join-token');
    await writeFile(tokenFile, token, { mode: 0o600 });
    await lab.start(m, ['join', '--token-file', tokenFile, `${m1.address}:7420`]);
    await eventually(
      `${m.name} to be a voter`,
      async () => (/\bfollower\b/.test(memberRow(await lab.tsctl(m1, 'cluster', 'members'), m.name)) ? true : undefined),
      120_000,
    );
    await rm(tokenFile, { force: true });
    t.log(`${m.name} joined`);
  }
}

function keyOfJoin(out: string): string {
  const token = out.split(/\s+/).find((w) => w.startsWith('TSJT-'));
  if (!token) throw new Error(`no join token in: ${out}`);
  return token;
}

function memberRow(out: string, name: string): string {
  return out.split('\n').find((line) => line.startsWith(`${name} `)) ?? '';
}

test.serial(
  'three managers: autolock on, a manager joins and re-wraps, the key rotated (a restarted manager opens with the new key only), autolock off',
  async (t) => {
    const lab = await makeLab({ count: 3, from: 'source' });
    t.teardown(() => lab.destroy());
    logOnFailure(t, lab);
    const [m1, m2, m3] = lab.nodes as [LabNode, LabNode, LabNode];
    await lab.start(m1, ['init']);
    await ready(lab, m1);
    await joinManagers(t, lab, [m2]);
    for (const m of [m1, m2]) t.deepEqual(await keyFiles(m), ['deks', 'kek']);

    // On, through any manager: every manager re-wraps its own keyring and loses its kek file.
    const on = await lab.tsctl(m2, 'cluster', 'update', '--autolock=true');
    const first = keyIn(on);
    t.regex(on, /autolock: on/);
    // A manager that joins the autolocked cluster finds the key in the store and does the same.
    await joinManagers(t, lab, [m3]);
    for (const m of lab.nodes) {
      await eventually(
        `${m.name} to re-wrap under the unlock key`,
        async () => (await keyFiles(m)).join() === 'deks,unlock' && (await opensWith(m, first)),
        30_000,
      );
    }
    t.regex(await lab.tsctl(m1, 'cluster', 'update', '--autolock=true'), /already on/);
    t.is(keyIn(await lab.tsctl(m3, 'cluster', 'unlock-key')), first);

    // Rotation: each running manager re-wraps under the new key; the old one opens none of them.
    const second = keyIn(await lab.tsctl(m1, 'cluster', 'unlock-key', '--rotate'));
    t.not(second, first);
    for (const m of lab.nodes) {
      await eventually(`${m.name} to re-wrap under the new key`, () => opensWith(m, second), 30_000);
      t.false(await opensWith(m, first), `${m.name}'s keyring no longer opens with the old key`);
    }

    // A restarted manager is locked; the old key is refused, the new one unlocks it and it rejoins.
    await lab.kill9(m3);
    await lab.start(m3, ['run']);
    await locked(lab, m3);
    t.notRegex(await listening(lab, m3), /:7420\b/);
    const old = await lab.tsctlWithInput(m3, `${first}\n`, 'cluster', 'unlock');
    t.not(old.code, 0);
    t.regex(old.stderr, /wrong unlock key/);
    t.regex((await lab.tsctlWithInput(m3, `${second}\n`, 'cluster', 'unlock')).stdout, /manager mgr-3 is unlocked/);
    await eventually(
      'mgr-3 back as a voter',
      async () => (/\bfollower\b|\bleader\b/.test(memberRow(await lab.tsctl(m1, 'cluster', 'members'), 'mgr-3')) ? true : undefined),
      90_000,
    );
    await ready(lab, m3);

    // Off: every manager writes a kek file again, and a restart needs no key.
    t.regex(await lab.tsctl(m3, 'cluster', 'update', '--autolock=false'), /autolock: off/);
    for (const m of lab.nodes) await eventually(`${m.name} to have a kek file again`, async () => (await keyFiles(m)).join() === 'deks,kek', 30_000);
    await lab.kill9(m2);
    await lab.start(m2, ['run']);
    await ready(lab, m2);
    t.notRegex(await lab.log(m2), /this manager is locked/);
    const unlockKey = await lab.tsctlWithInput(m2, '', 'cluster', 'unlock-key');
    t.regex(unlockKey.stderr, /autolock is off/);

    t.deepEqual(await filesHolding(lab.nodes, [first, second]), []);
  },
);
