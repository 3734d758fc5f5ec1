// Which API calls tsctl may repeat on another manager when the one it asked went away or is no
// longer the leader (issue 20). A call that never reached a manager (no connection) can always go
// to the next one; this table decides what happens once a request may have been received. Pure.

/**
 * - read: changes nothing; asking another manager gives the same answer.
 * - watch: a stream that the caller resumes from where it was (Watch: the last revision,
 *   WatchRequest from_revision; Logs: each task's last line sequence; Events: the last event's
 *   revision and place), so a new manager neither skips nor repeats what was delivered.
 * - idempotent: a write that states the end result (apply a spec, set replicas, set a setting,
 *   delete a name): done twice, it ends where done once; a repeat after success is refused
 *   (NOT_FOUND) or changes nothing, both of which the command reports truthfully.
 * - once: each call does something new (mints a token, issues or revokes a certificate, starts a
 *   rotation, consumes an upload, runs a command, streams bytes to the user): never repeated after
 *   it may have been received, the error goes to the user.
 */
export type RetryClass = 'read' | 'watch' | 'idempotent' | 'once';

/** Every rpc of tessera.api.v1.Tessera (proto/api.proto), by its proto name. */
export const API_METHOD_RETRY: Readonly<Record<string, RetryClass>> = {
  Get: 'read',
  List: 'read',
  ImageList: 'read',
  ClusterInfo: 'read',
  ClusterMembers: 'read',
  AuditLog: 'read',
  Top: 'read',
  Watch: 'watch',
  Logs: 'watch',
  Events: 'watch',
  Apply: 'idempotent',
  Delete: 'idempotent',
  Scale: 'idempotent',
  UpdateNode: 'idempotent',
  UpdateCluster: 'idempotent',
  ImagePull: 'idempotent',
  ImageRemove: 'idempotent',
  ImagePrune: 'idempotent',
  // Streams whose output has already gone to the user: a second run would print it again.
  ImagePullProgress: 'once',
  ImageSave: 'once',
  ImagePush: 'once',
  ImageLoad: 'once',
  Exec: 'once',
  BuildImage: 'once',
  JoinToken: 'once',
  ClusterMemberChange: 'once',
  RemoveNode: 'once',
  IssueUserCertificate: 'once',
  RotateCa: 'once',
};

/** The class of a method by its proto name (Apply) or the generated client's name (apply); unknown ones are 'once'. */
export function retryClassOf(method: string): RetryClass {
  const protoName = method.charAt(0).toUpperCase() + method.slice(1);
  return API_METHOD_RETRY[protoName] ?? 'once';
}

/** Whether an attempt that made these calls may be run again on another manager. */
export function safeToRepeat(methods: Iterable<string>): boolean {
  for (const method of methods) if (retryClassOf(method) === 'once') return false;
  return true;
}

/** Why a failed call is worth trying on another manager: it is down, or no longer (or not yet) leads. */
export function isFailoverError(code: number | undefined, message: string): boolean {
  const CANCELLED = 1;
  const UNAVAILABLE = 14;
  if (code === UNAVAILABLE) return true;
  // A manager shutting down (or killed mid-shutdown) cancels its calls. tsctl never cancels a
  // unary call itself, and a watch it cancels on purpose is settled before this is asked.
  if (code === CANCELLED) return true;
  return /not the leader|no leader is known/i.test(message);
}
