// v1 Service → ports, endpoint mode and DNS name of the workload it selects. A Tessera service
// carries its own VIP, DNS name and published ports, so a Kubernetes Service is not an object of
// its own here: it is joined, by its label selector, to the one workload (in the same files and
// namespace) whose pods it selects.
//   ClusterIP            → the workload's VIP on its stack network, the ports listed as exposed
//   clusterIP: None      → endpointMode dnsrr (the name resolves to every task)
//   NodePort             → ports published on every node (the routing mesh), nodePort → published
//   a name other than the workload's → a DNS alias on the stack's default network
import type { IssuePath } from '../../common/resources/schema.js';
import type { Service } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { readInt, readList, readMap, readProtocol, readString, readStringMap, type YamlMap } from './read.js';
import type { KubeMeta, Workload } from './types.js';

export interface JoinState {
  /** Endpoint mode each native service was given, and by which Kubernetes Service. */
  modes: Map<Service, { mode: 'vip' | 'dnsrr'; by: string }>;
  /** Stacks whose default network must be declared because aliases are set on it. */
  aliasNetworks: Set<string>;
}

interface PortPlan {
  target: number;
  published?: number;
  protocol: 'tcp' | 'udp';
}

function selected(workload: Workload, selector: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => workload.podLabels[k] === v);
}

function portPlans(ctx: DocContext, spec: YamlMap, workload: Workload, type: string, headless: boolean): PortPlan[] {
  const plans: PortPlan[] = [];
  readList(ctx, spec['ports'], ['spec', 'ports'])?.forEach((entry, i) => {
    const at: IssuePath = ['spec', 'ports', i];
    const port = readMap(ctx, entry, at);
    if (!port) return;
    checkFields(ctx, port, at, { port: true, targetPort: true, protocol: true, name: true, nodePort: true, appProtocol: true });
    const number = readInt(ctx, port['port'], [...at, 'port'], 1);
    if (number === undefined) {
      if (port['port'] === undefined) ctx.invalid([...at, 'port'], 'required field is missing');
      return;
    }
    const protocol = readProtocol(ctx, port['protocol'], [...at, 'protocol']);
    if (protocol === undefined) return;
    let target = number;
    const rawTarget = port['targetPort'];
    if (typeof rawTarget === 'string' && !/^\d+$/.test(rawTarget)) {
      const named = workload.containerPorts.find((p) => p.name === rawTarget);
      if (!named) {
        ctx.invalid([...at, 'targetPort'], `the selected ${workload.kind} ${workload.name} has no container port named ${JSON.stringify(rawTarget)}`);
        return;
      }
      target = named.port;
    } else if (rawTarget !== undefined && rawTarget !== null) {
      target = readInt(ctx, typeof rawTarget === 'string' ? Number(rawTarget) : rawTarget, [...at, 'targetPort'], 1) ?? number;
    }
    if (!headless && target !== number) {
      ctx.refuse([...at, 'port'], `a Tessera VIP forwards to the container port unchanged: port ${number} must equal targetPort ${target}`);
      return;
    }
    const plan: PortPlan = { target, protocol };
    if (type === 'NodePort') {
      const nodePort = readInt(ctx, port['nodePort'], [...at, 'nodePort'], 1);
      if (nodePort === undefined) {
        if (port['nodePort'] === undefined)
          ctx.refuse([...at, 'nodePort'], 'Tessera does not choose node ports: set nodePort to the port to publish on every node');
        return;
      }
      plan.published = nodePort;
    } else if (port['nodePort'] !== undefined) {
      ctx.invalid([...at, 'nodePort'], 'nodePort needs type: NodePort');
    }
    plans.push(plan);
  });
  return plans;
}

export function joinService(ctx: DocContext, doc: YamlMap, meta: KubeMeta, workloads: readonly Workload[], state: JoinState): void {
  checkFields(ctx, doc, [], { apiVersion: true, kind: true, metadata: true, spec: true, status: true });
  const spec = readMap(ctx, doc['spec'], ['spec']) ?? {};
  checkFields(ctx, spec, ['spec'], {
    type: true,
    selector: true,
    ports: true,
    clusterIP: true,
    clusterIPs: true,
    sessionAffinity: true,
    externalTrafficPolicy: true,
    internalTrafficPolicy: true,
    ipFamilies: true,
    ipFamilyPolicy: true,
    externalIPs: 'services are reached on node addresses through published ports',
    loadBalancerIP: 'no load balancer provider',
    loadBalancerSourceRanges: 'no load balancer provider',
    loadBalancerClass: 'no load balancer provider',
    allocateLoadBalancerNodePorts: 'no load balancer provider',
    healthCheckNodePort: 'no load balancer provider',
    externalName: 'a name elsewhere is not a Tessera service',
    publishNotReadyAddresses: 'only running (and healthy) tasks are balanced to',
    sessionAffinityConfig: 'connections are balanced without affinity',
    trafficDistribution: 'connections are balanced over every task',
  });
  const type = readString(ctx, spec['type'], ['spec', 'type']) ?? 'ClusterIP';
  if (type === 'LoadBalancer') ctx.refuse(['spec', 'type'], 'there is no load balancer provider; use NodePort to publish on every node');
  else if (type === 'ExternalName') ctx.refuse(['spec', 'type'], 'a name elsewhere is not a Tessera service');
  else if (type !== 'ClusterIP' && type !== 'NodePort')
    ctx.invalid(['spec', 'type'], `expected ClusterIP, NodePort, LoadBalancer or ExternalName, got ${JSON.stringify(type)}`);
  if (type !== 'ClusterIP' && type !== 'NodePort') return;
  const clusterIP = readString(ctx, spec['clusterIP'], ['spec', 'clusterIP']);
  const headless = clusterIP === 'None';
  if (clusterIP !== undefined && !headless && clusterIP !== '') ctx.refuse(['spec', 'clusterIP'], 'VIPs are allocated by the cluster');
  const ips = readList(ctx, spec['clusterIPs'], ['spec', 'clusterIPs']);
  if (ips && !(ips.length === 1 && ips[0] === clusterIP)) ctx.refuse(['spec', 'clusterIPs'], 'VIPs are allocated by the cluster');
  for (const [key, ok] of [
    ['sessionAffinity', 'None'],
    ['externalTrafficPolicy', 'Cluster'],
    ['internalTrafficPolicy', 'Cluster'],
    ['ipFamilyPolicy', 'SingleStack'],
  ] as const) {
    const value = readString(ctx, spec[key], ['spec', key]);
    if (value !== undefined && value !== ok) ctx.refuse(['spec', key], `only ${ok}, got ${JSON.stringify(value)}`);
  }
  const families = readList(ctx, spec['ipFamilies'], ['spec', 'ipFamilies']);
  if (families && families.some((f) => f !== 'IPv4')) ctx.refuse(['spec', 'ipFamilies'], 'Tessera networks are IPv4 only');
  if (headless && type === 'NodePort') ctx.invalid(['spec', 'clusterIP'], 'a headless Service cannot be a NodePort');

  const selector = readStringMap(ctx, spec['selector'], ['spec', 'selector']);
  if (!selector || Object.keys(selector).length === 0) {
    ctx.refuse(['spec', 'selector'], 'a Service without a selector (endpoints made by hand) has nothing to join; Tessera services carry their own ports');
    return;
  }
  const matches = workloads.filter((w) => w.stack === meta.stack && selected(w, selector));
  if (matches.length === 0) {
    ctx.refuse(
      ['spec', 'selector'],
      "selects no Deployment, DaemonSet, StatefulSet, Pod or Job in the files applied together; a Tessera service's ports and name belong to its workload, so apply them together",
    );
    return;
  }
  if (matches.length > 1) {
    ctx.refuse(
      ['spec', 'selector'],
      `selects ${matches.length} workloads (${matches.map((w) => `${w.kind} ${w.name}`).join(', ')}): in Tessera a name and VIP belong to one service`,
    );
    return;
  }
  const workload = matches[0]!;
  if (workload.kind === 'StatefulSet') {
    if (!headless)
      ctx.refuse(['spec', 'clusterIP'], `a Service over StatefulSet ${workload.name} must be headless (clusterIP: None): each ordinal is a service of its own`);
    else
      ctx.refuse(
        ['metadata', 'name'],
        `this name would resolve to every pod of StatefulSet ${workload.name}, but in Tessera each ordinal is a service of its own, found by its own name (${workload.name}-0, …)`,
      );
    for (const service of workload.services) service.spec.endpointMode = 'dnsrr';
    return;
  }
  const plans = portPlans(ctx, spec, workload, type, headless);
  const service = workload.services[0]!;
  const mode = headless ? 'dnsrr' : 'vip';
  const earlier = state.modes.get(service);
  if (earlier && earlier.mode !== mode) {
    ctx.refuse(
      ['spec', 'clusterIP'],
      `Service ${earlier.by} over the same ${workload.kind} is ${earlier.mode === 'dnsrr' ? 'headless' : 'not headless'}; a Tessera service has one endpoint mode`,
    );
    return;
  }
  state.modes.set(service, { mode, by: meta.name });
  if (headless) service.spec.endpointMode = 'dnsrr';
  for (const plan of plans) {
    if (plan.published !== undefined) {
      const ports = (service.spec.ports ??= []);
      if (!ports.some((p) => p.published === plan.published && (p.protocol ?? 'tcp') === plan.protocol)) {
        ports.push({ target: plan.target, published: plan.published, protocol: plan.protocol });
      }
    }
    const expose = (service.spec.expose ??= []);
    if (!expose.some((e) => e.port === plan.target && e.protocol === plan.protocol)) expose.push({ port: plan.target, protocol: plan.protocol });
  }
  if (meta.name !== service.metadata.name) {
    const networks = (service.spec.networks ??= [{ name: 'default' }]);
    const attachment = networks[0]!;
    if (!(attachment.aliases ?? []).includes(meta.name)) attachment.aliases = [...(attachment.aliases ?? []), meta.name];
    state.aliasNetworks.add(meta.stack);
  }
}
