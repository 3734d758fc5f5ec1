// The stores bench:store compares, each a 3-member cluster on loopback: Tessera's Raft store
// (member processes of raft-harness.ts) and etcd, each in plaintext and over mutual TLS.
import * as grpc from '@grpc/grpc-js';

import { LOCAL_INSECURE, type TransportSecurity } from '../../common/transport/credentials.js';
import { RaftKvClient } from '../../control-plane/raft/transport/kv-client.js';
import { RaftPeerClient } from '../../control-plane/raft/transport/peer-client.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../helpers/etcd.js';
import { startRaftProcesses, type RaftProcessCluster } from '../integration/raft-harness.js';
import type { StoreName } from './store-load.js';
import { CLIENT_NAME, MEMBER_TLS_DIR_ENV, WORKER_NAME, managerSecurity, readBenchIdentity, type BenchPki } from './store-tls.js';

export const VALUE = 'v'.repeat(256);
// Snapshot every 100,000 entries, etcd's default --snapshot-count (etcd runs with its defaults).
const SNAPSHOT_EVERY = 100_000;

/** A running store the load processes measure. */
export interface ServedStore {
  name: StoreName;
  /** Where the load processes connect: member client addresses (Tessera) or client URLs (etcd). */
  endpoints: string[];
  /** The member processes, whose CPU time is read around each measurement. */
  pids(): number[];
  close(): Promise<void>;
}

/** A plaintext store, also measured for leader fail-over. */
export interface Backend extends ServedStore {
  /** A put from this process (warming up before a fail-over). */
  put(worker: number, key: string): Promise<void>;
  /** Kills the leader; resolves with ms until a write started after the kill succeeded. */
  failover(): Promise<number>;
}

async function writeUntilSuccess(put: () => Promise<void>, deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      await put();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const memberPids = (cluster: RaftProcessCluster): number[] => cluster.members.flatMap((m) => (m.child?.pid === undefined ? [] : [m.child.pid]));

export async function tesseraBackend(): Promise<Backend> {
  const cluster: RaftProcessCluster = await startRaftProcesses({ members: 3, netns: false, snapshotEvery: SNAPSHOT_EVERY });
  const clients = [0, 1, 2].map((i) => new RaftKvClient(cluster.clientAddresses(), LOCAL_INSECURE, i));
  await cluster.leader();
  return {
    name: 'tessera',
    endpoints: cluster.clientAddresses(),
    pids: () => memberPids(cluster),
    put: async (w, key) => {
      await (clients[w % 3] as RaftKvClient).put(key, VALUE);
    },
    failover: async () => {
      const leader = await cluster.leader();
      const kv = new RaftKvClient(
        cluster.members.filter((m) => m !== leader).map((m) => m.clientAddress),
        LOCAL_INSECURE,
      );
      const t0 = Date.now();
      await cluster.kill(leader);
      await writeUntilSuccess(() => kv.put('/bench/failover', String(t0), 2000).then(() => undefined));
      const ms = Date.now() - t0;
      kv.close();
      await cluster.restart(leader);
      return ms;
    },
    close: async () => {
      for (const c of clients) c.close();
      await cluster.stop();
    },
  };
}

async function etcdLeader(cluster: EtcdCluster): Promise<EtcdMember> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const m of cluster.members) {
      try {
        const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        if (body.leader && body.header?.member_id === body.leader) return m;
      } catch {
        // down or starting
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('etcd: no leader found');
}

export async function etcdBackend(): Promise<Backend> {
  const cluster = await startEtcdCluster({ members: 3 });
  const stores = [0, 1, 2].map((i) => new EtcdStore({ endpoints: [cluster.members[i]!.clientUrl] }));
  return {
    name: 'etcd',
    endpoints: cluster.members.map((m) => m.clientUrl),
    pids: () => cluster.members.map((m) => m.pid),
    put: async (w, key) => {
      await (stores[w % 3] as EtcdStore).put(key, VALUE);
    },
    failover: async () => {
      const leader = await etcdLeader(cluster);
      // Through etcd's JSON gateway straight to the survivors, each attempt bounded by 1 s: the
      // etcd3 client's own retry back-off (about 7 s here) would measure the client, not etcd.
      const others = cluster.members.filter((m) => m !== leader).map((m) => m.clientUrl);
      const body = JSON.stringify({ key: Buffer.from('/bench/failover').toString('base64'), value: Buffer.from('x').toString('base64') });
      let next = 0;
      const t0 = Date.now();
      await cluster.kill(leader);
      await writeUntilSuccess(async () => {
        const url = others[next++ % others.length] as string;
        const res = await fetch(`${url}/v3/kv/put`, { method: 'POST', body, signal: AbortSignal.timeout(1000) });
        const answer = (await res.json()) as { header?: { revision?: string }; error?: string };
        if (!res.ok || !answer.header?.revision) throw new Error(`etcd put: ${res.status} ${answer.error ?? ''}`);
      });
      return Date.now() - t0;
    },
    close: async () => {
      for (const s of stores) await s.close();
      await cluster.stop();
    },
  };
}

/**
 * The harness starts members with this process's environment and has no option for more; the
 * variable is set only while the TLS members start (nothing else is spawned meanwhile), so the
 * plaintext members and the load processes do not inherit it.
 */
async function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  process.env[name] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

/** The harness's own leader() asks in plaintext, which TLS members refuse; this asks with a manager certificate. */
async function waitForLeader(addresses: string[], security: TransportSecurity, timeoutMs = 15_000): Promise<void> {
  const clients = addresses.map((a) => new RaftPeerClient(a, security));
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // A member that does not answer yet (starting, electing) is simply not the leader yet.
      const statuses = await Promise.all(clients.map((c) => c.status(1000).catch(() => undefined)));
      if (statuses.some((s) => s?.role === 'leader')) return;
      if (Date.now() > deadline) throw new Error(`tessera-tls: no leader within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const c of clients) c.close();
  }
}

/** The Raft port admits managers only (as tsd's): a worker certificate must get PERMISSION_DENIED. */
async function assertWorkerRefused(address: string, worker: TransportSecurity): Promise<void> {
  const client = new RaftPeerClient(address, worker);
  try {
    await client.status(5000);
  } catch (err) {
    if ((err as grpc.ServiceError).code === grpc.status.PERMISSION_DENIED) return;
    throw new Error(`tessera-tls: a worker certificate got ${(err as Error).message}, expected PERMISSION_DENIED`);
  } finally {
    client.close();
  }
  throw new Error('tessera-tls: a worker certificate was admitted to the Raft port; the members do not check callers as tsd does');
}

export async function tesseraTlsBackend(pki: BenchPki): Promise<ServedStore> {
  const cluster = await withEnv(MEMBER_TLS_DIR_ENV, pki.dir, () => startRaftProcesses({ members: 3, netns: false, snapshotEvery: SNAPSHOT_EVERY }));
  try {
    await waitForLeader(cluster.clientAddresses(), managerSecurity(await readBenchIdentity(pki.dir, CLIENT_NAME)));
    await assertWorkerRefused(cluster.clientAddresses()[0] as string, managerSecurity(await readBenchIdentity(pki.dir, WORKER_NAME)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return { name: 'tessera-tls', endpoints: cluster.clientAddresses(), pids: () => memberPids(cluster), close: () => cluster.stop() };
}

export async function etcdTlsBackend(pki: BenchPki): Promise<ServedStore> {
  const cluster = await startEtcdCluster({ members: 3, tls: pki.etcdFiles });
  return { name: 'etcd-tls', endpoints: cluster.members.map((m) => m.clientUrl), pids: () => cluster.members.map((m) => m.pid), close: () => cluster.stop() };
}
