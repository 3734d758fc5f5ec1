// Prometheus HTTP service discovery (http_sd_configs) built from what the managers' informers hold:
// one target group per node's metrics endpoint, and one per running task of a service that opts in
// through its labels (prometheus.io/scrape, prometheus.io/port, prometheus.io/path), at the task's
// overlay address. Pure functions: the HTTP route (prometheus-sd-route.ts) feeds them and serves the
// JSON. The __meta_tessera_* labels follow dockerswarm_sd's __meta_dockerswarm_* so that relabelling
// rules written for Swarm carry over with a prefix change.
import { isGlobalMode, isJobMode, type Node, type Service, type Task } from '../../common/resources/types.js';
import { INGRESS_NETWORK_ID } from '../../common/network/node-network-view.js';
import { resolveServiceNetworks } from '../network/membership.js';
import { serviceKey, type ClusterNetworkState } from '../network/types.js';

/** One entry of the http_sd JSON list. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** What a response may hold: Prometheus keeps every target (and its labels) in memory. */
export interface SdLimits {
  /** Target groups in one response; the rest are left out (and said so in the log). */
  maxTargets: number;
  /** A service's labels copied as __meta_tessera_service_label_*; further ones are left out. */
  maxServiceLabels: number;
  /** Label values longer than this (UTF-16 units) are left out rather than cut into something misleading. */
  maxLabelValueLength: number;
}

export const DEFAULT_SD_LIMITS: SdLimits = { maxTargets: 5000, maxServiceLabels: 64, maxLabelValueLength: 1024 };

export const SCRAPE_LABEL = 'prometheus.io/scrape';
export const PORT_LABEL = 'prometheus.io/port';
export const PATH_LABEL = 'prometheus.io/path';
const META = '__meta_tessera_';
const MAX_PATH_LENGTH = 256;
/** An absolute URL path: no query, fragment, spaces or control characters (Prometheus takes it as __metrics_path__). */
const PATH_PATTERN = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;

/** Why a node or task that could have been a target is not one; the route logs each once. */
export interface SkippedTarget {
  /** "node n1" or "task web.1 (stack shop)". */
  what: string;
  reason: string;
}

export interface SdResult {
  groups: TargetGroup[];
  skipped: SkippedTarget[];
}

export type ScrapeOptIn = { scrape: false } | { scrape: true; port: number; path: string } | { scrape: true; error: string };

/**
 * A service's opt-in from its labels. Only "true" opts in (as Kubernetes' and Swarm's conventions
 * read it); a port is required because a task has no single port Prometheus could guess; the path
 * defaults to /metrics.
 */
export function parseScrapeOptIn(labels: Readonly<Record<string, string>> | undefined): ScrapeOptIn {
  if (labels?.[SCRAPE_LABEL] !== 'true') return { scrape: false };
  const portText = labels[PORT_LABEL];
  if (portText === undefined) return { scrape: true, error: `label ${PORT_LABEL} is missing (a task has no default port to scrape)` };
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return { scrape: true, error: `label ${PORT_LABEL} must be a port number 1-65535, got ${quoteShort(portText)}` };
  const path = labels[PATH_LABEL] ?? '/metrics';
  if (path.length > MAX_PATH_LENGTH || !PATH_PATTERN.test(path)) {
    return {
      scrape: true,
      error: `label ${PATH_LABEL} must be an absolute URL path of at most ${MAX_PATH_LENGTH} characters without query or spaces, got ${quoteShort(path)}`,
    };
  }
  return { scrape: true, port, path };
}

/** A Prometheus label name from any string: what dockerswarm_sd does to Docker label keys. */
export function sanitizeLabelName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

/** One target group per node with an address: its tsd's /metrics endpoint at `metricsPort`. */
export function nodeTargetGroups(nodes: readonly Node[], metricsPort: number, limits: SdLimits = DEFAULT_SD_LIMITS): SdResult {
  const groups: TargetGroup[] = [];
  const skipped: SkippedTarget[] = [];
  for (const node of [...nodes].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const what = `node ${node.metadata.name}`;
    const address = node.status.address;
    if (!address) {
      skipped.push({ what, reason: 'it has not reported an address yet' });
      continue;
    }
    if (groups.length >= limits.maxTargets) {
      skipped.push({ what, reason: `the response already holds ${limits.maxTargets} targets (the limit)` });
      continue;
    }
    groups.push({ targets: [hostPort(address, metricsPort)], labels: nodeLabels(node, limits) });
  }
  return { groups, skipped };
}

export interface TaskSdInput {
  tasks: readonly Task[];
  services: readonly Service[];
  nodes: readonly Node[];
  networks: ClusterNetworkState;
  limits?: SdLimits;
}

/**
 * One target group per running task of an opted-in service, at its address on the first overlay
 * network of the service's attachment order (its declared networks in order, else its stack's
 * default network); ingress is never chosen, since it carries only the routing mesh.
 */
export function taskTargetGroups(input: TaskSdInput): SdResult {
  const limits = input.limits ?? DEFAULT_SD_LIMITS;
  const services = new Map(input.services.map((s) => [serviceKey(s.metadata.stack, s.metadata.name), s]));
  const nodes = new Map(input.nodes.map((n) => [n.metadata.name, n]));
  const declared = new Set(
    Object.values(input.networks.networks)
      .filter((n) => n.kind === 'declared')
      .map((n) => n.id),
  );
  const groups: TargetGroup[] = [];
  const skipped: SkippedTarget[] = [];
  const running = input.tasks.filter((t) => t.status.state === 'running' && t.desiredState === 'running');
  for (const task of running.sort((a, b) => taskKey(a).localeCompare(taskKey(b)))) {
    const service = services.get(serviceKey(task.spec.serviceStack, task.spec.serviceName));
    // A task outlives its service only briefly (until the orchestrator stops it): not a target.
    if (!service) continue;
    const optIn = parseScrapeOptIn(service.metadata.labels);
    if (!optIn.scrape) continue;
    const what = `task ${task.metadata.name}${task.metadata.stack ? ` (stack ${task.metadata.stack})` : ''}`;
    if ('error' in optIn) {
      skipped.push({ what, reason: `service ${service.metadata.name}: ${optIn.error}` });
      continue;
    }
    const { ids } = resolveServiceNetworks(task.spec.serviceStack, task.spec.serviceName, task.spec.spec, declared);
    const networkId = ids.find((id) => id !== INGRESS_NETWORK_ID && input.networks.networks[id]?.tasks[taskKey(task)] !== undefined);
    const network = networkId === undefined ? undefined : input.networks.networks[networkId];
    const address = network?.tasks[taskKey(task)];
    if (!network || !address) {
      skipped.push({ what, reason: 'it has no overlay network address (yet)' });
      continue;
    }
    if (groups.length >= limits.maxTargets) {
      skipped.push({ what, reason: `the response already holds ${limits.maxTargets} targets (the limit)` });
      continue;
    }
    const labels: Record<string, string> = {
      __metrics_path__: optIn.path,
      [`${META}task_name`]: task.metadata.name,
      [`${META}task_slot`]: String(task.spec.slot),
      [`${META}task_state`]: task.status.state,
      [`${META}task_desired_state`]: task.desiredState,
      ...(task.status.containerId ? { [`${META}task_container_id`]: task.status.containerId } : {}),
      [`${META}stack`]: task.spec.serviceStack,
      [`${META}service_name`]: service.metadata.name,
      [`${META}service_mode`]: service.spec.mode ?? 'replicated',
      [`${META}service_global`]: String(isGlobalMode(service.spec.mode)),
      [`${META}service_job`]: String(isJobMode(service.spec.mode)),
      [`${META}network_id`]: network.id,
      [`${META}network_name`]: network.name,
      [`${META}network_internal`]: String(network.internal),
      ...prefixedLabels(`${META}service_label_`, service.metadata.labels, limits),
    };
    const node = task.nodeName === undefined ? undefined : nodes.get(task.nodeName);
    if (node) Object.assign(labels, nodeLabels(node, limits, false));
    else if (task.nodeName) labels[`${META}node_name`] = task.nodeName;
    groups.push({ targets: [hostPort(address, optIn.port)], labels: boundedValues(labels, limits) });
  }
  return { groups, skipped };
}

function nodeLabels(node: Node, limits: SdLimits, withNodeLabels = true): Record<string, string> {
  return boundedValues(
    {
      [`${META}node_name`]: node.metadata.name,
      [`${META}node_hostname`]: node.status.hostname,
      [`${META}node_role`]: node.spec.role,
      [`${META}node_availability`]: node.spec.availability,
      [`${META}node_state`]: node.status.state,
      ...(node.status.address ? { [`${META}node_address`]: node.status.address } : {}),
      ...(withNodeLabels ? prefixedLabels(`${META}node_label_`, node.spec.labels, limits) : {}),
    },
    limits,
  );
}

/** `labels` renamed under `prefix`, sorted, at most maxServiceLabels; on a name clash after sanitizing the first (sorted) wins. */
function prefixedLabels(prefix: string, labels: Readonly<Record<string, string>> | undefined, limits: SdLimits): Record<string, string> {
  const out: Record<string, string> = {};
  let count = 0;
  for (const key of Object.keys(labels ?? {}).sort()) {
    if (count >= limits.maxServiceLabels) break;
    const name = prefix + sanitizeLabelName(key);
    if (name in out) continue;
    out[name] = labels![key]!;
    count++;
  }
  return out;
}

function boundedValues(labels: Record<string, string>, limits: SdLimits): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, value]) => value.length <= limits.maxLabelValueLength));
}

function taskKey(task: Task): string {
  return `${task.metadata.stack ?? ''}/${task.metadata.name}`;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function quoteShort(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}
