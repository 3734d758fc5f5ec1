// A load generator for bench:store, run as a child process (the benchmark starts two): each
// process has its own event loop and heap, so the client's own queueing and garbage-collection
// pauses (a single Node client spends 10–13 % of its time in GC at these rates, with pauses up to
// 40 ms) weigh on the latencies of both stores much less than with one client process.
// Commands arrive over the IPC channel; latencies of each run go back the same way. For the TLS
// stores the connect command names the directory holding the client's certificate (store-tls.ts).
import { Etcd3 } from 'etcd3';

import { LOCAL_INSECURE, type TransportSecurity } from '../../common/transport/credentials.js';
import { RaftKvClient } from '../../control-plane/raft/transport/kv-client.js';
import { RaftPeerClient } from '../../control-plane/raft/transport/peer-client.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { CLIENT_NAME, etcdCredentials, managerSecurity, readBenchIdentity, type BenchIdentity } from './store-tls.js';

export type StoreName = 'tessera' | 'etcd' | 'tessera-tls' | 'etcd-tls';

export type LoadCommand =
  | { type: 'connect'; endpoints: Partial<Record<StoreName, string[]>>; tlsDir?: string }
  | { type: 'run'; store: StoreName; op: 'put' | 'get'; workers: number; firstWorker: number; seconds: number }
  /** `count` fresh clients one after another, each timed from its creation to its first call's answer. */
  | { type: 'handshake'; store: StoreName; endpoints: string[]; tlsDir?: string; count: number }
  | { type: 'close' };

export interface LoadReply {
  latencies: number[];
  /** CPU time (user + system) this process spent during the run, µs. */
  cpuMicros: number;
}

const VALUE = 'v'.repeat(256);

type Op = (worker: number, key: string) => Promise<void>;

interface StoreOps {
  put: Op;
  get: Op;
  close(): Promise<void>;
}

const opened = new Map<StoreName, StoreOps>();

const isTls = (store: StoreName): boolean => store.endsWith('-tls');
const isTessera = (store: StoreName): boolean => store.startsWith('tessera');

function tesseraOps(addresses: string[], security: TransportSecurity): StoreOps {
  // One client per member, workers spread over them, as the etcd client spreads its requests.
  const kv = addresses.map((_, i) => new RaftKvClient(addresses, security, i));
  return {
    put: async (w, key) => {
      await (kv[w % kv.length] as RaftKvClient).put(key, VALUE);
    },
    get: async (w, key) => {
      await (kv[w % kv.length] as RaftKvClient).range(key);
    },
    close: async () => kv.forEach((c) => c.close()),
  };
}

function etcdOps(urls: string[], tls: BenchIdentity | undefined): StoreOps {
  const stores = urls.map((url) => new EtcdStore({ endpoints: [url], ...(tls ? { client: { credentials: etcdCredentials(tls) } } : {}) }));
  return {
    put: (w, key) => (stores[w % stores.length] as EtcdStore).put(key, VALUE).then(() => undefined),
    get: (w, key) => (stores[w % stores.length] as EtcdStore).get(key).then(() => undefined),
    close: async () => {
      for (const s of stores) await s.close();
    },
  };
}

async function clientIdentity(store: StoreName, tlsDir: string | undefined): Promise<BenchIdentity | undefined> {
  if (!isTls(store)) return undefined;
  if (!tlsDir) throw new Error(`store-load: ${store} needs tlsDir in the command`);
  return readBenchIdentity(tlsDir, CLIENT_NAME);
}

async function connect(c: Extract<LoadCommand, { type: 'connect' }>): Promise<void> {
  for (const [store, endpoints] of Object.entries(c.endpoints) as Array<[StoreName, string[]]>) {
    const tls = await clientIdentity(store, c.tlsDir);
    // One identity per process for all its Tessera clients, as a node has one.
    opened.set(store, isTessera(store) ? tesseraOps(endpoints, tls ? managerSecurity(tls) : LOCAL_INSECURE) : etcdOps(endpoints, tls));
  }
}

async function run(c: Extract<LoadCommand, { type: 'run' }>): Promise<LoadReply> {
  const store = opened.get(c.store);
  if (!store) throw new Error(`store-load: run on ${c.store} before connecting to it`);
  const op = store[c.op];
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpuBefore);
  return { latencies, cpuMicros: cpu.user + cpu.system };
}

/** A new client (a new node's first contact): channel, TCP connect, TLS handshake if any, one status call. */
async function freshClientFirstCall(store: StoreName, endpoint: string, tls: BenchIdentity | undefined): Promise<void> {
  if (isTessera(store)) {
    // A new TlsIdentity each time: a new node has its own, so nothing is shared with an earlier client.
    const client = new RaftPeerClient(endpoint, tls ? managerSecurity(tls) : LOCAL_INSECURE);
    try {
      await client.status(5000);
    } finally {
      client.close();
    }
    return;
  }
  const client = new Etcd3({ hosts: [endpoint], ...(tls ? { credentials: etcdCredentials(tls) } : {}) });
  try {
    await client.maintenance.status();
  } finally {
    client.close();
  }
}

async function handshakes(c: Extract<LoadCommand, { type: 'handshake' }>): Promise<LoadReply> {
  const tls = await clientIdentity(c.store, c.tlsDir);
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < c.count; i++) {
    const t0 = performance.now();
    await freshClientFirstCall(c.store, c.endpoints[i % c.endpoints.length] as string, tls);
    latencies.push(performance.now() - t0);
    // Let the closed connection go before the next client: grpc-js pools connections by address,
    // and a plaintext client made while the last one is still open would reuse it.
    await new Promise((r) => setTimeout(r, 50));
  }
  const cpu = process.cpuUsage(cpuBefore);
  return { latencies, cpuMicros: cpu.user + cpu.system };
}

function fail(err: Error): never {
  process.stderr.write(`store-load: ${err.stack ?? err.message}\n`);
  process.exit(1);
}

process.on('message', (m: LoadCommand) => {
  const reply = (r: LoadReply): void => void process.send?.(r);
  if (m.type === 'connect') connect(m).then(() => reply({ latencies: [], cpuMicros: 0 }), fail);
  else if (m.type === 'run') run(m).then(reply, fail);
  else if (m.type === 'handshake') handshakes(m).then(reply, fail);
  else void Promise.all([...opened.values()].map((s) => s.close())).then(() => process.exit(0));
});
