// The manager's NodeCA service (proto/dispatcher.proto): certificates for nodes from their CSRs.
// Join is the one call a client without a certificate may make; the join token's secret is its
// credential, and it is used once: the node gets a certificate and every later connection is
// authenticated by it. Renew and StoreKey need the caller's current certificate. No call returns
// the CA's key: it lives in the replicated store, which a manager reads once it is a member.
import * as grpc from '@grpc/grpc-js';
import { isIPv4 } from 'node:net';

import type { NodeCAHandlers } from '../../proto/gen/tessera/dispatcher/v1/NodeCA.js';
import type { IssuedCertificate } from '../../proto/gen/tessera/dispatcher/v1/IssuedCertificate.js';
import { loadDispatcherPackage } from '../../proto/load.js';
import { caDigest, parseIdentity, type NodeRole } from '../../common/identity/certificate.js';
import { joinPem } from '../../common/identity/x509.js';
import { API_VERSION, type Node } from '../../common/resources/types.js';
import { DNS_LABEL } from '../../common/resources/names.js';
import type { ObjectStore } from '../store/object-store.js';
import { type Authenticate, requireNode } from '../auth/authenticate.js';
import type { ClusterSecurity } from './cluster-security.js';
import type { ClusterMeta } from './cluster-meta.js';
import { presentedRootPem } from './rotation.js';
import { issueNodeCertificate } from './issue.js';
import type { CaMaterial, LoadedCa } from './root-ca.js';

export interface NodeCaDeps {
  security: ClusterSecurity;
  /** The CA this manager signs with (the new root's during a rotation); throws while the store holds none yet. */
  signer: () => Promise<{ material: CaMaterial; loaded: LoadedCa }>;
  /** With the etcd backend: the key-encryption key of the store's sealed values, for a manager that joins. */
  storeKey?: () => Uint8Array;
  objects: ObjectStore;
  authenticate: Authenticate;
  log: (message: string) => void;
}

function refused(code: grpc.status, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * A certificate as its holder presents it: the leaf; during a rotation, if the new root signed it,
 * the cross-signed new root (so peers trusting only the old root accept it); and the root joining
 * nodes check their token's pin against.
 */
export function chainOf(meta: ClusterMeta, leafPem: string, signedByRootPem: string): string {
  const crossSigned = meta.rotation && signedByRootPem === meta.rotation.newRootPem ? [meta.rotation.crossSignedPem] : [];
  return joinPem([leafPem, ...crossSigned, presentedRootPem(meta)]);
}

export class NodeCaService {
  constructor(private readonly deps: NodeCaDeps) {}

  addTo(server: grpc.Server): void {
    const pkg = loadDispatcherPackage();
    const handlers: NodeCAHandlers = {
      Join: this.unary(async (call) => {
        try {
          return await this.join(call.request.nodeName, call.request.tokenSecret, call.request.csrPem, call.request.address);
        } catch (err) {
          // Who tried, from where, and why it failed; never the secret.
          this.deps.log(`join refused from ${call.getPeer()} (node name ${JSON.stringify(call.request.nodeName.slice(0, 63))}): ${(err as Error).message}`);
          throw err;
        }
      }),
      Renew: this.unary(async (call) => {
        const caller = requireNode(this.deps.authenticate(call));
        return this.renew(caller.nodeId, call.request.csrPem);
      }),
      StoreKey: this.unary(async (call) => {
        const caller = requireNode(this.deps.authenticate(call), 'manager');
        const storeKey = this.deps.storeKey;
        if (!storeKey)
          throw refused(grpc.status.FAILED_PRECONDITION, 'this cluster keeps its store in Raft: a manager gets it as a Raft member, with no key to fetch');
        this.deps.log(`store key sent to manager ${caller.nodeId}`);
        return { kek: Buffer.from(storeKey()) };
      }),
    };
    server.addService(pkg.tessera.dispatcher.v1.NodeCA.service, handlers);
  }

  private unary<Req, Res>(fn: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      void (async () => {
        let res: Res;
        try {
          res = await fn(call);
        } catch (err) {
          const e = err as Error & { code?: grpc.status };
          callback({ code: e.code ?? grpc.status.INVALID_ARGUMENT, details: e.message, message: e.message });
          return;
        }
        callback(null, res);
      })();
    };
  }

  private async join(nodeName: string, secret: string, csrPem: string, address: string): Promise<IssuedCertificate> {
    const { security, objects, log } = this.deps;
    if (!DNS_LABEL.test(nodeName))
      throw refused(grpc.status.INVALID_ARGUMENT, `join: node name "${nodeName.slice(0, 80)}" is not a DNS label (a-z, 0-9, -; at most 63)`);
    if (address !== '' && !isIPv4(address)) throw refused(grpc.status.INVALID_ARGUMENT, `join: address "${address.slice(0, 80)}" is not an IPv4 address`);
    const role = security.roleForSecret(secret);
    // The secret is never logged or echoed, right or wrong.
    if (!role)
      throw refused(grpc.status.PERMISSION_DENIED, `join refused for node ${nodeName}: the join token is not valid for this cluster (wrong, or rotated out)`);
    if (await objects.get('Node', '', nodeName)) {
      throw refused(
        grpc.status.ALREADY_EXISTS,
        `join refused: a node named ${nodeName} is already a member; a node keeps its identity in its certificate, so a node that lost it must first be removed (tsctl node rm ${nodeName})`,
      );
    }
    const issued = await this.issue(nodeName, role, csrPem, address);
    const status: Node['status'] = { state: 'unknown', hostname: nodeName, resources: { memoryBytes: 0, nanoCpus: 0 }, message: 'joined; no session yet' };
    await objects.create<Node>({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: nodeName, stack: '' },
      spec: { availability: 'active', role },
      status: address ? { ...status, address } : status,
    });
    log(`node ${nodeName} joined as a ${role}${address ? ` from ${address}` : ''}`);
    return issued;
  }

  /** A new certificate for a node that holds a valid one; the role is the store's (a promotion or demotion shows here). */
  private async renew(nodeId: string, csrPem: string): Promise<IssuedCertificate> {
    const node = await this.deps.objects.get('Node', '', nodeId);
    if (!node) throw refused(grpc.status.PERMISSION_DENIED, `renewal refused: node ${nodeId} is not a member of this cluster (removed?)`);
    return this.issue(nodeId, node.spec.role, csrPem, node.status.address ?? '');
  }

  private async issue(nodeId: string, role: NodeRole, csrPem: string, address: string): Promise<IssuedCertificate> {
    const { security } = this.deps;
    const meta = security.meta;
    let signer: { material: CaMaterial; loaded: LoadedCa };
    try {
      signer = await this.deps.signer();
    } catch (err) {
      throw refused(grpc.status.UNAVAILABLE, `certificate for node ${nodeId}: ${(err as Error).message}`);
    }
    let certPem: string;
    try {
      certPem = await issueNodeCertificate(signer.loaded, csrPem, {
        nodeId,
        role,
        clusterId: meta.clusterId,
        validityMs: meta.nodeCertValidityMs,
        ...(address ? { ips: [address] } : {}),
      });
    } catch (err) {
      throw refused(grpc.status.INVALID_ARGUMENT, `certificate for node ${nodeId}: ${(err as Error).message}`);
    }
    const subject = parseIdentity(certPem);
    const signedBy = signer.material.certPem;
    await security.recordIssued(nodeId, subject.serial, subject.notAfter, caDigest(signedBy));
    return {
      certChainPem: chainOf(meta, certPem, signedBy),
      trustedRootPems: meta.trustedRootPems,
      clusterId: meta.clusterId,
      role,
      nodeId,
    };
  }
}
