// Admission rules per level (issue 15; levels and how one is chosen: admission-levels.ts). What
// each level refuses, per object and field:
//   baseline: what reaches past the container into the node — host bind mounts, Volumes whose
//     driver options mount the node's paths or devices, capabilities beyond Docker's default set,
//     sysctls that are not both namespaced and isolated, network drivers other than overlay and
//     bridge;
//   restricted: baseline, and what a workload can do to harden itself, as Kubernetes' restricted
//     profile asks where our model has the field — its own user namespace (userns: auto), a
//     non-root user, a read-only rootfs, capabilities dropped to none but NET_BIND_SERVICE, no
//     host-mode published ports (Kubernetes forbids hostPort already at baseline; Tessera's
//     operators had them before levels existed, so baseline keeps them).
// Pure and shared, so tsctl can say the same as the manager.
//
// Kubernetes' other restricted controls hold for every task already, so there is nothing to
// check: privilege escalation (the runtime always sets no_new_privs), seccomp (the default profile
// always; the model cannot say Unconfined), and volume types (a Service mounts named or anonymous
// Volumes and tmpfs; bind mounts are refused at baseline). Not expressible in the model, so
// refused by their absence (add a rule with the field): devices, privileged containers, and the
// host's network, pid and ipc namespaces. The Compose loader refuses devices, privileged,
// network_mode, pid and ipc; a service joins only Network objects, whose drivers are overlay and
// bridge (checked below all the same, should one be added).
//
// Checked per object: a Service that mounts a named Volume is not checked against that Volume. A
// Volume with driver options applied under baseline is refused here; one an admin made under
// privileged is the admin's decision to offer.
import { describeLevelSource, type LevelDecision } from './admission-levels.js';
import { quoteName } from './limits.js';

/** Docker's default capability set: what the agent's runtime grants by default, and all that baseline lets a service add. */
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
const BASELINE_VOLUME_TYPES: readonly string[] = ['tmpfs', 'nfs', 'nfs4'];
const BASELINE_NETWORK_DRIVERS: readonly string[] = ['overlay', 'bridge'];
/** All a restricted service may add back after dropping ALL (Kubernetes' restricted profile). */
const RESTRICTED_ADDABLE_CAPABILITIES: ReadonlySet<string> = new Set(['NET_BIND_SERVICE']);
/** A long list of problems is one mistake repeated; the rest are counted, not listed. */
const MAX_PROBLEMS = 50;

export interface AdmissionObject {
  kind: string;
  metadata: { name: string; stack?: string; labels?: Record<string, string> };
  spec?: unknown;
}

/** One refused field: `problem` reads "<value> is not allowed"; `hint` says what the level allows instead. */
interface Violation {
  field: string;
  problem: string;
  hint?: string;
}

/**
 * One message per violation at the decided level, naming the object, the field, who holds it to
 * the level and the level, e.g.
 * `Service shop/web: spec.capAdd[0]: ALL is not allowed for operators (admission level baseline: only Docker's default capabilities)`.
 */
export function admissionProblems(object: AdmissionObject, decision: LevelDecision): string[] {
  const stack = object.metadata.stack ?? '';
  const where = `${object.kind} ${stack ? `${stack}/` : ''}${object.metadata.name}`;
  return fieldProblems(object, decision).map((problem) => `${where}: ${problem}`);
}

/** admissionProblems without the object's name in front (`spec.capAdd[0]: ALL is not allowed ...`), for callers that name it their own way (Compose paths). */
export function fieldProblems(object: AdmissionObject, decision: LevelDecision): string[] {
  if (decision.level === 'privileged') return [];
  const spec = asRecord(object.spec);
  const violations = spec === undefined ? [] : violationsOf(object.kind, spec, decision.level === 'restricted');
  const who = describeLevelSource(decision);
  const shownProblems = violations
    .slice(0, MAX_PROBLEMS)
    .map((v) => `${v.field}: ${v.problem} ${who} (admission level ${decision.level}${v.hint ? `: ${v.hint}` : ''})`);
  if (violations.length > MAX_PROBLEMS) shownProblems.push(`${violations.length - MAX_PROBLEMS} more problem(s) not listed`);
  return shownProblems;
}

/** The baseline level as operators are held to it when neither the stack nor the cluster asks for more. */
export function baselineProblems(object: AdmissionObject): string[] {
  return admissionProblems(object, { level: 'baseline', source: 'role', stack: object.metadata.stack ?? '' });
}

function violationsOf(kind: string, spec: Record<string, unknown>, restricted: boolean): Violation[] {
  switch (kind) {
    case 'Service':
      return [
        ...bindMountViolations(spec),
        ...capabilityViolations(spec, restricted),
        ...sysctlViolations(spec),
        ...(restricted ? restrictedServiceViolations(spec) : []),
      ];
    case 'Volume':
      return volumeViolations(spec);
    case 'Network':
      return networkViolations(spec);
    default:
      return [];
  }
}

function bindMountViolations(spec: Record<string, unknown>): Violation[] {
  return asArray(spec['mounts']).flatMap((mount, i) => {
    const m = asRecord(mount);
    if (m?.['type'] !== 'bind') return [];
    return [{ field: `spec.mounts[${i}]`, problem: `a bind mount of host path ${shown(m['source'])} is not allowed`, hint: 'use a volume or a tmpfs mount' }];
  });
}

const DEFAULT_CAPABILITY_NAMES: ReadonlySet<string> = new Set(DOCKER_DEFAULT_CAPABILITIES.map(capabilityName));

/** NET_ADMIN, net_admin and CAP_NET_ADMIN are one capability. */
function capabilityName(name: string): string {
  return name.toUpperCase().replace(/^CAP_/, '');
}

function capabilityViolations(spec: Record<string, unknown>, restricted: boolean): Violation[] {
  return asArray(spec['capAdd']).flatMap((cap, i) => {
    const name = typeof cap === 'string' ? capabilityName(cap) : undefined;
    const field = `spec.capAdd[${i}]`;
    if (name === undefined || !DEFAULT_CAPABILITY_NAMES.has(name))
      return [{ field, problem: `${shown(cap)} is not allowed`, hint: "only Docker's default capabilities" }];
    if (restricted && !RESTRICTED_ADDABLE_CAPABILITIES.has(name))
      return [{ field, problem: `${shown(cap)} is not allowed`, hint: 'only NET_BIND_SERVICE may be added' }];
    return [];
  });
}

function sysctlViolations(spec: Record<string, unknown>): Violation[] {
  return Object.keys(asRecord(spec['sysctls']) ?? {})
    .filter((key) => !SAFE_SYSCTLS.includes(key))
    .map((key) => ({ field: `spec.sysctls[${quoteName(key)}]`, problem: 'not allowed', hint: `only Kubernetes' safe sysctls: ${SAFE_SYSCTLS.join(', ')}` }));
}

/** What restricted adds for a Service: the task hardens itself, so that a breakout from it lands as nobody in particular. */
function restrictedServiceViolations(spec: Record<string, unknown>): Violation[] {
  const violations: Violation[] = [];
  const userns = spec['userns'];
  if (userns !== 'auto')
    violations.push({
      field: 'spec.userns',
      problem: `${shown(userns)} is not allowed`,
      hint: 'set userns: auto, a user namespace of its own for the service',
    });
  const user = spec['user'];
  if (!isNonRootUser(user))
    violations.push({
      field: 'spec.user',
      problem: `${shown(user)} is not allowed`,
      hint: "set a user other than root (a uid other than 0, or a name other than root); without one the image's user, often root, runs",
    });
  if (spec['readOnly'] !== true)
    violations.push({
      field: 'spec.readOnly',
      problem: `${shown(spec['readOnly'])} is not allowed`,
      hint: 'set readOnly: true; write to volumes or tmpfs mounts',
    });
  if (!asArray(spec['capDrop']).some((cap) => typeof cap === 'string' && capabilityName(cap) === 'ALL'))
    violations.push({
      field: 'spec.capDrop',
      problem: 'a list without ALL is not allowed',
      hint: 'drop ALL, and add back NET_BIND_SERVICE if the service needs it',
    });
  asArray(spec['ports']).forEach((port, i) => {
    const mode = asRecord(port)?.['mode'];
    if (mode === 'host')
      violations.push({
        field: `spec.ports[${i}].mode`,
        problem: 'host is not allowed',
        hint: "publish through the ingress (mode: ingress), not on the node's own address",
      });
  });
  return violations;
}

/**
 * "1000", "1000:0", "app", "app:app": a user other than root. The name is the image's to resolve:
 * a name other than root is taken at its word here, as the manager cannot see the image's passwd.
 */
function isNonRootUser(user: unknown): boolean {
  if (typeof user !== 'string') return false;
  const name = user.split(':')[0] ?? '';
  if (name === '' || name === 'root') return false;
  return !/^\d+$/.test(name) || Number(name) !== 0;
}

/** Driver options as the local driver reads them (agent/volumes/volume-plan.ts): mount -t type -o o device. */
function volumeViolations(spec: Record<string, unknown>): Violation[] {
  const opts = asRecord(spec['driverOpts']);
  if (opts === undefined) return [];
  const { type, device, o } = opts;
  const options = typeof o === 'string' ? o.split(',') : [];
  if (options.includes('bind') || options.includes('rbind')) {
    return [{ field: 'spec.driverOpts.o', problem: `${shown(o)} bind-mounts a path of the node (${shown(device)}), which is not allowed` }];
  }
  const violations: Violation[] = [];
  if (type !== undefined && !(typeof type === 'string' && BASELINE_VOLUME_TYPES.includes(type))) {
    violations.push({
      field: 'spec.driverOpts.type',
      problem: `${shown(type)} is not allowed`,
      hint: `only ${BASELINE_VOLUME_TYPES.join(', ')}: other filesystems mount the node's devices or directories`,
    });
  }
  if (typeof device === 'string' && device.startsWith('/')) {
    violations.push({ field: 'spec.driverOpts.device', problem: `${shown(device)} is a path on the node, which is not allowed` });
  }
  return violations;
}

function networkViolations(spec: Record<string, unknown>): Violation[] {
  const driver = spec['driver'];
  if (driver === undefined || (typeof driver === 'string' && BASELINE_NETWORK_DRIVERS.includes(driver))) return [];
  return [{ field: 'spec.driver', problem: `${shown(driver)} is not allowed`, hint: `only ${BASELINE_NETWORK_DRIVERS.join(' and ')} networks` }];
}

// ---- reading a spec that may not have passed the schema: anything unexpected is "not there" ----

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A plain name or path as it is, true and false as themselves; other strings quoted and cut to a readable length, other values by their type. */
function shown(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:/-]{1,64}$/.test(value) ? value : quoteName(value);
  if (typeof value === 'boolean') return String(value);
  return value === undefined ? '(none)' : typeof value;
}
