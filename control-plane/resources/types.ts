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
  placement?: { constraints?: string[] };
  restart?: {
    condition?: RestartCondition;
    /** Base back-off between restarts of one slot, in milliseconds; doubles per failure up to maxDelayMs. */
    delayMs?: number;
    maxDelayMs?: number;
    maxAttempts?: number;
  };
  stopGracePeriodMs?: number;
}

export interface ServiceStatus {
  observedGeneration?: number;
  runningTasks?: number;
  desiredTasks?: number;
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
  'new', 'pending', 'assigned', 'accepted', 'preparing', 'starting', 'running',
  'complete', 'shutdown', 'failed', 'rejected', 'orphaned',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  'complete', 'shutdown', 'failed', 'rejected', 'orphaned',
]);

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
}

export interface Node {
  apiVersion: typeof API_VERSION;
  kind: 'Node';
  metadata: ObjectMeta;
  spec: NodeSpec;
  status: NodeStatus;
}

export type AnyObject = Service | Task | Node;
export type Kind = AnyObject['kind'];
export const KINDS: readonly Kind[] = ['Service', 'Task', 'Node'];
