// securityContext of the pod and of its container (the container's wins, as in Kubernetes).
import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import type { ServiceSpec } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { isMap, readBool, readInt, readList, readMap, readString, readStringList } from './read.js';

type SecuritySpec = Pick<ServiceSpec, 'user' | 'readOnly' | 'capAdd' | 'capDrop' | 'sysctls'>;

const COMMON_REFUSALS = {
  seLinuxOptions: 'Tessera does not label containers for SELinux',
  appArmorProfile: 'Tessera does not load AppArmor profiles',
  windowsOptions: 'Linux containers only',
} as const;

function capabilityName(raw: string): string {
  const upper = raw.toUpperCase();
  return upper.startsWith('CAP_') ? upper.slice(4) : upper;
}

interface Identity {
  user?: number;
  group?: number;
  nonRoot?: boolean;
  nonRootPath?: IssuePath;
}

function readIdentity(ctx: DocContext, sc: Readonly<Record<string, unknown>>, path: IssuePath, into: Identity): void {
  const user = readInt(ctx, sc['runAsUser'], [...path, 'runAsUser']);
  const group = readInt(ctx, sc['runAsGroup'], [...path, 'runAsGroup']);
  const nonRoot = readBool(ctx, sc['runAsNonRoot'], [...path, 'runAsNonRoot']);
  if (user !== undefined) into.user = user;
  if (group !== undefined) into.group = group;
  if (nonRoot !== undefined) {
    into.nonRoot = nonRoot;
    into.nonRootPath = [...path, 'runAsNonRoot'];
  }
  const seccomp = readMap(ctx, sc['seccompProfile'], [...path, 'seccompProfile']);
  if (seccomp && seccomp['type'] !== 'RuntimeDefault') {
    ctx.refuse([...path, 'seccompProfile', 'type'], `only RuntimeDefault (Tessera's default profile), got ${describeValue(seccomp['type'])}`);
  }
}

export function translateSecurity(ctx: DocContext, podContext: unknown, podPath: IssuePath, containerContext: unknown, containerPath: IssuePath): SecuritySpec {
  const out: SecuritySpec = {};
  const identity: Identity = {};
  const pod = readMap(ctx, podContext, podPath);
  if (pod) {
    checkFields(ctx, pod, podPath, {
      ...COMMON_REFUSALS,
      runAsUser: true,
      runAsGroup: true,
      runAsNonRoot: true,
      seccompProfile: true,
      sysctls: true,
      fsGroup: 'volume ownership is not changed on mount',
      fsGroupChangePolicy: 'volume ownership is not changed on mount',
      supplementalGroups: 'extra groups are not set on the container process',
      supplementalGroupsPolicy: 'extra groups are not set on the container process',
    });
    readIdentity(ctx, pod, podPath, identity);
    const sysctls = readList(ctx, pod['sysctls'], [...podPath, 'sysctls']);
    sysctls?.forEach((entry, i) => {
      const name = isMap(entry) ? readString(ctx, entry['name'], [...podPath, 'sysctls', i, 'name']) : undefined;
      const value = isMap(entry) ? entry['value'] : undefined;
      if (name === undefined || (typeof value !== 'string' && typeof value !== 'number')) {
        ctx.invalid([...podPath, 'sysctls', i], 'expected {name, value}');
        return;
      }
      (out.sysctls ??= {})[name] = String(value);
    });
  }
  const container = readMap(ctx, containerContext, containerPath);
  if (container) {
    checkFields(ctx, container, containerPath, {
      ...COMMON_REFUSALS,
      runAsUser: true,
      runAsGroup: true,
      runAsNonRoot: true,
      seccompProfile: true,
      readOnlyRootFilesystem: true,
      capabilities: true,
      privileged: true,
      allowPrivilegeEscalation: true,
      procMount: 'the /proc mask is fixed',
    });
    readIdentity(ctx, container, containerPath, identity);
    const readOnly = readBool(ctx, container['readOnlyRootFilesystem'], [...containerPath, 'readOnlyRootFilesystem']);
    if (readOnly !== undefined) out.readOnly = readOnly;
    if (readBool(ctx, container['privileged'], [...containerPath, 'privileged']) === true) {
      ctx.refuse([...containerPath, 'privileged'], 'Tessera runs no privileged containers');
    }
    if (readBool(ctx, container['allowPrivilegeEscalation'], [...containerPath, 'allowPrivilegeEscalation']) === true) {
      ctx.refuse([...containerPath, 'allowPrivilegeEscalation'], 'Tessera always sets no_new_privs');
    }
    const caps = readMap(ctx, container['capabilities'], [...containerPath, 'capabilities']);
    if (caps) {
      checkFields(ctx, caps, [...containerPath, 'capabilities'], { add: true, drop: true });
      const add = readStringList(ctx, caps['add'], [...containerPath, 'capabilities', 'add']);
      const drop = readStringList(ctx, caps['drop'], [...containerPath, 'capabilities', 'drop']);
      if (add && add.length > 0) out.capAdd = add.map(capabilityName);
      if (drop && drop.length > 0) out.capDrop = drop.map(capabilityName);
    }
  }
  if (identity.group !== undefined && identity.user === undefined) {
    ctx.refuse([...containerPath, 'runAsGroup'], 'a group without runAsUser: Tessera sets the user as "uid:gid" and needs the uid');
  } else if (identity.user !== undefined) {
    out.user = identity.group === undefined ? String(identity.user) : `${identity.user}:${identity.group}`;
  }
  // runAsNonRoot is a check Kubernetes makes against the image's user; it holds by construction
  // when a non-zero uid is set, and cannot be checked before the image is pulled otherwise.
  if (identity.nonRoot === true && (identity.user === undefined || identity.user === 0)) {
    ctx.refuse(identity.nonRootPath ?? containerPath, "Tessera does not check the image's user; set runAsUser to a non-zero uid");
  }
  return out;
}
