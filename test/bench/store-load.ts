// A load generator for bench:store, run as a child process (the benchmark starts two): each
// process has its own event loop and heap, so the client's own queueing and garbage-collection
// pauses (a single Node client spends 10–13 % of its time in GC at these rates, with pauses up to
// 40 ms) weigh on the latencies of both stores much less than with one client process.
// Commands arrive over the IPC channel; latencies of each run go back the same way.
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
import { RaftKvClient } from '../../control-plane/raft/transport/kv-client.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';

export type StoreName = 'tessera' | 'etcd';

export type LoadCommand =
  | { type: 'connect'; tessera: string[]; etcd: string[] }
  | { type: 'run'; store: StoreName; op: 'put' | 'get'; workers: number; firstWorker: number; seconds: number }
  | { type: 'close' };

export interface LoadReply {
  latencies: number[];
}

const VALUE = 'v'.repeat(256);

type Op = (worker: number, key: string) => Promise<void>;

let ops: Record<StoreName, { put: Op; get: Op; close: () => Promise<void> }> | undefined;

function connect(tessera: string[], etcd: string[]): void {
  // One client per member, workers spread over them, as the etcd client spreads its requests.
  const kv = tessera.map((_, i) => new RaftKvClient(tessera, LOCAL_INSECURE, i));
  const stores = etcd.map((url) => new EtcdStore({ endpoints: [url] }));
  ops = {
    tessera: {
      put: async (w, key) => {
        await (kv[w % kv.length] as RaftKvClient).put(key, VALUE);
      },
      get: async (w, key) => {
        await (kv[w % kv.length] as RaftKvClient).range(key);
      },
      close: async () => kv.forEach((c) => c.close()),
    },
    etcd: {
      put: (w, key) => (stores[w % stores.length] as EtcdStore).put(key, VALUE).then(() => undefined),
      get: (w, key) => (stores[w % stores.length] as EtcdStore).get(key).then(() => undefined),
      close: async () => {
        for (const s of stores) await s.close();
      },
    },
  };
}

async function run(c: Extract<LoadCommand, { type: 'run' }>): Promise<number[]> {
  if (!ops) throw new Error('store-load: run before connect');
  const op = ops[c.store][c.op];
  const latencies: number[] = [];
  const end = Date.now() + c.seconds * 1000;
  await Promise.all(
    Array.from({ length: c.workers }, async (_, local) => {
      const w = c.firstWorker + local;
      for (let i = 0; Date.now() < end; i++) {
        const key = c.op === 'put' ? `/bench/${w}/${i % 100}` : `/bench/${w % 16}/${i % 100}`;
        const t0 = performance.now();
        await op(w, key);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return latencies;
}

process.on('message', (m: LoadCommand) => {
  const reply = (r: LoadReply): void => void process.send?.(r);
  if (m.type === 'connect') {
    connect(m.tessera, m.etcd);
    reply({ latencies: [] });
  } else if (m.type === 'run') {
    run(m).then(
      (latencies) => reply({ latencies }),
      (err: Error) => {
        process.stderr.write(`store-load: ${err.stack ?? err.message}\n`);
        process.exit(1);
      },
    );
  } else {
    void (ops ? Promise.all([ops.tessera.close(), ops.etcd.close()]) : Promise.resolve()).then(() => process.exit(0));
  }
});
