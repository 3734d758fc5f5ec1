// The API server on a memory store, with image and log stores in a temporary directory — what
// the tests of API semantics share (no node, no controllers). `serveMemoryApi` also listens on a
// unix socket and connects a client.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalImageStore } from '../../agent/images/image-store.js';
import { FileLogSource } from '../../agent/worker/log-source.js';
import { ApiServer } from '../../control-plane/api/server.js';
import { LOCAL_INSECURE } from '../../common/transport/credentials.js';
// Loopback only, as root: these tests exercise the API itself; authentication has its own tests (test/security/).
import { authenticateLocalRoot } from '../../control-plane/auth/authenticate.js';
import { MemoryStore } from '../../control-plane/store/memory-store.js';
import { ApiClient } from '../../cli/client.js';

export interface MemoryApi {
  server: ApiServer;
  store: MemoryStore;
  dir: string;
}

export interface ServedMemoryApi extends MemoryApi {
  client: ApiClient;
  address: string;
}

/** A (new) API server over `store`, keeping images and logs under `dir`. */
export function apiServerOn(store: MemoryStore, dir: string, images = new LocalImageStore({ root: join(dir, 'images') })): ApiServer {
  return new ApiServer({
    store,
    images,
    logs: new FileLogSource(join(dir, 'logs')),
    clusterId: 'test',
    version: 'test',
    storeBackend: 'memory',
    managers: () => [],
  });
}

/** `prefix` names the temporary directory, e.g. "tessera-api-". */
export async function memoryApi(prefix: string, images?: (dir: string) => LocalImageStore): Promise<MemoryApi> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const store = new MemoryStore();
  return { server: apiServerOn(store, dir, images?.(dir)), store, dir };
}

export async function serveMemoryApi(prefix: string, images?: (dir: string) => LocalImageStore): Promise<ServedMemoryApi> {
  const api = await memoryApi(prefix, images);
  const address = `unix:${join(api.dir, 'api.sock')}`;
  await api.server.listen(address, LOCAL_INSECURE, authenticateLocalRoot);
  return { ...api, client: new ApiClient(address), address };
}

export async function stopMemoryApi(api: MemoryApi & { client?: ApiClient }): Promise<void> {
  api.client?.close();
  await api.server.close();
  await api.store.close();
  await rm(api.dir, { recursive: true, force: true });
}
