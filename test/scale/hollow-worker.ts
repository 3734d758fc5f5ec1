// The task side of a hollow node (kubemark's "hollow kubelet"): it is handed the node's complete
// assignment set by the real AgentSession, exactly as agent/worker/worker.ts is, and follows the
// same rule (launch what is assigned and wanted running, stop what is wanted shut down or is no
// longer assigned), reporting the states a real TaskRunner reports: accepted, preparing, starting,
// running, then shutdown or failed.
//
// Only the container is simulated, and on purpose: the real Worker's TaskRunner mounts an overlay
// rootfs, writes a bundle and spawns a shim per task, which with hundreds of nodes in one process
// would measure this machine's disk and process table, not the orchestrator. A simulated container
// is a timer: it "starts" after a configurable latency (with jitter) and fails to start at a
// configurable rate; once running it runs until it is stopped.
import type { Task, TaskState, TaskStatus } from '../../common/resources/types.js';
import { isTerminal } from '../../common/resources/types.js';

export interface SimulatedContainers {
  /** Mean time from `starting` to `running`, in ms. */
  startLatencyMs: number;
  /** Each start takes startLatencyMs × (1 ± jitter); 0..1. */
  jitter: number;
  /** Fraction of starts that fail (reported `failed`, as a container whose start failed). */
  failureRate: number;
  random: () => number;
}

/** What a hollow node saw, on the machine's clock (ms since the epoch, fractional), so that several processes' views line up. */
export type HollowEventKind = 'assigned' | 'run' | 'end' | 'failed';
export interface HollowEvent {
  at: number;
  kind: HollowEventKind;
  task: string;
  /** stack/service.slot: what may never run twice at once. */
  slot: string;
  node: string;
}

export type Reporter = (task: Task, status: Partial<TaskStatus> & { state: TaskState }) => Promise<void>;

interface HollowContainer {
  task: Task;
  timer: NodeJS.Timeout | undefined;
  running: boolean;
  stopped: boolean;
}

/** The wall clock with sub-millisecond precision. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export function slotOf(task: Task): string {
  return `${task.spec.serviceStack || '_'}/${task.spec.serviceName}.${task.spec.slot}`;
}

export class HollowWorker {
  private readonly containers = new Map<string, HollowContainer>();
  /** Tasks this node has run and ended: never launched again (the real worker's runner is gone, and the task is terminal by then). */
  private readonly ended = new Set<string>();

  constructor(
    private readonly node: string,
    private readonly report: Reporter,
    private readonly sim: SimulatedContainers,
    private readonly onEvent: (event: HollowEvent) => void,
    private readonly log: (message: string) => void,
  ) {}

  /** Tasks whose simulated container runs now. */
  runningCount(): number {
    let n = 0;
    for (const c of this.containers.values()) if (c.running) n++;
    return n;
  }

  reconcile(assigned: Task[]): void {
    const names = new Set<string>();
    for (const task of assigned) {
      const name = task.metadata.name;
      names.add(name);
      const container = this.containers.get(name);
      if (container) {
        container.task = task;
        if (task.desiredState === 'shutdown') this.stop(container);
        continue;
      }
      if (this.ended.has(name)) continue;
      if (task.desiredState === 'running' && (task.status.state === 'assigned' || task.status.state === 'new' || task.status.state === 'pending')) {
        this.launch(task);
      } else if (!isTerminal(task.status.state) && task.desiredState === 'running') {
        // The store says it started here but nothing here knows it. A hollow node never restarts,
        // so this is a defect worth seeing, not a case to handle.
        this.log(`hollow ${this.node}: task ${name} is ${task.status.state} in the store but unknown here`);
      }
    }
    for (const [name, container] of this.containers) if (!names.has(name)) this.stop(container);
  }

  /** Stops every container (the fleet is shutting down), reporting nothing. */
  stopAll(): void {
    for (const c of this.containers.values()) if (c.timer) clearTimeout(c.timer);
    this.containers.clear();
  }

  private send(task: Task, status: Partial<TaskStatus> & { state: TaskState }): void {
    this.report(task, status).catch((err: Error) => this.log(`hollow ${this.node}: reporting ${task.metadata.name}: ${err.message}`));
  }

  private emit(kind: HollowEventKind, task: Task): void {
    this.onEvent({ at: wallClockMs(), kind, task: task.metadata.name, slot: slotOf(task), node: this.node });
  }

  private launch(task: Task): void {
    const container: HollowContainer = { task, timer: undefined, running: false, stopped: false };
    this.containers.set(task.metadata.name, container);
    this.emit('assigned', task);
    this.send(task, { state: 'accepted', message: 'accepted by node' });
    this.send(task, { state: 'preparing', message: `pulling image ${task.spec.spec.image} (simulated)` });
    this.send(task, { state: 'starting', message: 'starting container (simulated)', containerId: task.metadata.name });
    const { startLatencyMs, jitter, random } = this.sim;
    const delay = Math.max(0, startLatencyMs * (1 + jitter * (2 * random() - 1)));
    container.timer = setTimeout(() => this.started(container), delay);
  }

  private started(container: HollowContainer): void {
    container.timer = undefined;
    const { task } = container;
    if (container.stopped) return;
    if (this.sim.random() < this.sim.failureRate) {
      this.finish(container);
      this.emit('failed', task);
      this.send(task, { state: 'failed', message: 'simulated start failure', error: 'simulated start failure' });
      return;
    }
    container.running = true;
    this.emit('run', task);
    this.send(task, { state: 'running', message: 'started (simulated)', containerId: task.metadata.name, pid: 1 });
  }

  private stop(container: HollowContainer): void {
    if (container.stopped) return;
    container.stopped = true;
    if (container.timer) clearTimeout(container.timer);
    const wasRunning = container.running;
    this.finish(container);
    if (wasRunning) this.emit('end', container.task);
    this.send(
      container.task,
      wasRunning ? { state: 'shutdown', message: 'stopped', exitCode: 0 } : { state: 'shutdown', message: 'shut down before it started' },
    );
  }

  private finish(container: HollowContainer): void {
    container.running = false;
    this.containers.delete(container.task.metadata.name);
    this.ended.add(container.task.metadata.name);
  }
}
