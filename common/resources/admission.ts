// Admission for operators (issue 14), until the data-protection issue brings a `baseline` level:
// what an operator's Apply may not ask for because it reaches past the container into the node —
// host paths, capabilities beyond Docker's default set, sysctls that are not both namespaced and
// isolated, network drivers other than overlay and bridge. Pure and shared, so tsctl can say the
// same as the manager.
//
// Not expressible in the model today, so there is nothing to check (add a rule with the field):
// devices, privileged containers, and the host's network, pid and ipc namespaces. The Compose
// loader refuses devices, privileged, network_mode, pid and ipc; a service joins only Network
// objects, whose drivers are overlay and bridge (checked below all the same, should one be added).
//
// Checked per object: a Service that mounts a named Volume is not checked against that Volume. A
// Volume with driver options an operator applies is refused here; one an admin made is the admin's
// decision to offer.
import { quoteName } from './limits.js';

/** Docker's default capability set: what the agent's runtime grants by default, and all an operator may add. */
export const DOCKER_DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * The sysctls Kubernetes counts as safe (namespaced, and without effect on other pods), as of its
 * 1.29 baseline. Kubernetes 1.32 added net.ipv4.tcp_rmem and net.ipv4.tcp_wmem; not taken here yet.
 */
export const SAFE_SYSCTLS: readonly string[] = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
];

/** Volume filesystems that mount nothing of the node's: memory, or a server over the network. */
const OPERATOR_VOLUME_TYPES: readonly string[] = ['tmpfs', 'nfs', 'nfs4'];
const OPERATOR_NETWORK_DRIVERS: readonly string[] = ['overlay', 'bridge'];
/** A long list of problems is one mistake repeated; the rest are counted, not listed. */
const MAX_PROBLEMS = 50;

export interface AdmissionObject {
  kind: string;
  metadata: { name: string; stack?: string };
  spec?: unknown;
}

/** One message per violation, naming the object and the field, e.g. `Service web: spec.capAdd[0]: ALL is not allowed ...`. */
export function baselineProblems(object: AdmissionObject): string[] {
  const stack = object.metadata.stack ?? '';
  const where = `${object.kind} ${stack ? `${stack}/` : ''}${object.metadata.name}`;
  const spec = asRecord(object.spec);
  const problems = spec === undefined ? [] : problemsOf(object.kind, spec);
  const shown = problems.slice(0, MAX_PROBLEMS).map((p) => `${where}: ${p}`);
  if (problems.length > MAX_PROBLEMS) shown.push(`${where}: ${problems.length - MAX_PROBLEMS} more problem(s) not listed`);
  return shown;
}

function problemsOf(kind: string, spec: Record<string, unknown>): string[] {
  switch (kind) {
    case 'Service':
      return [...bindMountProblems(spec), ...capabilityProblems(spec), ...sysctlProblems(spec)];
    case 'Volume':
      return volumeProblems(spec);
    case 'Network':
      return networkProblems(spec);
    default:
      return [];
  }
}

function bindMountProblems(spec: Record<string, unknown>): string[] {
  return asArray(spec['mounts']).flatMap((mount, i) => {
    const m = asRecord(mount);
    if (m?.['type'] !== 'bind') return [];
    return [`spec.mounts[${i}]: a bind mount of host path ${shown(m['source'])} is not allowed for operators (use a volume or a tmpfs mount)`];
  });
}

const DEFAULT_CAPABILITY_NAMES: ReadonlySet<string> = new Set(DOCKER_DEFAULT_CAPABILITIES.map(capabilityName));

/** NET_ADMIN, net_admin and CAP_NET_ADMIN are one capability. */
function capabilityName(name: string): string {
  return name.toUpperCase().replace(/^CAP_/, '');
}

function capabilityProblems(spec: Record<string, unknown>): string[] {
  return asArray(spec['capAdd']).flatMap((cap, i) => {
    if (typeof cap === 'string' && DEFAULT_CAPABILITY_NAMES.has(capabilityName(cap))) return [];
    return [`spec.capAdd[${i}]: ${shown(cap)} is not allowed for operators (only Docker's default capabilities)`];
  });
}

function sysctlProblems(spec: Record<string, unknown>): string[] {
  return Object.keys(asRecord(spec['sysctls']) ?? {})
    .filter((key) => !SAFE_SYSCTLS.includes(key))
    .map((key) => `spec.sysctls[${quoteName(key)}]: not allowed for operators (only Kubernetes' safe sysctls: ${SAFE_SYSCTLS.join(', ')})`);
}

/** Driver options as the local driver reads them (agent/volumes/volume-plan.ts): mount -t type -o o device. */
function volumeProblems(spec: Record<string, unknown>): string[] {
  const opts = asRecord(spec['driverOpts']);
  if (opts === undefined) return [];
  const { type, device, o } = opts;
  const options = typeof o === 'string' ? o.split(',') : [];
  if (options.includes('bind') || options.includes('rbind')) {
    return [`spec.driverOpts.o: ${shown(o)} bind-mounts a path of the node (${shown(device)}), which is not allowed for operators`];
  }
  const problems: string[] = [];
  if (type !== undefined && !(typeof type === 'string' && OPERATOR_VOLUME_TYPES.includes(type))) {
    problems.push(
      `spec.driverOpts.type: ${shown(type)} is not allowed for operators (only ${OPERATOR_VOLUME_TYPES.join(', ')}: other filesystems mount the node's devices or directories)`,
    );
  }
  if (typeof device === 'string' && device.startsWith('/')) {
    problems.push(`spec.driverOpts.device: ${shown(device)} is a path on the node, which is not allowed for operators`);
  }
  return problems;
}

function networkProblems(spec: Record<string, unknown>): string[] {
  const driver = spec['driver'];
  if (driver === undefined || (typeof driver === 'string' && OPERATOR_NETWORK_DRIVERS.includes(driver))) return [];
  return [`spec.driver: ${shown(driver)} is not allowed for operators (only ${OPERATOR_NETWORK_DRIVERS.join(' and ')} networks)`];
}

// ---- reading a spec that may not have passed the schema: anything unexpected is "not there" ----

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A plain name or path as it is; anything else quoted and cut to a readable length. */
function shown(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:/-]{1,64}$/.test(value) ? value : quoteName(value);
  return value === undefined ? '(none)' : typeof value;
}
