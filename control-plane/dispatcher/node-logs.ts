// Task logs of other nodes, asked of their agents over their dispatcher sessions (tsctl logs of a
// service whose tasks run anywhere). Sessions and requests in flight are kept as for every request
// to a node (node-requests.ts): a request to a node without a session, or whose session ends while
// the request runs, fails with NodeUnavailableError, which the API turns into a partial-result line.
import type { LogEntry } from '../../common/logs/log-source.js';
import type { LogChunk__Output } from '../../proto/gen/tessera/dispatcher/v1/LogChunk.js';
import { NodeRequests, type NodeUnavailableError } from './node-requests.js';

/** A chunk carries at most the agent's batch; more is not an agent of ours. */
const MAX_ENTRIES_PER_CHUNK = 1000;
const MAX_TEXT = 16 * 1024;

export interface NodeLogQuery {
  taskNames: string[];
  follow: boolean;
  tail: number;
  sinceMs: number;
  untilMs: number;
  /** Per task: only lines whose sequence is above this (a stream resumed). */
  afterSequence?: ReadonlyMap<string, number>;
}

interface Pending {
  node: string;
  tasks: ReadonlySet<string>;
  onEntries: (entries: LogEntry[]) => void;
  onCaughtUp: () => void;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class NodeLogs extends NodeRequests<Pending> {
  /**
   * Asks `node` for logs; entries go to onEntries as they come. Resolves when the node says it is
   * done (or the signal aborts the request), rejects with NodeUnavailableError when the node cannot answer.
   */
  request(node: string, query: NodeLogQuery, onEntries: (entries: LogEntry[]) => void, onCaughtUp: () => void, signal: AbortSignal): Promise<void> {
    // A throw in here (no session) rejects the promise.
    return new Promise<void>((resolve, reject) => {
      const send = this.sessionOf(node);
      const requestId = this.track({ node, tasks: new Set(query.taskNames), onEntries, onCaughtUp, resolve, reject });
      signal.addEventListener('abort', () => {
        if (this.settle(requestId) === undefined) return;
        send({ logCancel: { requestId } });
        resolve();
      });
      const { taskNames, follow, tail, sinceMs, untilMs, afterSequence } = query;
      send({ logRequest: { requestId, taskNames, follow, tail, sinceMs, untilMs, afterSequence: Object.fromEntries(afterSequence ?? []) } });
    });
  }

  protected failed(request: Pending, error: NodeUnavailableError): void {
    request.reject(error);
  }

  /** A chunk a node sent: only that node's own requests can be answered by it. */
  onChunk(node: string, chunk: LogChunk__Output): void {
    const requestId = Number(chunk.requestId);
    const request = this.answerable(requestId, node);
    if (request === undefined) return; // cancelled meanwhile, or not this node's to answer
    if (chunk.entries.length > MAX_ENTRIES_PER_CHUNK) {
      this.fail(requestId, `sent ${chunk.entries.length} log entries in one chunk; at most ${MAX_ENTRIES_PER_CHUNK}`);
      return;
    }
    // Entries of tasks that were not asked for are dropped: a node answers for what it was asked.
    const entries: LogEntry[] = chunk.entries
      .filter((e) => request.tasks.has(e.task))
      .map((e) => ({
        task: e.task,
        timeMs: Number(e.timeMs),
        stream: e.stream === 'stderr' ? 'stderr' : 'stdout',
        text: e.text.slice(0, MAX_TEXT),
        // A sequence that is not a whole number cannot be resumed from: 0, as for a line without one.
        sequence: Number.isSafeInteger(e.sequence) && e.sequence > 0 ? e.sequence : 0,
      }));
    if (entries.length > 0) request.onEntries(entries);
    if (chunk.caughtUp) request.onCaughtUp();
    if (!chunk.done) return;
    if (chunk.error) this.fail(requestId, chunk.error.slice(0, 500));
    else {
      this.settle(requestId);
      request.resolve();
    }
  }
}
