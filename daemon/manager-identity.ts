// The manager's identity duties, wired from the store and this node's CA: the cluster's trust
// state (ClusterSecurity), the API's identity operations (user certificates, node removal) and the
// audit log. manager.ts composes them with the servers.
import * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import { generateJoinSecret, hashJoinSecret } from '../common/identity/join-token.js';
import { parseIdentity } from '../common/identity/certificate.js';
import { joinPem } from '../common/identity/x509.js';
import type { TlsIdentity } from '../common/transport/tls-identity.js';
import { ApiError } from '../control-plane/api/errors.js';
import type { ApiServerDeps, AuditRecord } from '../control-plane/api/server.js';
import { auditEntry } from '../control-plane/audit/audit-entry.js';
import { AuditLog } from '../control-plane/audit/audit-log.js';
import { auditLine } from '../control-plane/audit/audit-line.js';
import { grpcCodeOf } from '../control-plane/api/errors.js';
import { ClusterSecurity } from '../control-plane/ca/cluster-security.js';
import { issueUserCertificate } from '../control-plane/ca/issue.js';
import type { LoadedCa, CaMaterial } from '../control-plane/ca/root-ca.js';
import type { NodeHealth } from '../control-plane/dispatcher/node-health.js';
import type { ObjectStore } from '../control-plane/store/object-store.js';
import type { Store } from '../control-plane/store/store.js';
import type { DaemonConfig } from './config.js';

/** The cluster's trust state; the first manager writes it. A store of another cluster is refused. */
export async function openClusterSecurity(
  store: Store,
  node: { clusterId: string; identity: TlsIdentity },
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
  );
  if (security.clusterId !== node.clusterId) {
    await security.close();
    throw new Error(`the store belongs to cluster ${security.clusterId}, but this node's certificate is for cluster ${node.clusterId}`);
  }
  // Roots change through the store (a CA rotation); this manager trusts what the cluster trusts.
  security.onChange(() => {
    const roots = security.meta.trustedRootPems;
    const material = node.identity.material;
    if (joinPem(roots) !== joinPem(material.trustedRootPems)) node.identity.update({ ...material, trustedRootPems: [...roots] });
  });
  return security;
}

export interface IdentityApiDeps {
  security: ClusterSecurity;
  ca: { material: CaMaterial; loaded: LoadedCa };
  objects: ObjectStore;
  health: NodeHealth;
  /** Raft members' ids (a manager must leave the Raft group before it is removed). */
  storeMembers: () => Promise<string[]>;
  log: (message: string) => void;
}

export function identityApi(deps: IdentityApiDeps): NonNullable<ApiServerDeps['identity']> {
  return {
    issueUserCertificate: async (req) => {
      let certPem: string;
      try {
        certPem = await issueUserCertificate(deps.ca.loaded, req.csrPem, {
          name: req.name,
          role: req.role,
          clusterId: deps.security.clusterId,
          ...(req.validityMs > 0 ? { validityMs: req.validityMs } : {}),
        });
      } catch (err) {
        throw new ApiError(grpc.status.INVALID_ARGUMENT, `user certificate for ${req.name}: ${(err as Error).message}`);
      }
      const subject = parseIdentity(certPem);
      await deps.security.recordIssued(`user-${req.name}`, subject.serial, subject.notAfter);
      deps.log(`issued a ${req.role} certificate for user ${req.name} (serial ${subject.serial})`);
      const meta = deps.security.meta;
      return {
        certChainPem: joinPem([certPem, ...(meta.rotation ? [meta.rotation.crossSignedPem] : [])]),
        trustedRootPems: meta.trustedRootPems,
        clusterId: meta.clusterId,
      };
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
      const serials = await deps.security.revokeNode(name, `node ${name} removed`);
      await deps.health.orphanTasksOf(name, `node ${name} was removed`);
      await deps.objects.delete('Node', '', name);
      deps.log(`node ${name} removed; revoked ${serials.length} certificate(s)`);
      return serials;
    },
    rotateCa: () => Promise.reject(new ApiError(grpc.status.UNIMPLEMENTED, 'CA rotation (tsctl cluster ca --rotate) is not built yet')),
  };
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
