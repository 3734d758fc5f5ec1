// A pod spec (of a Pod, or a workload's template) → most of a native ServiceSpec. One container
// per pod: Tessera's unit is a task running one container, so sidecars and init containers are refused.
import type { IssuePath } from '../../common/resources/schema.js';
import type { RestartCondition } from '../../common/resources/types.js';
import { CONTAINER_FIELDS, translatePorts, translateProcess, translateResources } from './container.js';
import { checkFields, type DocContext } from './findings.js';
import { translatePlacement } from './placement.js';
import { containerHealthcheck } from './probes.js';
import { isMap, readBool, readInt, readList, readMap, readString } from './read.js';
import { translateSecurity } from './security.js';
import type { KubeLookup, PodTranslation } from './types.js';
import { translateVolumes } from './volumes.js';

const ONE_CONTAINER = 'one container per pod: each Tessera task runs one container';
const NO_ACCOUNTS = 'Tessera has no service accounts: no API credentials are mounted into containers';

export const RESTART_CONDITIONS: Readonly<Record<string, RestartCondition>> = { Always: 'any', OnFailure: 'on-failure', Never: 'none' };

function falseOnly(ctx: DocContext, spec: Readonly<Record<string, unknown>>, path: IssuePath, key: string, why: string): void {
  if (readBool(ctx, spec[key], [...path, key]) === true) ctx.refuse([...path, key], why);
}

export function translatePodSpec(
  ctx: DocContext,
  value: unknown,
  path: IssuePath,
  stack: string,
  lookup: KubeLookup,
  claimTemplates: ReadonlySet<string> = new Set(),
): PodTranslation | undefined {
  const spec = readMap(ctx, value, path);
  if (!spec) {
    ctx.invalid(path, 'required field is missing (the pod spec)');
    return undefined;
  }
  checkFields(ctx, spec, path, {
    containers: true,
    volumes: true,
    restartPolicy: true,
    nodeSelector: true,
    nodeName: true,
    affinity: true,
    securityContext: true,
    terminationGracePeriodSeconds: true,
    hostname: true,
    dnsPolicy: true,
    hostAliases: true,
    initContainers: true,
    hostNetwork: true,
    hostPID: true,
    hostIPC: true,
    hostUsers: true,
    automountServiceAccountToken: true,
    enableServiceLinks: true,
    ephemeralContainers: ONE_CONTAINER,
    serviceAccountName: NO_ACCOUNTS,
    serviceAccount: NO_ACCOUNTS,
    imagePullSecrets: 'images are pulled with the credentials of the node',
    tolerations: 'Tessera nodes have no taints; drain or pause a node instead',
    topologySpreadConstraints: 'spread is the default; placement.preferences in a native manifest spread over a label',
    priorityClassName: 'no priorities or preemption',
    priority: 'no priorities or preemption',
    preemptionPolicy: 'no priorities or preemption',
    schedulerName: 'Tessera has one scheduler',
    dnsConfig: 'per-service resolver settings are not translated',
    subdomain: "a task is found by its service's name",
    shareProcessNamespace: ONE_CONTAINER,
    activeDeadlineSeconds: 'tasks have no deadline',
    runtimeClassName: 'Tessera has one runtime',
    overhead: 'no pod overhead accounting',
    readinessGates: 'no readiness gates',
    setHostnameAsFQDN: "the hostname is the task's name",
    os: 'Linux containers only',
    resourceClaims: 'dynamic resource claims do not exist in Tessera',
    schedulingGates: 'no scheduling gates',
  });
  falseOnly(ctx, spec, path, 'hostNetwork', 'tasks run in their own network namespace');
  falseOnly(ctx, spec, path, 'hostPID', 'tasks run in their own pid namespace');
  falseOnly(ctx, spec, path, 'hostIPC', 'tasks run in their own ipc namespace');
  // Kubernetes injects *_SERVICE_HOST variables unless told not to; Tessera never does, and says so.
  falseOnly(ctx, spec, path, 'automountServiceAccountToken', NO_ACCOUNTS);
  if (spec['enableServiceLinks'] === true)
    ctx.refuse([...path, 'enableServiceLinks'], 'no *_SERVICE_HOST variables are injected: services are found by DNS name');
  const initContainers = readList(ctx, spec['initContainers'], [...path, 'initContainers']);
  if (initContainers && initContainers.length > 0)
    ctx.refuse([...path, 'initContainers'], `${ONE_CONTAINER}; run the setup in the container's command or as a separate job`);
  const dnsPolicy = readString(ctx, spec['dnsPolicy'], [...path, 'dnsPolicy']);
  if (dnsPolicy !== undefined && dnsPolicy !== 'ClusterFirst')
    ctx.refuse([...path, 'dnsPolicy'], `only ClusterFirst: tasks resolve through their network's resolver, got ${JSON.stringify(dnsPolicy)}`);

  const containers = readList(ctx, spec['containers'], [...path, 'containers']);
  if (!containers || containers.length === 0) {
    ctx.invalid([...path, 'containers'], 'required: exactly one container');
    return undefined;
  }
  if (containers.length > 1) ctx.refuse([...path, 'containers', 1], `${ONE_CONTAINER}; sidecars are not supported (${containers.length} containers)`);
  const containerPath: IssuePath = [...path, 'containers', 0];
  const container = containers[0];
  if (!isMap(container)) {
    ctx.invalid(containerPath, 'expected a mapping');
    return undefined;
  }
  checkFields(ctx, container, containerPath, CONTAINER_FIELDS);

  const out: PodTranslation = { spec: {}, containerPorts: [], hostPorts: [], claimMounts: [] };
  Object.assign(out.spec, translateProcess(ctx, container, containerPath, stack, lookup));
  const ports = translatePorts(ctx, container, containerPath);
  out.containerPorts = ports.containerPorts;
  out.hostPorts = ports.hostPorts;
  const resources = translateResources(ctx, container, containerPath);
  if (resources) out.spec.resources = resources;
  const healthcheck = containerHealthcheck(ctx, container, containerPath);
  if (healthcheck) out.spec.healthcheck = healthcheck;
  Object.assign(
    out.spec,
    translateSecurity(ctx, spec['securityContext'], [...path, 'securityContext'], container['securityContext'], [...containerPath, 'securityContext']),
  );
  const volumes = translateVolumes(ctx, spec, path, container, containerPath, stack, lookup, claimTemplates);
  if (volumes.mounts.length > 0) out.spec.mounts = volumes.mounts;
  if (volumes.secrets.length > 0) out.spec.secrets = volumes.secrets;
  if (volumes.configs.length > 0) out.spec.configs = volumes.configs;
  out.claimMounts = volumes.claimMounts;

  const constraints = translatePlacement(ctx, spec, path);
  if (constraints.length > 0) out.spec.placement = { constraints };
  // A user namespace of the pod's own in Kubernetes; in Tessera the service's tasks share one id
  // range no other service has. true (Kubernetes' default) is the host's ids, Tessera's default too.
  if (readBool(ctx, spec['hostUsers'], [...path, 'hostUsers']) === false) out.spec.userns = 'auto';
  const grace = readInt(ctx, spec['terminationGracePeriodSeconds'], [...path, 'terminationGracePeriodSeconds']);
  if (grace !== undefined) out.spec.stopGracePeriodMs = grace * 1000;
  const hostname = readString(ctx, spec['hostname'], [...path, 'hostname']);
  if (hostname !== undefined) out.spec.hostname = hostname;
  readList(ctx, spec['hostAliases'], [...path, 'hostAliases'])?.forEach((entry, i) => {
    const at: IssuePath = [...path, 'hostAliases', i];
    const alias = readMap(ctx, entry, at);
    if (!alias) return;
    checkFields(ctx, alias, at, { ip: true, hostnames: true });
    const ip = readString(ctx, alias['ip'], [...at, 'ip']);
    const names = readList(ctx, alias['hostnames'], [...at, 'hostnames']) ?? [];
    if (ip === undefined) return;
    for (const name of names) if (typeof name === 'string') (out.spec.extraHosts ??= []).push({ hostname: name, address: ip });
  });
  const restartPolicy = readString(ctx, spec['restartPolicy'], [...path, 'restartPolicy']);
  if (restartPolicy !== undefined) {
    if (RESTART_CONDITIONS[restartPolicy] === undefined)
      ctx.invalid([...path, 'restartPolicy'], `expected Always, OnFailure or Never, got ${JSON.stringify(restartPolicy)}`);
    else out.restartPolicy = restartPolicy;
  }
  return out;
}
