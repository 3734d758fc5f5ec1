// The manager's identity duties, wired from the store and this node's CA: the cluster's trust
// state (ClusterSecurity), the API's identity operations (user certificates, node removal) and the
// audit log. manager.ts composes them with the servers.
import * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import { generateJoinSecret, hashJoinSecret } from '../common/identity/join-token.js';
import { caDigest, parseIdentity } from '../common/identity/certificate.js';
import { joinPem } from '../common/identity/x509.js';
import { chainOf } from '../control-plane/ca/node-ca-service.js';
import { rotationProgress } from '../control-plane/ca/rotation.js';
import type { IssuedRecord } from '../control-plane/ca/cluster-meta.js';
import { parseCertificate } from '../common/identity/x509.js';
import type { CaKeeper, Signer } from './ca-keeper.js';
import { certPaths, persistIdentity } from './identity/cert-files.js';
import { ApiError } from '../control-plane/api/errors.js';
import type { ApiServerDeps, AuditRecord } from '../control-plane/api/server.js';
import { auditEntry } from '../control-plane/audit/audit-entry.js';
import { AuditLog } from '../control-plane/audit/audit-log.js';
import { auditLine } from '../control-plane/audit/audit-line.js';
import { grpcCodeOf } from '../control-plane/api/errors.js';
import { ClusterSecurity } from '../control-plane/ca/cluster-security.js';
import { issueUserCertificate } from '../control-plane/ca/issue.js';
import type { NodeHealth } from '../control-plane/dispatcher/node-health.js';
import type { ObjectStore } from '../control-plane/store/object-store.js';
import type { Store } from '../control-plane/store/store.js';
import type { DaemonConfig } from './config.js';
import type { NodeIdentity } from './identity/bootstrap.js';

/**
 * The cluster's trust state; the first manager writes it, with the root CA `tsd init` made
 * (node.ca). A store of another cluster is refused.
 */
export async function openClusterSecurity(
  store: Store,
  node: Pick<NodeIdentity, 'clusterId' | 'identity' | 'ca'>,
  config: DaemonConfig,
  log: (message: string) => void,
): Promise<ClusterSecurity> {
  const security = await ClusterSecurity.open(
    store,
    () => ({
      clusterId: node.clusterId,
      trustedRootPems: [...node.identity.material.trustedRootPems],
      // Nobody knows these secrets: a usable token exists only once someone asks for one.
      tokenHashes: { worker: hashJoinSecret(generateJoinSecret()), manager: hashJoinSecret(generateJoinSecret()) },
      nodeCertValidityMs: config.certValidityMs,
    }),
    log,
    node.ca,
  );
  if (security.clusterId !== node.clusterId) {
    await security.close();
    throw new Error(`the store belongs to cluster ${security.clusterId}, but this node's certificate is for cluster ${node.clusterId}`);
  }
  // Roots change through the store (a CA rotation); this manager trusts what the cluster trusts.
  security.onChange(() => {
    const roots = security.meta.trustedRootPems;
    const material = node.identity.material;
    if (joinPem(roots) !== joinPem(material.trustedRootPems)) {
      const trusted = { ...material, trustedRootPems: [...roots] };
      node.identity.update(trusted);
      // On disk too: a restart must not bring back a root the cluster dropped.
      persistIdentity(certPaths(config.dataRoot), () => node.identity.material).catch((err: unknown) =>
        log(`roots.pem not updated: ${(err as Error).message}`),
      );
    }
  });
  return security;
}

/** Issued-certificate records of users are kept under this prefix, apart from nodes'. */
export const USER_RECORD_PREFIX = 'user:';

export interface IdentityApiDeps {
  security: ClusterSecurity;
  /** The CA this manager signs with now (the new root's during a rotation, once this manager holds it). */
  ca: () => Promise<Signer>;
  objects: ObjectStore;
  health: NodeHealth;
  keeper: CaKeeper;
  /** Every node of the cluster (a root rotation waits for all of them). */
  nodeNames: () => string[];
  /** Raft members' ids (a manager must leave the Raft group before it is removed). */
  storeMembers: () => Promise<string[]>;
  /** The store backend's answer to a promotion or demotion: Raft removes a demoted member; absent: managers cannot change. */
  storeRoles?: { leader(): string | undefined; removeMember(id: string): Promise<void> };
  log: (message: string) => void;
}

export function identityApi(deps: IdentityApiDeps): NonNullable<ApiServerDeps['identity']> {
  return {
    issueUserCertificate: async (req) => {
      const signer = await deps.ca().catch((err: unknown) => {
        throw new ApiError(grpc.status.UNAVAILABLE, `user certificate for ${req.name}: ${(err as Error).message}`);
      });
      let certPem: string;
      try {
        certPem = await issueUserCertificate(signer.loaded, req.csrPem, {
          name: req.name,
          role: req.role,
          clusterId: deps.security.clusterId,
          ...(req.validityMs > 0 ? { validityMs: req.validityMs } : {}),
        });
      } catch (err) {
        throw new ApiError(grpc.status.INVALID_ARGUMENT, `user certificate for ${req.name}: ${(err as Error).message}`);
      }
      const subject = parseIdentity(certPem);
      const signedBy = signer.material.certPem;
      // Users are kept apart from nodes (a node may be named like a user); they do not count for a CA rotation.
      await deps.security.recordIssued(`${USER_RECORD_PREFIX}${req.name}`, subject.serial, subject.notAfter, caDigest(signedBy));
      deps.log(`issued a ${req.role} certificate for user ${req.name} (serial ${subject.serial})`);
      const meta = deps.security.meta;
      return { certChainPem: chainOf(meta, certPem, signedBy), trustedRootPems: meta.trustedRootPems, clusterId: meta.clusterId };
    },
    removeNode: async (name, force) => {
      const node = await deps.objects.get('Node', '', name);
      if (!node) throw new ApiError(grpc.status.NOT_FOUND, `node "${name}" not found`);
      if ((await deps.storeMembers()).includes(name)) {
        throw new ApiError(
          grpc.status.FAILED_PRECONDITION,
          `node rm: ${name} is a manager in the Raft group; remove it from the managers first (tsctl cluster members remove ${name})`,
        );
      }
      if (node.status.state === 'ready' && !force) {
        throw new ApiError(
          grpc.status.FAILED_PRECONDITION,
          `node rm: ${name} is up; stop its tsd first, or give --force (its tasks are rescheduled and its certificate revoked)`,
        );
      }
      // The Node goes first: from then on its renewals are refused, so the revocation misses none.
      await deps.objects.delete('Node', '', name);
      const serials = await deps.security.revokeNode(name, `node ${name} removed`);
      await deps.health.orphanTasksOf(name, `node ${name} was removed`);
      deps.log(`node ${name} removed; revoked ${serials.length} certificate(s)`);
      return serials;
    },
    prepareRoleChange: async (name, role) => {
      if (!deps.storeRoles) throw new ApiError(grpc.status.FAILED_PRECONDITION, `node ${name}: promotion and demotion need the raft store`);
      if (role === 'manager') return;
      const managers = (await deps.objects.list('Node')).items.filter((n) => n.spec.role === 'manager').map((n) => n.metadata.name);
      if (managers.length <= 1) throw new ApiError(grpc.status.FAILED_PRECONDITION, `node ${name} is the only manager; promote another node first`);
      if (deps.storeRoles.leader() === name) {
        throw new ApiError(
          grpc.status.FAILED_PRECONDITION,
          `node ${name} leads the Raft group; demote another manager, or stop this one's tsd so another leads, then demote it`,
        );
      }
      // Out of the Raft group first: quorum is counted without it before its certificate changes.
      if ((await deps.storeMembers()).includes(name)) await deps.storeRoles.removeMember(name);
      deps.log(`node ${name} demoted: removed from the Raft group; it renews as a worker`);
    },
    rotateCa: async (statusOnly) => {
      const meta = deps.security.meta;
      if (meta.rotation) return { state: 'in-progress', message: await progressMessage(deps) };
      if (statusOnly) return { state: 'idle', message: 'no root CA rotation is running' };
      const { newRootPem } = await deps.keeper.startRotation();
      deps.log('root CA rotation started: every node renews its certificate from the new root');
      return { state: 'started', message: `new root ${parseCertificate('new root', newRootPem).subject}; every node renews now` };
    },
  };
}

async function issuedByNode(deps: Pick<IdentityApiDeps, 'security' | 'nodeNames'>): Promise<Map<string, IssuedRecord[]>> {
  const issued = new Map<string, IssuedRecord[]>();
  for (const name of deps.nodeNames()) issued.set(name, await deps.security.issuedTo(name));
  return issued;
}

async function progressMessage(deps: Pick<IdentityApiDeps, 'security' | 'nodeNames'>): Promise<string> {
  const progress = rotationProgress(deps.security.meta, await issuedByNode(deps));
  const total = progress.done.length + progress.waiting.length;
  return (
    `${progress.done.length} of ${total} nodes hold certificates from the new root` +
    (progress.waiting.length > 0 ? `; waiting for ${progress.waiting.join(', ')}` : '')
  );
}

/**
 * The leader's step of a root rotation: once every node holds a certificate from the new root,
 * only the new root is trusted and new join tokens are needed (the old ones pin the old root).
 * Returns true when it completed the rotation.
 */
export async function completeRotationIfDone(deps: Pick<IdentityApiDeps, 'security' | 'nodeNames' | 'log'>): Promise<boolean> {
  const meta = deps.security.meta;
  if (!meta.rotation) return false;
  const progress = rotationProgress(meta, await issuedByNode(deps));
  if (progress.waiting.length > 0) return false;
  // The meta and the CA record change in one transaction: the old key goes with the old root.
  const completed = await deps.security.completeRotation({ worker: hashJoinSecret(generateJoinSecret()), manager: hashJoinSecret(generateJoinSecret()) });
  if (!completed) return false;
  deps.log('root CA rotation complete: only the new root is trusted; ask for new join tokens (the old ones pinned the old root)');
  return true;
}

/** A refused or failed request as the audit log records it: the gRPC status the caller got, and why. */
function failure(error: unknown): { ok: false; code: string; message: string } {
  const own = (error as { code?: unknown } | null)?.code;
  const code = typeof own === 'number' && grpc.status[own] !== undefined ? (own as grpc.status) : grpcCodeOf(error);
  return { ok: false, code: grpc.status[code], message: error instanceof Error ? error.message : JSON.stringify(error) };
}

/** The audit log of this manager, and the API's hooks into it. */
export async function openAudit(
  path: string,
  managerId: string,
  log: (message: string) => void,
): Promise<{ audit: (record: AuditRecord) => void; readAudit: NonNullable<ApiServerDeps['readAudit']>; close: () => Promise<void> }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const auditLog = new AuditLog({ path, log: (message) => log(`audit log: ${message}`) });
  return {
    audit: (record) =>
      auditLog.record(
        auditEntry({
          time: new Date(),
          caller: record.caller,
          method: record.method,
          request: record.request,
          result: record.error === undefined ? { ok: true } : failure(record.error),
          manager: managerId,
        }),
      ),
    readAudit: async (options) => (await auditLog.read(options)).map((entry) => auditLine(entry).trimEnd()),
    close: () => auditLog.close(),
  };
}
