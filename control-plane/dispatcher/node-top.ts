// Task resource use of nodes (tsctl top), asked of their agents over their dispatcher sessions.
// Sessions and requests in flight are kept as for every request to a node (node-requests.ts). A
// node without a session, whose session ends meanwhile, or that does not answer within the time
// asked fails with NodeUnavailableError, which the API turns into a partial-result notice. What a
// node sends is checked before it is believed: only answers to its own requests, only for the tasks
// it was asked about (tasks the store assigns to it), each once, with sane figures.
import type { TopAnswer__Output } from '../../proto/gen/tessera/dispatcher/v1/TopAnswer.js';
import type { TaskUsage__Output } from '../../proto/gen/tessera/dispatcher/v1/TaskUsage.js';
import { NodeRequests, NodeUnavailableError } from './node-requests.js';

const MAX_NAME_BYTES = 253;
const MAX_ERROR = 300;

export interface NodeTaskUsage {
  task: string;
  cpuPercent: number;
  cpuUsageNanos: number;
  memoryUsageBytes: number;
  memoryLimitBytes: number;
  networkRxBytes: number;
  networkTxBytes: number;
  blockReadBytes: number;
  blockWriteBytes: number;
  pids: number;
}

export interface NodeUsage {
  node: string;
  tasks: NodeTaskUsage[];
  /** Tasks asked for without figures, and why (the node's words, cut short; or ours when it sent nonsense). */
  missing: Array<{ task: string; why: string }>;
  cgroupVersion: '' | 'v1' | 'v2';
}

const FIGURES = [
  'cpuPercent',
  'cpuUsageNanos',
  'memoryUsageBytes',
  'memoryLimitBytes',
  'networkRxBytes',
  'networkTxBytes',
  'blockReadBytes',
  'blockWriteBytes',
  'pids',
] as const satisfies ReadonlyArray<keyof NodeTaskUsage>;

/**
 * A node's answer as the manager believes it (pure). Entries for tasks it was not asked about
 * (not its own) are dropped; more entries than tasks asked refuses the whole answer; a task
 * answered twice keeps its first entry; figures that are not finite non-negative numbers make
 * the entry missing. A task asked for and not answered is missing.
 */
export function acceptTopAnswer(node: string, asked: ReadonlySet<string>, answer: TopAnswer__Output): NodeUsage {
  if (answer.error) throw new NodeUnavailableError(node, answer.error.slice(0, MAX_ERROR));
  if (answer.tasks.length > asked.size) throw new NodeUnavailableError(node, `sent ${answer.tasks.length} task entries for ${asked.size} tasks asked`);
  const usage: NodeUsage = {
    node,
    tasks: [],
    missing: [],
    cgroupVersion: answer.cgroupVersion === 'v1' || answer.cgroupVersion === 'v2' ? answer.cgroupVersion : '',
  };
  const seen = new Set<string>();
  for (const entry of answer.tasks) {
    if (Buffer.byteLength(entry.task) > MAX_NAME_BYTES || !asked.has(entry.task) || seen.has(entry.task)) continue;
    seen.add(entry.task);
    if (entry.error) {
      usage.missing.push({ task: entry.task, why: entry.error.slice(0, MAX_ERROR) });
      continue;
    }
    const figures = figuresOf(entry);
    if (figures === undefined) usage.missing.push({ task: entry.task, why: 'the node sent figures that are not numbers of the right range' });
    else usage.tasks.push(figures);
  }
  for (const task of asked) if (!seen.has(task)) usage.missing.push({ task, why: 'the node did not answer for it' });
  return usage;
}

function figuresOf(entry: TaskUsage__Output): NodeTaskUsage | undefined {
  const figures: NodeTaskUsage = {
    task: entry.task,
    cpuPercent: entry.cpuPercent,
    cpuUsageNanos: Number(entry.cpuUsageNanos),
    memoryUsageBytes: Number(entry.memoryUsageBytes),
    memoryLimitBytes: Number(entry.memoryLimitBytes),
    networkRxBytes: Number(entry.networkRxBytes),
    networkTxBytes: Number(entry.networkTxBytes),
    blockReadBytes: Number(entry.blockReadBytes),
    blockWriteBytes: Number(entry.blockWriteBytes),
    pids: Number(entry.pids),
  };
  return FIGURES.every((key) => Number.isFinite(figures[key]) && figures[key] >= 0) ? figures : undefined;
}

interface Pending {
  node: string;
  tasks: ReadonlySet<string>;
  resolve: (usage: NodeUsage) => void;
  reject: (err: Error) => void;
  /** Set once the request is tracked (the timeout names the request). */
  timer?: NodeJS.Timeout;
}

export class NodeTop extends NodeRequests<Pending> {
  /** Asks `node` for the use of `taskNames`; rejects with NodeUnavailableError when it cannot answer within `timeoutMs`. */
  request(node: string, taskNames: readonly string[], timeoutMs: number): Promise<NodeUsage> {
    // A throw in here (no session) rejects the promise.
    return new Promise<NodeUsage>((resolve, reject) => {
      const send = this.sessionOf(node);
      const request: Pending = { node, tasks: new Set(taskNames), resolve, reject };
      const requestId = this.track(request);
      request.timer = setTimeout(() => this.fail(requestId, `did not answer within ${timeoutMs / 1000} s`), timeoutMs);
      send({ topRequest: { requestId, taskNames: [...taskNames] } });
    });
  }

  /** An answer a node sent: only that node's own requests can be answered by it. */
  onAnswer(node: string, answer: TopAnswer__Output): void {
    const id = Number(answer.requestId);
    const request = this.answerable(id, node);
    if (request === undefined) return; // timed out meanwhile, or not this node's to answer
    this.settle(id);
    try {
      request.resolve(acceptTopAnswer(node, request.tasks, answer));
    } catch (err) {
      request.reject(err as Error);
    }
  }

  protected failed(request: Pending, error: NodeUnavailableError): void {
    request.reject(error);
  }

  /** Forgets a pending request and stops its timer; returns it when it was still pending. */
  protected override settle(id: number): Pending | undefined {
    const request = super.settle(id);
    clearTimeout(request?.timer);
    return request;
  }
}
