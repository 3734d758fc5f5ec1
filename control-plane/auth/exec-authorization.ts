// Who may exec into which task (tsctl exec), beyond the method check (Exec is a workload method:
// operators and admins, never viewers). A process started in a container has what the container
// has: an operator, who may deploy only at admission level baseline, could otherwise borrow a
// privileged service's capabilities and host mounts by exec'ing into it. So an operator may exec
// only into tasks whose service spec passes baseline, as Kubernetes' Pod Security admission checks
// pods/exec against the namespace's level. Pure.
import { baselineProblems } from '../../common/resources/admission.js';
import type { Task } from '../../common/resources/types.js';
import { describeCaller, type Caller } from './caller.js';
import type { AuthorizationResult } from './authorization.js';

export function authorizeExec(caller: Caller, task: Task): AuthorizationResult {
  // Admins and root may run anything anyway; a manager's node certificate arrives only forwarded
  // by a follower that has already authorised the user.
  if (caller.kind !== 'user' || caller.role === 'admin') return { allowed: true };
  if (caller.role !== 'operator') return { allowed: false, reason: `${describeCaller(caller)} may not call Exec: viewers have read-only access` };
  const problems = baselineProblems({
    kind: 'Service',
    metadata: { name: task.spec.serviceName, stack: task.spec.serviceStack },
    spec: task.spec.spec,
  });
  if (problems.length === 0) return { allowed: true };
  return {
    allowed: false,
    reason:
      `${describeCaller(caller)} may not exec into task ${task.metadata.name}: its service runs above admission level baseline, ` +
      `and an exec would hand an operator what only admins may deploy (${problems[0]})`,
  };
}
