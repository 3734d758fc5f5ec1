// The manager's gRPC plumbing: which calls reach which service (leader-only, Raft members only,
// the API method a path names), and the root-only unix socket. manager.ts composes them.
import * as grpc from '@grpc/grpc-js';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';

import { LOCAL_INSECURE } from '../common/transport/credentials.js';
import { bindServer } from '../control-plane/api/grpc-server.js';
import { guardService } from '../control-plane/api/guard.js';
import { API_METHODS, type ApiMethod } from '../control-plane/auth/authorization.js';
import type { RaftStore } from '../control-plane/store/raft-store.js';

const API_PATH_PREFIX = '/tessera.api.v1.Tessera/';

/** The API method a gRPC path names, if it is one. */
export function apiMethodOf(path: string): ApiMethod | undefined {
  if (!path.startsWith(API_PATH_PREFIX)) return undefined;
  const name = path.slice(API_PATH_PREFIX.length);
  return API_METHODS.find((m) => m === name);
}

/**
 * A manager certificate is not enough to speak Raft: the node must be a member of the group (a
 * manager removed with `cluster members remove` keeps its certificate until `node rm`).
 */
export function raftPeer(nodeId: string, raft: RaftStore | undefined): string {
  // Only a member that knows the group can tell: a new learner has no membership before the
  // leader's first snapshot reaches it, and must take the leader's messages to get one.
  if (raft?.isMember(raft.host.id) && !raft.isMember(nodeId)) {
    throw Object.assign(new Error(`node ${nodeId} is not a member of the Raft group`), { code: grpc.status.PERMISSION_DENIED });
  }
  return nodeId;
}

/** What a promotion or demotion needs from the Raft store: who leads, and removing a member. */
export function raftRoles(raft: RaftStore): { leader(): string | undefined; removeMember(id: string): Promise<void> } {
  return {
    leader: () => raft.host.leader() || undefined,
    removeMember: async (id) => {
      await raft.changeMembers({ type: 'remove-node', id, address: '' });
    },
  };
}

/**
 * The server as seen by a service registered through it: every call is refused with UNAVAILABLE
 * and `reason()` while it returns one (a follower sends agents on to the leader this way).
 */
export function leaderOnly(server: grpc.Server, reason: () => string | undefined): grpc.Server {
  const notLeader = (): void => {
    const why = reason();
    if (why) throw Object.assign(new Error(why), { code: grpc.status.UNAVAILABLE });
  };
  return {
    addService: (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => server.addService(def, guardService(impl, notLeader)),
  } as unknown as grpc.Server;
}

/**
 * Binds the root-only API socket: created with umask 0177 so it is never, even for an instant,
 * open to other users (the chmod after it is belt and braces).
 */
export async function bindRootOnlySocket(server: grpc.Server, address: string): Promise<void> {
  const previous = process.umask(0o177);
  try {
    await bindServer(server, address, LOCAL_INSECURE);
  } finally {
    process.umask(previous);
  }
}

/** Deletes a unix socket file nobody listens on any more; leaves a live one alone (bind then fails loudly). */
export async function removeStaleSocket(path: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (!live) await rm(path, { force: true });
}

export function splitHostPort(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), address.slice(colon + 1)];
}
