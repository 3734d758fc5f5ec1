// The real API server on a memory store over real mutual TLS on 127.0.0.1, with a manager
// certificate from the test PKI and the certificate authenticator: what tests of the API as a
// certified user (or tsctl with a context file, tsctl-context.ts) sees share. The images and logs
// the server is built with sit in a temporary directory; the test's teardown removes all of it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { FileLogSource } from '../../agent/worker/log-source.js';
import { ApiServer, type ApiServerDeps } from '../../control-plane/api/server.js';
import { certificateAuthenticator } from '../../control-plane/auth/authenticate.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { testPki, type TestPki } from './test-pki.js';

export interface MtlsApi {
  pki: TestPki;
  /** The temporary directory (images, logs, and whatever the test keeps there). */
  dir: string;
  store: MemoryStore;
  /** `127.0.0.1:<port>` */
  address: string;
}

export interface MtlsApiOptions {
  /** Names the temporary directory, e.g. "tessera-admission-api-". */
  prefix: string;
  /** Server dependencies beyond the stores and the cluster id; `address()` is the server's once it listens. */
  deps?: (where: { pki: TestPki; dir: string; address: () => string }) => Partial<ApiServerDeps> | Promise<Partial<ApiServerDeps>>;
  /** Serials the authenticator refuses; none by default. */
  isRevoked?: (serial: string) => boolean;
  /** Runs after the server closes, before the directory is removed (e.g. an audit log kept in it). */
  afterClose?: () => Promise<void>;
}

export async function serveMtlsApi(t: { teardown(fn: () => Promise<void>): void }, options: MtlsApiOptions): Promise<MtlsApi> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix));
  const pki = await testPki();
  const store = new MemoryStore();
  let address = '';
  const server = new ApiServer({
    store,
    images: new LocalImageStore({ root: join(dir, 'images') }),
    logs: new FileLogSource(join(dir, 'logs')),
    clusterId: pki.clusterId,
    version: 'test',
    storeBackend: 'memory',
    managers: () => [],
    ...(await options.deps?.({ pki, dir, address: () => address })),
  });
  const isRevoked = options.isRevoked ?? (() => false);
  const port = await server.listen('127.0.0.1:0', await pki.node('m1', 'manager'), certificateAuthenticator({ clusterId: () => pki.clusterId, isRevoked }));
  address = `127.0.0.1:${port}`;
  t.teardown(async () => {
    await server.close();
    await options.afterClose?.();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { pki, dir, store, address };
}
