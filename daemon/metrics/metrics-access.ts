// Who may read a node's /metrics (and the routes added beside it): a certificate of this cluster,
// a user of any role (Prometheus gets a viewer's) or a node, whose serial is not revoked. The
// signature was verified against the cluster's roots at the TLS handshake; this is the rest (pure).
import { isNodeRole, isUserRole, type CertificateSubject } from '../../common/identity/certificate.js';

export interface Refusal {
  /** HTTP status: 401 not this cluster's or revoked, 403 no role that may read, 503 revocations unknown yet. */
  status: 401 | 403 | 503;
  message: string;
}

export interface MetricsTrust {
  clusterId: string;
  /** Whether the serial is revoked; undefined while this node does not know the list (a worker before its first session). */
  isRevoked: (serial: string) => boolean | undefined;
}

export function metricsRefusal(subject: CertificateSubject, trust: MetricsTrust): Refusal | undefined {
  if (subject.o !== trust.clusterId)
    return { status: 401, message: `certificate ${subject.cn} belongs to cluster ${subject.o}, this is cluster ${trust.clusterId}` };
  if (!isUserRole(subject.ou) && !isNodeRole(subject.ou))
    return { status: 403, message: `certificate ${subject.cn}: OU "${subject.ou}" is neither a user role nor a node role` };
  const revoked = trust.isRevoked(subject.serial);
  // Unknown is refused, not let through: a revoked certificate must not read while the list is on its way.
  if (revoked === undefined) return { status: 503, message: "this node has not yet received the cluster's revocation list from a manager; try again shortly" };
  if (revoked) return { status: 401, message: `certificate ${subject.cn} (serial ${subject.serial}) has been revoked` };
  return undefined;
}
