// One Raft store member with its own gRPC server: what the member process, the in-process test
// groups and the benchmark run. (tsd serves the Raft service on its API server instead.)
import * as grpc from '@grpc/grpc-js';

import { serverCredentials, type TransportSecurity } from '../../../common/transport/credentials.js';
import { RaftStore, type RaftStoreOptions } from '../../store/raft-store.js';
import { LEAN_CALL_OPTIONS, MAX_MESSAGE_BYTES } from '../transport/proto.js';
import { addRaftService, type RaftServiceHandlers } from '../transport/raft-service.js';

export interface ServedMember {
  store: RaftStore;
  address: string;
  stop(): Promise<void>;
}

export function newRaftServer(interceptors: grpc.ServerInterceptor[] = []): grpc.Server {
  return new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...LEAN_CALL_OPTIONS,
    interceptors,
  });
}

export function bind(server: grpc.Server, address: string, security: TransportSecurity): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, serverCredentials(security), (err, port) => (err ? reject(err) : resolve(port))));
}

/** Handlers that wait for the store: the server must be bound (to learn its port) before the store exists. */
export function lateHandlers(get: () => RaftServiceHandlers | undefined): RaftServiceHandlers {
  const h = (): RaftServiceHandlers => {
    const handlers = get();
    if (!handlers) throw new Error('raft member is starting');
    return handlers;
  };
  return {
    receive: (b, bytes) => h().receive(b, bytes),
    propose: async (c, f, ms) => h().propose(c, f, ms),
    rangeJson: async (p) => h().rangeJson(p),
    status: async () => h().status(),
    changeMembers: async (r) => h().changeMembers(r),
  };
}

export function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 1000);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Serves a member on `listen` (host:port; port 0 picks one). `bootstrap` may name this member's
 * address as '' when the port is not known yet: it is filled in once bound.
 */
export async function serveRaftMember(listen: string, options: Omit<RaftStoreOptions, 'address'> & { advertiseHost?: string }): Promise<ServedMember> {
  const server = newRaftServer();
  let store: RaftStore | undefined;
  addRaftService(
    server,
    lateHandlers(() => store),
  );
  const port = await bind(server, listen, options.security);
  const host = options.advertiseHost ?? listen.slice(0, listen.lastIndexOf(':'));
  const address = `${host}:${port}`;
  const bootstrap = options.bootstrap?.map((m) => (m.id === options.id && m.address === '' ? { ...m, address } : m));
  try {
    store = await RaftStore.open({ ...options, address, ...(bootstrap ? { bootstrap } : {}) });
  } catch (err) {
    server.forceShutdown();
    throw err;
  }
  const opened = store;
  return {
    store: opened,
    address,
    stop: async () => {
      await opened.close();
      await shutdown(server);
    },
  };
}
