// The Raft and store metrics (control-plane/metrics/raft-metrics.ts) on a real 3-member group in
// this process (real gRPC on loopback, real WALs with fsync): the values move as the group does, and
// Debian's promtool accepts the exposition. Also the memory store's metrics.
import { execFile } from 'node:child_process';

import test from 'ava';
import * as client from 'prom-client';

import { registerRaftMetrics, registerStoreMetrics } from '../../control-plane/metrics/raft-metrics.js';
import { startLocalGroup } from '../../control-plane/raft/host/local-group.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import type { RaftStore } from '../../control-plane/store/raft-store.js';

/** The value of one sample (`name` exactly, or `name{labels}` when `labels` is given) in the registry's text. */
async function sample(registry: client.Registry, name: string, labels = ''): Promise<number | undefined> {
  const wanted = labels ? `${name}{${labels}} ` : `${name} `;
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(wanted));
  return line === undefined ? undefined : Number(line.slice(wanted.length));
}

async function must(registry: client.Registry, name: string, labels = ''): Promise<number> {
  const v = await sample(registry, name, labels);
  if (v === undefined || Number.isNaN(v)) throw new Error(`no sample ${name}{${labels}} in the registry`);
  return v;
}

/** Polls until `check` holds (no timing assertion: the deadline only bounds a hang). */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `promtool check metrics` on the text; resolves with its complaints (empty when clean). */
function promtool(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && typeof err.code !== 'number') reject(new Error(`promtool did not run: ${err.message}`));
      else resolve({ code, output: `${stdout}${stderr}`.trim() });
    });
    child.stdin?.end(text);
  });
}

test('raft metrics follow a real group: leader, writes, fsyncs, snapshots, compaction, peer traffic, a leader change; promtool is clean', async (t) => {
  const g = await startLocalGroup(3, { snapshotEvery: 25 });
  t.teardown(() => g.stop());
  const registries = g.stores.map(() => new client.Registry());
  const metrics = g.stores.map((s, i) => registerRaftMetrics(registries[i]!, s, { probeEveryMs: 100 }));
  t.teardown(() => metrics.forEach((m) => m.stop()));
  const of = (s: RaftStore): client.Registry => registries[g.stores.indexOf(s)]!;

  const leader = await g.leader();
  await until('every member knows the leader and counted it', async () => {
    for (const r of registries) {
      if ((await must(r, 'tessera_server_has_leader')) !== 1) return false;
      if ((await must(r, 'tessera_server_leader_changes_seen_total')) < 1) return false;
    }
    return true;
  });
  const isLeader = await Promise.all(registries.map((r) => must(r, 'tessera_server_is_leader')));
  t.deepEqual(
    isLeader,
    g.stores.map((s) => (s === leader ? 1 : 0)),
    'only the leader reports is_leader 1',
  );
  for (const r of registries) {
    t.true((await must(r, 'tessera_server_term')) >= 1);
    t.is(await must(r, 'tessera_server_is_learner'), 0);
  }

  const before = await Promise.all(registries.map((r) => must(r, 'tessera_disk_wal_fsync_duration_seconds_count')));
  const committedBefore = await must(of(leader), 'tessera_server_proposals_committed_total');
  const follower = g.stores.find((s) => s !== leader)!;
  // Half through the leader, half forwarded by a follower.
  await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? leader : follower).put(`/m/${i}`, `value-${i}`)));
  await follower.delete('/m/0');
  const applied = leader.host.appliedIndex;
  await until('every member applied the writes', async () => g.stores.every((s) => s.host.appliedIndex >= applied));
  for (const [i, r] of registries.entries()) {
    t.true((await must(r, 'tessera_disk_wal_fsync_duration_seconds_count')) > before[i]!, `m${i}: fsyncs observed for the writes`);
    t.true((await must(r, 'tessera_disk_wal_write_duration_seconds_count')) > 0);
    t.true((await must(r, 'tessera_disk_wal_write_bytes_total')) > 0);
    t.is(await must(r, 'tessera_debugging_mvcc_keys'), 59, `m${i}: 60 keys written, one deleted`);
    t.true((await must(r, 'tessera_mvcc_db_total_size_in_bytes')) > 60 * 'value-xx'.length);
    t.true((await must(r, 'tessera_server_proposals_applied_total')) >= applied);
    t.is(await must(r, 'tessera_server_proposals_failed_total'), 0);
  }
  t.true((await must(of(leader), 'tessera_server_proposals_committed_total')) >= committedBefore + 61);
  t.is(await must(of(leader), 'tessera_server_proposals_pending'), 0, 'nothing left pending once all writes resolved');

  // Snapshots every 25 entries: made, written and measured on every member.
  await until('a snapshot on every member', async () => {
    for (const r of registries) if ((await must(r, 'tessera_debugging_snap_save_total_duration_seconds_count')) === 0) return false;
    return true;
  });
  for (const r of registries) {
    t.true((await must(r, 'tessera_snapshot_size_bytes')) > 0);
    t.true((await must(r, 'tessera_disk_backend_snapshot_duration_seconds_count')) > 0);
  }

  // A compaction is applied, and timed, on every member.
  const revision = await leader.currentRevision();
  await leader.compact(revision - 5);
  await until('the compaction applied everywhere', async () => {
    for (const r of registries) if ((await must(r, 'tessera_debugging_mvcc_compact_revision')) !== revision - 5) return false;
    return true;
  });
  for (const r of registries) {
    t.is(await must(r, 'tessera_debugging_mvcc_db_compaction_total_duration_seconds_count'), 1);
    t.is(await must(r, 'tessera_debugging_mvcc_current_revision'), revision);
  }

  // The probe measured every peer from every member.
  await until('round-trip times to both peers on every member', async () => {
    for (const [i, r] of registries.entries()) {
      for (const j of [0, 1, 2].filter((j) => j !== i))
        if (!((await sample(r, 'tessera_network_peer_round_trip_time_seconds_count', `To="m${j}"`)) ?? 0)) return false;
    }
    return true;
  });

  // Peer traffic. The leader and each follower talk both ways (appends, and their answers); two
  // followers only if one of them campaigned, which Raft does not promise, so their pair is checked
  // only where it is counted. What j received from i (read first) was sent by i before (read
  // second); no send has failed on a healthy group.
  const leaderIndex = g.stores.indexOf(leader);
  for (const [i, r] of registries.entries()) {
    for (const j of [0, 1, 2].filter((j) => j !== i)) {
      const withLeader = i === leaderIndex || j === leaderIndex;
      const got = await (withLeader ? must : sample)(registries[j]!, 'tessera_network_peer_received_bytes_total', `From="m${i}"`);
      if (got !== undefined) {
        const sent = await must(r, 'tessera_network_peer_sent_bytes_total', `To="m${j}"`);
        t.true(got > 0 && got <= sent, `m${j} received ${got} bytes from m${i}, which sent ${sent}`);
      }
      t.is(await sample(r, 'tessera_network_peer_sent_failures_total', `To="m${j}"`), undefined, `m${i}: no failed send to m${j}`);
    }
  }
  // A channel exists once a member has sent to the peer: always between leader and followers.
  for (const [i, r] of registries.entries()) {
    for (const j of [0, 1, 2].filter((j) => j !== i)) {
      const withLeader = i === leaderIndex || j === leaderIndex;
      const active = await (withLeader ? must : sample)(r, 'tessera_network_active_peers', `Local="m${i}",Remote="m${j}"`);
      if (active !== undefined) t.is(active, 1, `m${i}'s channel to m${j} is connected`);
    }
  }
  for (const j of [0, 1, 2].filter((j) => j !== leaderIndex)) {
    const sent = await must(of(leader), 'tessera_network_peer_sent_bytes_total', `To="m${j}"`);
    t.true(sent > 60 * '/m/xx'.length + 60 * 'value-xx'.length, `the leader replicated the 60 writes to m${j} (${sent} bytes)`);
  }

  const text = await registries[0]!.metrics();
  const checked = await promtool(text);
  t.is(checked.output, '', 'promtool check metrics has no complaint');
  t.is(checked.code, 0);

  // The leader goes: a survivor takes over, both count the change, is_leader flips.
  const survivors = g.stores.filter((s) => s !== leader);
  const changesBefore = await Promise.all(survivors.map((s) => must(of(s), 'tessera_server_leader_changes_seen_total')));
  metrics[g.stores.indexOf(leader)]!.stop();
  await leader.close();
  await until('a new leader among the survivors', async () => survivors.some((s) => s.isLeader()));
  const next = survivors.find((s) => s.isLeader())!;
  await until('both survivors know the new leader', async () => survivors.every((s) => s.host.leader() === next.host.id));
  t.is(await must(of(next), 'tessera_server_is_leader'), 1);
  // The survivors' sends to the stopped member fail (its server refuses them: stopped), and count.
  await until('a survivor counted failed sends to the old leader', async () => {
    for (const s of survivors) if (((await sample(of(s), 'tessera_network_peer_sent_failures_total', `To="${leader.host.id}"`)) ?? 0) > 0) return true;
    return false;
  });
  for (const [i, s] of survivors.entries()) {
    await until(`${s.host.id} counted the leader change`, async () => (await must(of(s), 'tessera_server_leader_changes_seen_total')) > changesBefore[i]!);
    t.is(await must(of(s), 'tessera_server_has_leader'), 1);
  }
});

test('memory store metrics: a leader always, keys and compaction; etcd registers none; promtool is clean', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const registry = new client.Registry();
  const m = registerStoreMetrics(registry, store);
  t.teardown(() => m.stop());
  t.is(await must(registry, 'tessera_server_has_leader'), 1);
  t.is(await must(registry, 'tessera_server_is_leader'), 1);
  for (let i = 0; i < 5; i++) await store.put(`/k/${i}`, 'v');
  await store.put('/k/0', 'again');
  await store.delete('/k/4');
  t.is(await must(registry, 'tessera_debugging_mvcc_keys'), 4);
  const sizeBefore = await must(registry, 'tessera_mvcc_db_total_size_in_bytes');
  await store.compact(await store.currentRevision());
  t.is(await must(registry, 'tessera_debugging_mvcc_db_compaction_total_duration_seconds_count'), 1);
  t.true((await must(registry, 'tessera_mvcc_db_total_size_in_bytes')) < sizeBefore, 'compaction dropped old versions and the tombstone');
  t.is(await sample(registry, 'tessera_disk_wal_fsync_duration_seconds_count'), undefined, 'no WAL with the memory store');
  const checked = await promtool(await registry.metrics());
  t.is(checked.output, '');
  t.is(checked.code, 0);

  // etcd: its consensus and database are etcd's, whose own /metrics has them. (The client connects
  // lazily; nothing here makes a call, so no etcd is needed.)
  const etcd = new EtcdStore({ endpoints: ['http://127.0.0.1:9'] });
  t.teardown(() => etcd.close());
  const etcdRegistry = new client.Registry();
  registerStoreMetrics(etcdRegistry, etcd).stop();
  t.is(etcdRegistry.getMetricsAsArray().length, 0);
});
