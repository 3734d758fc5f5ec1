// The Raft store as separate processes, each in its own network namespace on a private underlay:
// kill -9 of the leader under write load loses no acknowledged write; a partitioned minority
// cannot commit while the majority goes on; a restarted member catches up, by snapshot when it
// is far behind. Clients (this test) reach members on unix sockets.
import test from 'ava';

import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { RaftKvClient } from '../../control-plane/raft/transport/kv-client.js';
import { startRaftProcesses, type MemberProcess, type RaftProcessCluster } from './raft-harness.js';

async function waitCaughtUp(c: RaftProcessCluster, m: MemberProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leader = await c.leader(5000);
    // The member may still be starting: not answering is "not caught up yet", and the last reason
    // is reported if it never does.
    let unanswered = '';
    const [ls, ms] = await Promise.all([
      c.status(leader),
      c.status(m).catch((err: unknown) => {
        unanswered = `; its last status request failed: ${String(err)}`;
        return undefined;
      }),
    ]);
    if (ms && ms.applied >= ls.commit) return;
    if (Date.now() > deadline) throw new Error(`${m.id} did not catch up (applied ${ms?.applied}, leader commit ${ls.commit}${unanswered})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('raft processes: kill -9 of the leader under write load loses no acknowledged write', async (t) => {
  const c = await startRaftProcesses({ members: 3, netns: true, snapshotEvery: 500 });
  t.teardown(() => c.stop());
  const leader = await c.leader();
  const acked = new Map<string, string>();
  let killedAt = 0;
  let firstAfterKill = 0;
  const stopWriters = new AbortController();
  // A call, not a property read: TypeScript would keep a loop condition's narrowing in the body.
  const writing = (): boolean => !stopWriters.signal.aborted;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    const kv = new RaftKvClient(c.clientAddresses(), LOCAL_INSECURE, w);
    try {
      for (let n = 0; writing(); n++) {
        const key = `/load/w${w}/${n}`;
        const value = `v${n}`;
        // Retry the same put until acknowledged (a put is idempotent, so an unknown outcome is harmless).
        for (;;) {
          const started = Date.now();
          try {
            await kv.put(key, value, 3000);
            acked.set(key, value);
            if (killedAt && started >= killedAt && !firstAfterKill) firstAfterKill = Date.now();
            break;
          } catch {
            // Expected while the leader is down: the put is retried (see above).
            if (!writing()) return;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }
    } finally {
      kv.close();
    }
  });
  await new Promise((r) => setTimeout(r, 1500));
  const before = acked.size;
  killedAt = Date.now();
  await c.kill(leader);
  while (!firstAfterKill && Date.now() - killedAt < 20_000) await new Promise((r) => setTimeout(r, 10));
  t.true(firstAfterKill > 0, 'a write succeeded after the leader died');
  t.log(
    `fail-over: first write started after kill -9 of leader ${leader.id} acknowledged in ${firstAfterKill - killedAt} ms (${before} writes acknowledged before)`,
  );
  await new Promise((r) => setTimeout(r, 1500));
  stopWriters.abort();
  await Promise.all(writers);
  t.true(acked.size > before, 'writes went on after the fail-over');

  await c.restart(leader);
  await waitCaughtUp(c, leader);
  for (const m of c.members) {
    const kv = new RaftKvClient([m.clientAddress], LOCAL_INSECURE);
    const { kvs } = await kv.range('/load/');
    kv.close();
    const stored = new Map(kvs.map((x) => [x.key, x.value]));
    const missing = [...acked].filter(([k, v]) => stored.get(k) !== v);
    t.deepEqual(missing, [], `${m.id} holds every acknowledged write`);
  }
  t.log(`${acked.size} acknowledged writes, all present on all 3 members`);
});

test('raft processes: a partitioned minority cannot commit while the majority goes on', async (t) => {
  const c = await startRaftProcesses({ members: 3, netns: true });
  t.teardown(() => c.stop());
  const old = await c.leader();
  const majority = c.members.filter((m) => m !== old);
  await c.cut(old);
  // The isolated leader (and later ex-leader) may accept the proposal but can never commit it.
  const isolated = new RaftKvClient([old.clientAddress], LOCAL_INSECURE);
  t.teardown(() => isolated.close());
  await t.throwsAsync(isolated.put('/part/minority', 'x', 3000));
  const newLeader = await c.leader(15_000, majority);
  t.not(newLeader.id, old.id);
  const kv = new RaftKvClient(
    majority.map((m) => m.clientAddress),
    LOCAL_INSECURE,
  );
  t.teardown(() => kv.close());
  for (let i = 0; i < 20; i++) await kv.put(`/part/majority/${i}`, String(i), 5000);
  await t.throwsAsync(isolated.put('/part/minority2', 'y', 2000), undefined, 'still cannot commit');
  t.deepEqual((await kv.range('/part/minority')).kvs, [], 'the majority never saw the minority writes');
  await c.heal(old);
  await waitCaughtUp(c, old);
  const healed = new RaftKvClient([old.clientAddress], LOCAL_INSECURE);
  t.teardown(() => healed.close());
  const { kvs } = await healed.range('/part/');
  t.deepEqual(
    kvs.map((x) => x.key).sort(),
    Array.from({ length: 20 }, (_, i) => `/part/majority/${i}`).sort(),
    'the minority writes never committed; the majority ones reached the healed member',
  );
});

test('raft processes: a member restarted far behind catches up by snapshot', async (t) => {
  const c = await startRaftProcesses({ members: 3, netns: true, snapshotEvery: 50 });
  t.teardown(() => c.stop());
  const leader = await c.leader();
  const lagging = c.members.find((m) => m !== leader)!;
  await c.kill(lagging);
  const kv = new RaftKvClient([leader.clientAddress], LOCAL_INSECURE);
  t.teardown(() => kv.close());
  for (let i = 0; i < 300; i++) await kv.put(`/snap/${i}`, String(i));
  await c.restart(lagging);
  await waitCaughtUp(c, lagging);
  const own = new RaftKvClient([lagging.clientAddress], LOCAL_INSECURE);
  t.teardown(() => own.close());
  const { kvs } = await own.range('/snap/');
  t.is(kvs.length, 300);
  t.regex(await c.log(lagging), /installed a snapshot at index \d+/);
});
