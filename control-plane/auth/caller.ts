// Who is calling the manager, as decided by the transport and never by the request: root on the
// manager's own unix socket (only root can open it), or the subject of a certificate the cluster CA
// issued, checked against the revocation list. Authorization and the audit log read this.
import type { NodeRole, UserRole } from '../../common/identity/certificate.js';

export type Caller =
  { kind: 'local-root' } | { kind: 'user'; name: string; role: UserRole; serial: string } | { kind: 'node'; nodeId: string; role: NodeRole; serial: string };

/** How a caller is named in logs and the audit log: `local:root`, `user:alice (operator)`, `node:node-2 (manager)`. */
export function describeCaller(caller: Caller): string {
  switch (caller.kind) {
    case 'local-root':
      return 'local:root';
    case 'user':
      return `user:${caller.name} (${caller.role})`;
    case 'node':
      return `node:${caller.nodeId} (${caller.role})`;
  }
}
