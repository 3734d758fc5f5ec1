// Autolock in a manager's start (manager.ts calls these, so it stays a composition):
// - before anything else, where the Raft keyring's KEK comes from: keys/kek (nothing to do), the
//   unlock key of a locked manager (it waits at the unlock gate, serving nothing else), or a new
//   unlock key when `tsd init --autolock` founds a cluster (no kek file is ever written);
// - once the store is open, the keeper that follows the cluster's setting, and its service.
import type * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { ensureUnlockSalt, keysDirState } from '../control-plane/raft/storage/keyring-lock.js';
import { deriveKek, newUnlockKey, parseUnlockKey } from '../control-plane/raft/storage/unlock-key.js';
import type { Authenticate } from '../control-plane/auth/authenticate.js';
import type { AuditRecord } from '../control-plane/api/server.js';
import type { RaftStore } from '../control-plane/store/raft-store.js';
import { AutolockKeeper } from './autolock-keeper.js';
import { autolockService } from './autolock-proto.js';
import { autolockHandlers } from './autolock-service.js';
import { apiSocketOf, dataPaths, type DaemonConfig } from './config.js';
import { openUnlockGate } from './unlock-gate.js';

export interface KeyringKek {
  /** The KEK to open the keyring with; undefined: keys/kek (or a new one) as before autolock. */
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

export async function keyringKekAtStart(options: KekAtStartOptions): Promise<KeyringKek> {
  const { config, log } = options;
  if (config.store !== 'raft') return {};
  const keysDir = join(dataPaths(config).raft, 'keys');
  const state = await keysDirState(keysDir);
  if (state.kind === 'locked') {
    const socket = apiSocketOf(config);
    const gate = await openUnlockGate({ keysDir, socket, node: config.nodeName, log });
    options.onWaiting(() => gate.close());
    log(`autolock: this manager is locked; it serves nothing until it is unlocked: run \`tsctl cluster unlock\` on this machine (socket ${socket})`);
    const kek = await gate.unlocked;
    await gate.close();
    log('autolock: unlocked; starting');
    return { kek };
  }
  if (state.kind === 'new' && options.founding && config.autolock) {
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
    const unlockKey = newUnlockKey();
    const key = parseUnlockKey(unlockKey);
    const kek = deriveKek(key, await ensureUnlockSalt(keysDir));
    key.fill(0);
    log('autolock: on from the start; the Raft keyring is wrapped under a key derived from the unlock key (no keys/kek)');
    return { kek, initialUnlockKey: unlockKey };
  }
  if (config.autolock && state.kind !== 'new') {
    log('autolock: --autolock applies when a cluster is founded; this manager already has its keyring (use tsctl cluster update --autolock=true)');
  }
  return {};
}

/** Follows the cluster's autolock record; `initialUnlockKey` (tsd init --autolock) is stored first when the store has no record. */
export function startAutolockKeeper(store: RaftStore, initialUnlockKey: string | undefined, log: (message: string) => void): Promise<AutolockKeeper> {
  return AutolockKeeper.start(store, store, log, initialUnlockKey);
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
