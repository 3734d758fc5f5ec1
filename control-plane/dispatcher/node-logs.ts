// Task logs of other nodes, asked of their agents over their dispatcher sessions (tsctl logs of a
// service whose tasks run anywhere). The dispatcher attaches each registered session here and
// detaches it when it ends; a request to a node without a session, or whose session ends while the
// request runs, fails with NodeLogsUnavailable, which the API turns into a partial-result line.
import type { LogEntry } from '../../common/logs/log-source.js';
import type { LogChunk__Output } from '../../proto/gen/tessera/dispatcher/v1/LogChunk.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';

/** A chunk carries at most the agent's batch; more is not an agent of ours. */
const MAX_ENTRIES_PER_CHUNK = 1000;
const MAX_TEXT = 16 * 1024;

export class NodeLogsUnavailable extends Error {
  constructor(
    readonly node: string,
    why: string,
  ) {
    super(`node ${node}: ${why}`);
    this.name = 'NodeLogsUnavailable';
  }
}

export interface NodeLogQuery {
  taskNames: string[];
  follow: boolean;
  tail: number;
  sinceMs: number;
  untilMs: number;
}

interface Pending {
  node: string;
  tasks: ReadonlySet<string>;
  onEntries: (entries: LogEntry[]) => void;
  onCaughtUp: () => void;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class NodeLogs {
  private readonly sessions = new Map<string, (message: ManagerMessage) => void>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** A node's session registered: requests for it go there (a newer session replaces an older one). */
  attach(node: string, send: (message: ManagerMessage) => void): void {
    this.detach(node, 'its session was replaced');
    this.sessions.set(node, send);
  }

  /** A node's session ended (or is replaced): its running requests fail. */
  detach(node: string, why: string, send?: (message: ManagerMessage) => void): void {
    if (send !== undefined && this.sessions.get(node) !== send) return; // an older session, already replaced
    this.sessions.delete(node);
    for (const [id, request] of this.pending) {
      if (request.node !== node) continue;
      this.pending.delete(id);
      request.reject(new NodeLogsUnavailable(node, why));
    }
  }

  /**
   * Asks `node` for logs; entries go to onEntries as they come. Resolves when the node says it is
   * done (or the signal aborts the request), rejects with NodeLogsUnavailable when the node cannot answer.
   */
  request(node: string, query: NodeLogQuery, onEntries: (entries: LogEntry[]) => void, onCaughtUp: () => void, signal: AbortSignal): Promise<void> {
    const send = this.sessions.get(node);
    if (send === undefined)
      return Promise.reject(new NodeLogsUnavailable(node, 'no session with this manager (the node is down, or connected to another manager)'));
    const requestId = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const finish = () => {
        this.pending.delete(requestId);
        resolve();
      };
      this.pending.set(requestId, { node, tasks: new Set(query.taskNames), onEntries, onCaughtUp, resolve: finish, reject });
      signal.addEventListener('abort', () => {
        if (!this.pending.has(requestId)) return;
        send({ logCancel: { requestId } });
        finish();
      });
      send({ logRequest: { requestId, ...query } });
    });
  }

  /** A chunk a node sent: only that node's own requests can be answered by it. */
  onChunk(node: string, chunk: LogChunk__Output): void {
    const request = this.pending.get(Number(chunk.requestId));
    if (request === undefined || request.node !== node) return; // cancelled meanwhile, or not this node's to answer
    if (chunk.entries.length > MAX_ENTRIES_PER_CHUNK) {
      this.pending.delete(Number(chunk.requestId));
      request.reject(new NodeLogsUnavailable(node, `sent ${chunk.entries.length} log entries in one chunk; at most ${MAX_ENTRIES_PER_CHUNK}`));
      return;
    }
    // Entries of tasks that were not asked for are dropped: a node answers for what it was asked.
    const entries: LogEntry[] = chunk.entries
      .filter((e) => request.tasks.has(e.task))
      .map((e) => ({ task: e.task, timeMs: Number(e.timeMs), stream: e.stream === 'stderr' ? 'stderr' : 'stdout', text: e.text.slice(0, MAX_TEXT) }));
    if (entries.length > 0) request.onEntries(entries);
    if (chunk.caughtUp) request.onCaughtUp();
    if (!chunk.done) return;
    if (chunk.error) {
      this.pending.delete(Number(chunk.requestId));
      request.reject(new NodeLogsUnavailable(node, chunk.error.slice(0, 500)));
    } else request.resolve();
  }
}
