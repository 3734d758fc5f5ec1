// Autolock in a manager's start (manager.ts calls these, so it stays a composition):
// - before anything else, where the KEK of this manager's keys comes from (the Raft keyring's, or
//   the one that seals the etcd backend's store key): a kek file (nothing to do), the unlock key of
//   a locked manager (it waits at the unlock gate, serving nothing else), or a new unlock key when
//   `tsd init --autolock` founds a cluster (no kek file is ever written);
// - once the store is open, the keeper that follows the cluster's setting, and its service.
import type * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { ensureUnlockSalt, guardState, lockSecret, unlockSecretForGood, type GuardedFiles } from '../control-plane/raft/storage/kek-lock.js';
import { keyringFiles } from '../control-plane/raft/storage/keyring-lock.js';
import { deriveKek, newUnlockKey, parseUnlockKey } from '../control-plane/raft/storage/unlock-key.js';
import type { Authenticate } from '../control-plane/auth/authenticate.js';
import type { AuditRecord } from '../control-plane/api/server.js';
import type { RaftStore } from '../control-plane/store/raft-store.js';
import type { Store } from '../control-plane/store/store.js';
import { AutolockKeeper, type ProtectedKeys } from './autolock-keeper.js';
import { autolockService } from './autolock-proto.js';
import { autolockHandlers } from './autolock-service.js';
import { apiSocketOf, dataPaths, type DaemonConfig } from './config.js';
import { storeKeyDir } from './identity/store-key.js';
import { storeKeyFiles, storeKeySecret } from './identity/store-key-lock.js';
import { openUnlockGate } from './unlock-gate.js';

export interface StartingKek {
  /** The KEK that opens this manager's keys; undefined: a kek file (or a new one) as before autolock. */
  kek?: Uint8Array;
  /** The unlock key of a cluster founded with autolock on, to be put in the store (and shown once). */
  initialUnlockKey?: string;
}

export interface KekAtStartOptions {
  config: DaemonConfig;
  /** This manager founds the cluster (it does not join one). */
  founding: boolean;
  log: (message: string) => void;
  /** Called with the gate's close while a locked manager waits (tsd's stop must end the wait). */
  onWaiting: (close: () => Promise<void>) => void;
}

/** The keys autolock protects on this manager: the Raft keyring, or the etcd store key; none for the memory store. */
function guardedKeys(config: DaemonConfig): { files: GuardedFiles; name: string } | undefined {
  if (config.store === 'raft') return { files: keyringFiles(join(dataPaths(config).raft, 'keys')), name: 'the Raft keyring' };
  if (config.store === 'etcd') return { files: storeKeyFiles(storeKeyDir(config.dataRoot)), name: 'the etcd store key' };
  return undefined;
}

export async function kekAtStart(options: KekAtStartOptions): Promise<StartingKek> {
  const { config, log } = options;
  const guarded = guardedKeys(config);
  if (!guarded) return {};
  const { files, name } = guarded;
  const state = await guardState(files);
  if (state.kind === 'locked') {
    const socket = apiSocketOf(config);
    const gate = await openUnlockGate({ keys: files, socket, node: config.nodeName, log });
    options.onWaiting(() => gate.close());
    log(`autolock: this manager is locked; it serves nothing until it is unlocked: run \`tsctl cluster unlock\` on this machine (socket ${socket})`);
    const kek = await gate.unlocked;
    await gate.close();
    log('autolock: unlocked; starting');
    return { kek };
  }
  if (state.kind === 'new' && options.founding && config.autolock) {
    await mkdir(files.dir, { recursive: true, mode: 0o700 });
    const unlockKey = newUnlockKey();
    const key = parseUnlockKey(unlockKey);
    const kek = deriveKek(key, await ensureUnlockSalt(files.dir));
    key.fill(0);
    log(`autolock: on from the start; ${name} is wrapped under a key derived from the unlock key (no kek file)`);
    return { kek, initialUnlockKey: unlockKey };
  }
  if (config.autolock && state.kind !== 'new') {
    log(`autolock: --autolock applies when a cluster is founded; this manager already has ${name} (use tsctl cluster update --autolock=true)`);
  }
  return {};
}

/** What the keeper re-wraps on this manager: the Raft store's keyring, or the etcd store key (held by the manager since its store opened). */
export function protectedKeysOf(raft: RaftStore | undefined, storeKey: Uint8Array | undefined, dataRoot: string): ProtectedKeys | undefined {
  if (raft) return { what: 'Raft data keys', kekFile: 'raft/keys/kek', protectKeys: (key) => raft.protectKeys(key) };
  if (!storeKey) return undefined;
  const secret = storeKeySecret(storeKeyDir(dataRoot), storeKey);
  return { what: 'etcd store key', kekFile: 'etcd-keys/kek', protectKeys: (key) => (key ? lockSecret(secret, key) : unlockSecretForGood(secret)) };
}

/** Follows the cluster's autolock record; `initialUnlockKey` (tsd init --autolock) is stored first when the store has no record. */
export function startAutolockKeeper(
  store: Store,
  keys: ProtectedKeys,
  initialUnlockKey: string | undefined,
  log: (message: string) => void,
): Promise<AutolockKeeper> {
  return AutolockKeeper.start(store, keys, log, initialUnlockKey);
}

export interface AutolockServing {
  keeper: AutolockKeeper;
  node: string;
  audit: (record: AuditRecord) => void;
  /** The TLS port's server and its authenticator; the root socket's server and its. */
  servers: Array<{ server: grpc.Server; authenticate: Authenticate }>;
}

/** Serves the Autolock service on each server. */
export function serveAutolock(options: AutolockServing): void {
  for (const { server, authenticate } of options.servers) {
    const handlers = autolockHandlers({ keeper: options.keeper, authenticate, audit: options.audit, node: options.node });
    server.addService(autolockService().service, handlers as unknown as grpc.UntypedServiceImplementation);
  }
}
