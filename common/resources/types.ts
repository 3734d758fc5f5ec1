// The resource model shared by the API, the store, the controllers and the agent.
// Objects are Kubernetes-style envelopes; the store holds them as JSON.

export const API_VERSION = 'tessera/v1';

export interface ObjectMeta {
  name: string;
  /** A stack is a namespace; objects without one live in the default stack "". */
  stack?: string;
  uid?: string;
  /** The store's mod revision of this object, as a decimal string; updates compare-and-swap on it. */
  resourceVersion?: string;
  generation?: number;
  createdAt?: string;
  labels?: Record<string, string>;
}

export type RestartCondition = 'any' | 'on-failure' | 'none';

export interface PortSpec {
  target: number;
  published?: number;
  protocol?: 'tcp' | 'udp';
  /** ingress: published on every node (the default); host: only on the node running the task. */
  mode?: 'ingress' | 'host';
}

/** How tasks of a service are placed: N replicas, one per node, or the same as run-to-completion jobs. */
export type ServiceMode = 'replicated' | 'global' | 'replicated-job' | 'global-job';

/** One task on every eligible node (global, global-job) rather than N slots. */
export function isGlobalMode(mode: ServiceMode | undefined): boolean {
  return mode === 'global' || mode === 'global-job';
}

/** Run-to-completion services: a task that exits 0 is done and is not replaced. */
export function isJobMode(mode: ServiceMode | undefined): boolean {
  return mode === 'replicated-job' || mode === 'global-job';
}

export interface NetworkAttachment {
  /** A Network object of the same stack, or an external network's name. */
  name: string;
  /** Extra DNS names of the service on this network. */
  aliases?: string[];
}

export type MountType = 'volume' | 'bind' | 'tmpfs';

export interface Mount {
  type: MountType;
  /** volume: a Volume of the stack (absent: an anonymous volume); bind: an absolute host path; tmpfs: absent. */
  source?: string;
  target: string;
  readOnly?: boolean;
  /** volume: do not copy the image's content at target into a new volume. */
  noCopy?: boolean;
  /** volume: mount only this path inside the volume. */
  subpath?: string;
  /** bind: mount propagation, e.g. rprivate. */
  propagation?: string;
  /** bind: create the host path when it is missing (Compose's default for the short syntax). */
  createHostPath?: boolean;
  /** tmpfs: size limit in bytes. */
  sizeBytes?: number;
  /** tmpfs: permission bits of the mount root. */
  mode?: number;
}

/** A secret or config made visible in the container as a file. */
export interface FileReference {
  /** A Secret/Config of the stack, or an external one's name. */
  source: string;
  /** Absolute path, or a name relative to /run/secrets (secrets) or / (configs). */
  target: string;
  uid?: string;
  gid?: string;
  mode?: number;
}

export interface HealthcheckSpec {
  /** ["CMD", arg...], ["CMD-SHELL", "command"] or ["NONE"] (Docker's forms). */
  test?: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
  startIntervalMs?: number;
  /** Turns off a health check the image defines. */
  disable?: boolean;
}

export type DependencyCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface ServiceDependency {
  /** Another service of the same stack. */
  service: string;
  condition: DependencyCondition;
  /** Restart this service when the dependency is updated. */
  restart?: boolean;
  /** false: start anyway when the dependency is missing. */
  required?: boolean;
}

export interface UpdatePolicy {
  /** Tasks updated at once; 0 means all at once. */
  parallelism?: number;
  delayMs?: number;
  failureAction?: 'pause' | 'continue' | 'rollback';
  monitorMs?: number;
  maxFailureRatio?: number;
  order?: 'stop-first' | 'start-first';
}

export interface ServiceSpec {
  image: string;
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  workdir?: string;
  user?: string;
  hostname?: string;
  replicas?: number;
  ports?: PortSpec[];
  resources?: {
    limits?: { memory?: number; cpus?: number; pids?: number };
    reservations?: { memory?: number; cpus?: number };
  };
  placement?: {
    constraints?: string[];
    /** Spread tasks evenly over the values of these node labels, e.g. {spread: "node.labels.zone"}. */
    preferences?: Array<{ spread: string }>;
    maxReplicasPerNode?: number;
  };
  restart?: {
    condition?: RestartCondition;
    /** Base back-off between restarts of one slot, in milliseconds; doubles per failure up to maxDelayMs. */
    delayMs?: number;
    maxDelayMs?: number;
    maxAttempts?: number;
    /** maxAttempts counts failures within this window only. */
    windowMs?: number;
  };
  stopGracePeriodMs?: number;
  // ---- fields added for Compose (issue 6); the node agent honours them as it learns to ----
  mode?: ServiceMode;
  /** vip: one virtual IP balances over the tasks; dnsrr: the service name resolves to every task. */
  endpointMode?: 'vip' | 'dnsrr';
  networks?: NetworkAttachment[];
  mounts?: Mount[];
  secrets?: FileReference[];
  configs?: FileReference[];
  healthcheck?: HealthcheckSpec;
  dependsOn?: ServiceDependency[];
  /** Ports the container listens on without publishing them (informational inside a network). */
  expose?: Array<{ port: number; protocol: 'tcp' | 'udp' }>;
  readOnly?: boolean;
  /**
   * 'auto': the tasks run in their own user namespace, mapped onto a 65,536-id range of the node's
   * subordinate ids that no other service shares (Kubernetes hostUsers: false, Docker userns-remap).
   * Absent or 'host': the host's ids, as Docker does by default.
   */
  userns?: 'auto' | 'host';
  capAdd?: string[];
  capDrop?: string[];
  ulimits?: Record<string, { soft: number; hard: number }>;
  sysctls?: Record<string, string>;
  extraHosts?: Array<{ hostname: string; address: string }>;
  dns?: { servers?: string[]; search?: string[]; options?: string[] };
  stopSignal?: string;
  /** Run a minimal init as PID 1 that reaps zombies and forwards signals. */
  init?: boolean;
  /**
   * A pseudo-terminal as the container's controlling terminal and stdin/stdout/stderr (Swarm's
   * ContainerSpec.TTY, Compose tty, `docker run -t`); its output is logged as stdout. Default false.
   */
  tty?: boolean;
  /**
   * A stdin that stays open and never delivers data (Swarm's OpenStdin, Compose stdin_open,
   * `docker run -i` with nobody attached), for programs that exit at the end of their input.
   * Default false: stdin is /dev/null.
   */
  stdinOpen?: boolean;
  logging?: { driver?: string; options?: Record<string, string> };
  /** Labels on the containers (metadata.labels label the service). */
  containerLabels?: Record<string, string>;
  updateConfig?: UpdatePolicy;
  rollbackConfig?: UpdatePolicy;
}

export interface ServiceStatus {
  observedGeneration?: number;
  runningTasks?: number;
  desiredTasks?: number;
  // ---- rolling updates (issue 6); written by the service controller only ----
  /** The spec the controller last started rolling out; a spec that differs from it starts a new rollout. */
  currentSpec?: ServiceSpec;
  /** The spec before currentSpec: what a rollback (automatic, or `tsctl rollout undo`) goes back to. */
  previousSpec?: ServiceSpec;
  /** The latest rollout; absent until the first spec change after creation. */
  update?: UpdateStatus;
  /** The last few spec generations, oldest first, for `tsctl rollout history`. */
  history?: RolloutRecord[];
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface UpdateStatus {
  state: UpdateState;
  message?: string;
  startedAt: string;
  completedAt?: string;
  /** Slots (or nodes, for global services) that had to change when the rollout started. */
  total?: number;
  /** Tasks of this rollout that failed inside their monitor window; they count towards maxFailureRatio. */
  failedTasks?: string[];
  /** Set on an automatic rollback: why the update it undoes failed. Absent for `tsctl rollout undo`. */
  rollbackReason?: string;
}

export interface RolloutRecord {
  generation: number;
  at: string;
  kind: 'create' | 'update' | 'rollback';
  /** A short summary of what changed, e.g. "image busybox:1 → busybox:2". */
  change: string;
}

export interface Service {
  apiVersion: typeof API_VERSION;
  kind: 'Service';
  metadata: ObjectMeta;
  spec: ServiceSpec;
  status?: ServiceStatus;
}

/** Task states in lifecycle order (Swarm's vocabulary). */
export const TASK_STATES = [
  'new',
  'pending',
  'assigned',
  'accepted',
  'preparing',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'orphaned',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set<TaskState>(['complete', 'shutdown', 'failed', 'rejected', 'orphaned']);

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.has(state);
}

export interface TaskSpec {
  serviceName: string;
  serviceStack: string;
  /** The service generation this task was created from. */
  serviceGeneration: number;
  slot: number;
  spec: ServiceSpec;
}

export interface TaskStatus {
  state: TaskState;
  message?: string;
  error?: string;
  timestamp: string;
  containerId?: string;
  pid?: number;
  exitCode?: number;
  oomKilled?: boolean;
  address?: string;
  /** Why the scheduler could not place the task, when it is pending. */
  schedulingReason?: string;
  /** The container's health, when its service has a health check (reported by the agent). */
  health?: 'starting' | 'healthy' | 'unhealthy';
  /** Failed health probes in a row (reported with health). */
  failingStreak?: number;
  /** The last few health probes, oldest first, output truncated (reported with health). */
  healthLog?: HealthProbeRecord[];
  /** When `health` last changed (written by the manager). */
  healthChangedAt?: string;
  /** When the task became running (written by the manager); the rollout's monitor window counts from here. */
  startedAt?: string;
  /** When the task first became healthy (written by the manager); a checked task's monitor window counts from here. */
  healthyAt?: string;
  /** Set while the task is held unplaced until its service's dependencies (dependsOn) are met. */
  dependencyWait?: string;
}

export interface HealthProbeRecord {
  start: string;
  end: string;
  /** -1: timed out or could not run. */
  exitCode: number;
  output: string;
}

export interface Task {
  apiVersion: typeof API_VERSION;
  kind: 'Task';
  metadata: ObjectMeta;
  spec: TaskSpec;
  /** Set by the scheduler. */
  nodeName?: string;
  /** What the orchestrator wants: 'running', or 'shutdown' to stop it. */
  desiredState: 'running' | 'shutdown';
  status: TaskStatus;
}

export type NodeAvailability = 'active' | 'pause' | 'drain';
export type NodeReadiness = 'ready' | 'down' | 'unknown';

export interface NodeSpec {
  availability: NodeAvailability;
  role: 'manager' | 'worker';
  labels?: Record<string, string>;
}

export interface NodeStatus {
  state: NodeReadiness;
  address?: string;
  hostname: string;
  /** Capacity this node offers to tasks. */
  resources: { memoryBytes: number; nanoCpus: number };
  lastHeartbeat?: string;
  message?: string;
  /** The node's own container bridge subnet; cluster-wide network allocation stays clear of it. */
  localSubnet?: string;
}

export interface Node {
  apiVersion: typeof API_VERSION;
  kind: 'Node';
  metadata: ObjectMeta;
  spec: NodeSpec;
  status: NodeStatus;
}

// ---- stack-scoped objects that services refer to (added for Compose, issue 6) ----

export interface NetworkSpec {
  /**
   * overlay (the default): one network across the cluster's nodes (VXLAN). bridge: node-local —
   * a task reaches only the network's tasks on its own node, and names and VIPs resolve to those.
   */
  driver?: 'overlay' | 'bridge';
  /** No traffic to or from outside the network. */
  internal?: boolean;
  /** Standalone containers may join (kept for Compose; services always can). */
  attachable?: boolean;
  /** IPv4 subnets in CIDR form to allocate from, instead of the cluster's pool. */
  subnets?: string[];
  enableIpv6?: boolean;
}

export interface Network {
  apiVersion: typeof API_VERSION;
  kind: 'Network';
  metadata: ObjectMeta;
  spec: NetworkSpec;
}

export interface VolumeSpec {
  /** Tessera's one driver: a directory on the node that runs the task. */
  driver?: 'local';
  /** Options of the local driver: type, device, o (as for `mount -t TYPE -o O DEVICE`). */
  driverOpts?: Record<string, string>;
}

export interface Volume {
  apiVersion: typeof API_VERSION;
  kind: 'Volume';
  metadata: ObjectMeta;
  spec: VolumeSpec;
}

export interface SecretSpec {
  /** The content, base64-encoded. */
  data: string;
}

/** Written by the API server: secret and config data is never shown, its size is. */
export interface FileObjectStatus {
  sizeBytes: number;
}

export interface Secret {
  apiVersion: typeof API_VERSION;
  kind: 'Secret';
  metadata: ObjectMeta;
  spec: SecretSpec;
  status?: FileObjectStatus;
}

export interface ConfigSpec {
  /** The content, base64-encoded. */
  data: string;
}

export interface Config {
  apiVersion: typeof API_VERSION;
  kind: 'Config';
  metadata: ObjectMeta;
  spec: ConfigSpec;
  status?: FileObjectStatus;
}

/** Objects a stack is made of; the API server accepts all of them. */
export type StackObject = Service | Network | Volume | Secret | Config;
export type StackKind = StackObject['kind'];
export const STACK_KINDS: readonly StackKind[] = ['Service', 'Network', 'Volume', 'Secret', 'Config'];

export type AnyObject = Service | Task | Node | Network | Secret | Config | Volume;
export type Kind = AnyObject['kind'];
export const KINDS: readonly Kind[] = ['Service', 'Task', 'Node', 'Network', 'Secret', 'Config', 'Volume'];
