// A locked manager (autolock on, restarted): before it opens its store, CA, API, dispatcher or Raft,
// it serves one thing, on its root-only unix socket — the Autolock service's Status and Unlock —
// and waits for the unlock key. Every other API call on the socket is answered with UNAVAILABLE
// and what to do; the TLS port is not even bound yet. A wrong key is refused and counted, and
// after a few the next attempt must wait (unlock-attempts.ts). The right key gives the KEK that
// opens this manager's keys (the Raft keyring, or the etcd store key); the key itself is dropped at once.
import * as grpc from '@grpc/grpc-js';
import { chmod } from 'node:fs/promises';

import { loadApiPackage } from '../proto/load.js';
import { API_SERVER_OPTIONS, shutdownServer } from '../control-plane/api/grpc-server.js';
import { guardService } from '../control-plane/api/guard.js';
import { unlockedKek, type GuardedFiles } from '../control-plane/raft/storage/kek-lock.js';
import { parseUnlockKey, type UnlockKeyError } from '../control-plane/raft/storage/unlock-key.js';
import { autolockService, type AutolockHandlers } from './autolock-proto.js';
import { bindRootOnlySocket, removeStaleSocket } from './manager-servers.js';
import { UnlockAttempts } from './unlock-attempts.js';

export const LOCKED_MESSAGE = 'this manager is locked (autolock): unlock it with `tsctl cluster unlock` on this machine';

export interface UnlockGateOptions {
  /** The keys a right unlock key opens (<data-root>/raft/keys, or <data-root>/etcd-keys). */
  keys: GuardedFiles;
  /** unix:/path of the root-only socket. */
  socket: string;
  node: string;
  log: (message: string) => void;
}

export interface UnlockGate {
  /** The KEK, once the right key came; rejects when the gate is closed first (tsd stopping). */
  readonly unlocked: Promise<Buffer>;
  close(): Promise<void>;
}

function refusal(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

/** Every method of the API, refused with LOCKED_MESSAGE: tsctl's other commands say why they get nothing. */
function lockedApi(): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
  const definition = loadApiPackage().tessera.api.v1.Tessera.service;
  const unreachable = (): void => undefined;
  const handlers = Object.fromEntries(Object.keys(definition).map((method) => [method, unreachable]));
  return {
    definition,
    handlers: guardService(handlers, () => {
      throw Object.assign(new Error(LOCKED_MESSAGE), { code: grpc.status.UNAVAILABLE });
    }),
  };
}

export async function openUnlockGate(options: UnlockGateOptions): Promise<UnlockGate> {
  const { keys, socket, node, log } = options;
  const attempts = new UnlockAttempts();
  let resolveKek: (kek: Buffer) => void = () => undefined;
  let rejectKek: (err: Error) => void = () => undefined;
  const unlocked = new Promise<Buffer>((resolve, reject) => {
    resolveKek = resolve;
    rejectKek = reject;
  });
  let done = false;
  // One attempt at a time: two keys checked at once would both pass the rate limit.
  let checking = false;

  const tryKey = async (text: string): Promise<void> => {
    if (done) throw refusal(grpc.status.FAILED_PRECONDITION, 'this manager is being unlocked already');
    const wait = attempts.waitMs();
    if (wait > 0) throw refusal(grpc.status.RESOURCE_EXHAUSTED, `${attempts.failed} wrong unlock keys: try again in ${Math.ceil(wait / 1000)} s`);
    let key: Buffer;
    try {
      key = parseUnlockKey(text);
    } catch (err) {
      attempts.recordFailure();
      log(`autolock: an unlock attempt was refused (${(err as UnlockKeyError).message}); ${attempts.failed} wrong so far`);
      throw refusal(grpc.status.INVALID_ARGUMENT, (err as UnlockKeyError).message);
    }
    const kek = await unlockedKek(keys, key);
    key.fill(0);
    if (!kek) {
      const next = attempts.recordFailure();
      log(`autolock: a wrong unlock key was refused (${attempts.failed} wrong so far)`);
      const after = next > 0 ? `; the next attempt is taken in ${Math.ceil(next / 1000)} s` : '';
      throw refusal(
        grpc.status.PERMISSION_DENIED,
        `wrong unlock key: it does not open this manager's keys${after} (after a key rotation, a manager that was down still needs the key it was locked with)`,
      );
    }
    done = true;
    resolveKek(kek);
  };

  const handlers: AutolockHandlers = {
    Status: (_call, callback) => callback(null, { locked: true, autolock: true, node }),
    Unlock: (call, callback) => {
      if (checking) {
        callback(refusal(grpc.status.RESOURCE_EXHAUSTED, 'another unlock attempt is being checked'));
        return;
      }
      checking = true;
      void (async () => {
        try {
          await tryKey(String(call.request.unlockKey));
        } catch (err) {
          callback(err instanceof Error && 'code' in err ? (err as grpc.ServiceError) : refusal(grpc.status.INTERNAL, (err as Error).message));
          return;
        } finally {
          checking = false;
        }
        callback(null, {});
      })();
    },
    UnlockKey: (_call, callback) => callback(refusal(grpc.status.UNAVAILABLE, LOCKED_MESSAGE)),
    SetAutolock: (_call, callback) => callback(refusal(grpc.status.UNAVAILABLE, LOCKED_MESSAGE)),
  };

  const server = new grpc.Server(API_SERVER_OPTIONS);
  server.addService(autolockService().service, handlers as unknown as grpc.UntypedServiceImplementation);
  const api = lockedApi();
  server.addService(api.definition, api.handlers);
  const path = socket.slice('unix:'.length);
  await removeStaleSocket(path);
  await bindRootOnlySocket(server, socket);
  await chmod(path, 0o600);
  let closed: Promise<void> | undefined;
  return {
    unlocked,
    close: () => {
      closed ??= (async () => {
        if (!done) rejectKek(new Error('tsd stopped while this manager was locked'));
        done = true;
        await shutdownServer(server);
      })();
      return closed;
    },
  };
}
