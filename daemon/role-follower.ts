// A promotion or demotion of this node, as its tsd lives it: the managers change the node's role
// in the store and tell the node (TrustUpdate.role); the node renews its certificate, and when the
// new certificate carries the new role it starts its manager half (which finds the cluster CA in
// its store once it is a Raft member) or stops it (dropping its copy of the store).
import { rm } from 'node:fs/promises';

import type { TransportSecurity } from '../common/transport/credentials.js';
import type { NodeIdentity } from './identity/bootstrap.js';
import { certPaths, shredCaFiles } from './identity/cert-files.js';

/** A renewal that came back with the old role is asked again after this long, at most this often. */
const ROLE_RETRY_MS = 1000;
const MAX_ROLE_RETRIES = 30;

export interface RoleFollowerDeps {
  node: NodeIdentity;
  security: TransportSecurity;
  dataRoot: string;
  raftDir: string;
  /** A manager to join the Raft group through. */
  someManager: () => string | undefined;
  isManager: () => boolean;
  startManager: (identity: NodeIdentity, joinVia: string) => Promise<void>;
  /** Stops the manager half if one runs (idempotent); it still counts as running until dropManager. */
  stopManager: () => Promise<void>;
  dropManager: () => void;
  renewSoon: () => Promise<void>;
  log: (message: string) => void;
}

export class RoleFollower {
  private changing: Promise<void> = Promise.resolve();
  /** The role the managers last said this node has, and how often a renewal came back without it. */
  private wanted: string | undefined;
  private retries = 0;

  constructor(private readonly deps: RoleFollowerDeps) {}

  /** The managers' word on this node's role; true when the certificate must be renewed for it. */
  told(role: string, certificateRole: string): boolean {
    if (role === '') return false;
    this.wanted = role;
    this.retries = 0;
    return role !== certificateRole;
  }

  /** A renewed certificate with `role`: follow it, and ask again if it is not the role wanted. */
  renewed(role: string): void {
    this.follow(role);
    // A manager whose store had not caught up with the change may have issued the old role again.
    if (this.wanted !== undefined && role !== this.wanted && this.retries++ < MAX_ROLE_RETRIES) {
      setTimeout(() => void this.deps.renewSoon(), ROLE_RETRY_MS).unref();
    }
  }

  private follow(role: string): void {
    const { deps } = this;
    // A demotion during a promotion's Raft join: the manager half stops at once, not when the join gives up.
    if (role === 'worker') void deps.stopManager();
    this.changing = this.changing
      .then(async () => {
        if (role === 'manager' && !deps.isManager()) await this.promote();
        else if (role === 'worker' && deps.isManager()) await this.demote();
      })
      .catch((err: unknown) => deps.log(`role change to ${role} failed: ${(err as Error).message}`));
  }

  private async promote(): Promise<void> {
    const { deps } = this;
    const via = deps.someManager();
    if (via === undefined) throw new Error('no manager is known to join the Raft group through');
    await deps.startManager({ ...deps.node, role: 'manager' }, via);
    deps.log('promoted: this node now runs a manager');
  }

  private async demote(): Promise<void> {
    const { deps } = this;
    await deps.stopManager();
    deps.dropManager();
    // A worker keeps no store (and with it no CA key): a later promotion starts afresh. CA files an
    // older version left are destroyed too.
    await shredCaFiles(certPaths(deps.dataRoot));
    await rm(deps.raftDir, { recursive: true, force: true });
    deps.log('demoted: this node no longer runs a manager');
  }
}
