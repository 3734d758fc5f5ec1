// Which caller may call which method of the manager's API (issue 14), and what a viewer may not
// see. Pure: the transport has already decided who the caller is (caller.ts); the API server asks
// here before it does anything, and the audit log records every call isMutating counts as a change.
import { quoteName } from '../../common/resources/limits.js';
import { describeCaller, type Caller } from './caller.js';

// What a viewer may see of an object; kept in its own file, exported here with the rest of the policy.
export { redactFor } from './redaction.js';

/** The rpcs of `service Tessera` in proto/api.proto (a unit test compares the two). */
export type ApiMethod =
  | 'Apply'
  | 'Get'
  | 'List'
  | 'Delete'
  | 'Watch'
  | 'Scale'
  | 'Logs'
  | 'ImageLoad'
  | 'ImagePull'
  | 'ImageList'
  | 'ImagePullProgress'
  | 'ImageRemove'
  | 'ImagePrune'
  | 'ImageSave'
  | 'ClusterInfo'
  | 'JoinToken'
  | 'UpdateNode'
  | 'ClusterMembers'
  | 'ClusterMemberChange'
  | 'RemoveNode'
  | 'IssueUserCertificate'
  | 'AuditLog'
  | 'RotateCa'
  | 'UpdateCluster'
  | 'Events'
  | 'Top'
  | 'ImagePush'
  | 'Exec'
  | 'BuildImage';

/** read: viewers and up. workload: operators and up (deploy, scale, roll back, images they run). admin: admins only. */
type Access = 'read' | 'workload' | 'admin';

// A Record, so a method added to ApiMethod without an access level (or the reverse) does not compile.
const METHOD_ACCESS: Readonly<Record<ApiMethod, Access>> = {
  Apply: 'workload',
  Get: 'read',
  List: 'read',
  Delete: 'workload',
  Watch: 'read',
  Scale: 'workload',
  Logs: 'read',
  ImageLoad: 'workload',
  ImagePull: 'workload',
  ImageList: 'read',
  ImagePullProgress: 'workload',
  // Removing or pruning images affects every service on the node, not only the operator's own.
  ImageRemove: 'admin',
  ImagePrune: 'admin',
  ImageSave: 'workload',
  ClusterInfo: 'read',
  JoinToken: 'admin',
  UpdateNode: 'admin',
  ClusterMembers: 'read',
  ClusterMemberChange: 'admin',
  RemoveNode: 'admin',
  IssueUserCertificate: 'admin',
  AuditLog: 'admin',
  RotateCa: 'admin',
  // The cluster default admission level: loosening it would let every stack ask for more.
  UpdateCluster: 'admin',
  // Names and states only, no object data: what a viewer can already List.
  Events: 'read',
  // Figures of running tasks (CPU, memory, I/O): no object data, no secrets.
  Top: 'read',
  // Sends an image of the node to a registry with the node's registry credentials, as a pull fetches one.
  ImagePush: 'workload',
  // A process in a running container, as kubectl exec needs create on pods/exec (Kubernetes' edit
  // role has it, view does not); operators only into services admitted at baseline (exec-authorization.ts).
  Exec: 'workload',
  // Runs the Dockerfile's RUN steps in containers and stores the image on the node, as ImageLoad does.
  BuildImage: 'workload',
};

export const API_METHODS: readonly ApiMethod[] = Object.keys(METHOD_ACCESS) as ApiMethod[];

/**
 * What a manager's node certificate may call: what it needs to join itself (the member change is
 * narrowed further by authorizeMemberChange), and Logs, Top and Exec, which a follower forwards to the leader.
 */
const MANAGER_NODE_METHODS: ReadonlySet<ApiMethod> = new Set<ApiMethod>(['ClusterInfo', 'ClusterMemberChange', 'Logs', 'Top', 'Exec']);

/** Calls that change the cluster; JoinToken counts because it may rotate a token. */
const MUTATING_METHODS: ReadonlySet<ApiMethod> = new Set<ApiMethod>([
  'Apply',
  'Delete',
  'Scale',
  'ImageLoad',
  'ImagePull',
  'ImagePullProgress',
  'ImageRemove',
  'ImagePrune',
  'JoinToken',
  'UpdateNode',
  'ClusterMemberChange',
  'RemoveNode',
  'IssueUserCertificate',
  'RotateCa',
  'UpdateCluster',
  // It changes no cluster state, but it publishes an image with the node's credentials: audited.
  'ImagePush',
  // It runs a process: audited like a change, though it changes no object.
  'Exec',
  // It stores an image (and may push one with the node's credentials).
  'BuildImage',
]);

export type AuthorizationResult = { allowed: true } | { allowed: false; reason: string };

const ALLOWED: AuthorizationResult = { allowed: true };

function refused(caller: Caller, method: ApiMethod, why: string): AuthorizationResult {
  return { allowed: false, reason: `${describeCaller(caller)} may not call ${method}: ${why}` };
}

export function isMutating(method: ApiMethod): boolean {
  return MUTATING_METHODS.has(method);
}

export function authorizeMethod(caller: Caller, method: ApiMethod): AuthorizationResult {
  const access = METHOD_ACCESS[method];
  switch (caller.kind) {
    case 'local-root':
      return ALLOWED;
    case 'user':
      if (caller.role === 'admin' || access === 'read') return ALLOWED;
      if (caller.role === 'viewer') return refused(caller, method, 'viewers have read-only access');
      if (access === 'workload') return ALLOWED;
      return refused(caller, method, 'operators deploy, scale and roll back services; cluster administration is for admins only');
    case 'node':
      if (caller.role === 'manager' && MANAGER_NODE_METHODS.has(method)) return ALLOWED;
      if (caller.role === 'manager')
        return refused(
          caller,
          method,
          "a manager node's certificate may call only ClusterInfo and ClusterMemberChange (to join itself) and Logs, Top and Exec (forwarded to the leader)",
        );
      return refused(caller, method, "a worker node's certificate has no access to the API (workers talk to the dispatcher)");
  }
}

/**
 * ClusterMemberChange beyond the method check: a manager node may add or promote itself (its
 * certificate's node id) and nothing else; admins and local root may do anything. `action` and
 * `name` come from the request; validating the action is the server's business, not this one's.
 */
export function authorizeMemberChange(caller: Caller, action: string, name: string): AuthorizationResult {
  if (caller.kind === 'local-root' || (caller.kind === 'user' && caller.role === 'admin')) return ALLOWED;
  if (caller.kind === 'node' && caller.role === 'manager') {
    if ((action === 'add' || action === 'promote') && name === caller.nodeId) return ALLOWED;
    return refused(
      caller,
      'ClusterMemberChange',
      `it asked to ${quoteName(action)} member ${quoteName(name)}, but a manager node may only add or promote itself (${caller.nodeId})`,
    );
  }
  return refused(caller, 'ClusterMemberChange', 'changing Raft membership is for admins, and for a manager node joining itself');
}
