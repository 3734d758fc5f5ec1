// A Raft store group of N members inside one process, each behind its own gRPC server on
// loopback: real transport, real WAL and fsync, for tests and tools. Members are named m0..m(N-1).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LOCAL_INSECURE } from '../../../common/transport/credentials.js';
import { RaftStore, type RaftStoreOptions } from '../../store/raft-store.js';
import { addRaftService } from '../transport/raft-service.js';
import { bind, lateHandlers, newRaftServer, shutdown } from './serve-member.js';

export interface LocalGroup {
  stores: RaftStore[];
  addresses: string[];
  dir: string;
  /** The member that is leader now (waits for one). */
  leader(timeoutMs?: number): Promise<RaftStore>;
  stop(): Promise<void>;
}

export async function startLocalGroup(
  size: number,
  options: Partial<Pick<RaftStoreOptions, 'tickMs' | 'electionTick' | 'snapshotEvery' | 'log'>> = {},
): Promise<LocalGroup> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-raft-group-'));
  const servers = Array.from({ length: size }, () => newRaftServer());
  const stores: Array<RaftStore | undefined> = Array.from({ length: size }, () => undefined);
  /** Closes every member and removes the group's files even when a close fails; then reports the failures. */
  const stop = async (): Promise<void> => {
    const closed = await Promise.allSettled(stores.map((s) => (s ? s.close() : Promise.resolve())));
    await Promise.all(servers.map((s) => shutdown(s)));
    await rm(dir, { recursive: true, force: true });
    const failures = closed.flatMap((r, i) => (r.status === 'rejected' ? [`m${i}: ${String(r.reason)}`] : []));
    if (failures.length > 0) throw new Error(`local raft group: closing members failed: ${failures.join('; ')}`);
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < size; i++) {
      addRaftService(
        servers[i]!,
        lateHandlers(() => stores[i]),
      );
      ports.push(await bind(servers[i]!, '127.0.0.1:0', LOCAL_INSECURE));
    }
    const addresses = ports.map((p) => `127.0.0.1:${p}`);
    const bootstrap = addresses.map((address, i) => ({ id: `m${i}`, address }));
    for (let i = 0; i < size; i++) {
      stores[i] = await RaftStore.open({
        id: `m${i}`,
        group: 'local',
        address: addresses[i]!,
        dataDir: join(dir, `m${i}`),
        bootstrap,
        security: LOCAL_INSECURE,
        tickMs: options.tickMs ?? 50,
        electionTick: options.electionTick ?? 10,
        ...(options.snapshotEvery ? { snapshotEvery: options.snapshotEvery } : {}),
        ...(options.log ? { log: options.log } : {}),
      });
    }
    const opened = stores as RaftStore[];
    const leader = async (timeoutMs = 10_000): Promise<RaftStore> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const l = opened.find((s) => s.isLeader());
        if (l) return l;
        if (Date.now() > deadline) throw new Error(`no leader among ${size} members within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await leader();
    return { stores: opened, addresses, dir, leader, stop };
  } catch (err) {
    await stop().catch((stopErr: unknown) => {
      throw new AggregateError([err, stopErr], `local raft group failed to start (${String(err)}), and its clean-up failed too`);
    });
    throw err;
  }
}
