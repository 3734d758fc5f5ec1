// The Logs call across nodes: the tasks' lines from every node they ran on (this manager's own node
// from its files, others through their agents' sessions), the backlog merged by time, then with
// follow new lines as they come. A node that cannot answer, or stops answering, becomes a notice
// line saying whose lines are missing, and the rest goes on: the call never waits on a dead node
// for longer than NODE_ANSWER_MS.
import type { LogEntry, LogSource } from '../../common/logs/log-source.js';
import type { Task } from '../../common/resources/types.js';
import type { LogLine } from '../../proto/gen/tessera/api/v1/LogLine.js';
import type { NodeLogQuery, NodeLogs } from '../dispatcher/node-logs.js';
import { NodeUnavailableError } from '../dispatcher/node-requests.js';

/** How long a node may take to send the lines it already has. */
export const NODE_ANSWER_MS = 15_000;
/** The backlog is sorted in memory: past this many lines the oldest are left out, and a notice says so. */
export const MAX_BACKLOG = 100_000;

export interface LogsDeps {
  /** This manager's own node's logs, and its name (absent: every node's logs are read here, as in tests of the API alone). */
  local: LogSource;
  selfNode?: string;
  /** Other nodes' logs through their sessions (the leader's dispatcher holds them). */
  nodeLogs?: NodeLogs;
}

export interface LogsQuery {
  follow: boolean;
  tail: number;
  sinceMs: number;
  untilMs: number;
}

type Fetch = (query: NodeLogQuery, onEntries: (entries: LogEntry[]) => void, onCaughtUp: () => void, signal: AbortSignal) => Promise<void>;

function fetcherFor(deps: LogsDeps, node: string): Fetch {
  if (deps.selfNode === undefined || node === deps.selfNode)
    return (query, onEntries, onCaughtUp, signal) => deps.local.stream(query.taskNames, { ...query, signal }, onEntries, onCaughtUp);
  const nodeLogs = deps.nodeLogs;
  if (nodeLogs === undefined) return () => Promise.reject(new NodeUnavailableError(node, 'this manager cannot ask other nodes for logs'));
  return (query, onEntries, onCaughtUp, signal) => nodeLogs.request(node, query, onEntries, onCaughtUp, signal);
}

/** Backlog entries in time order; entries without a time keep their place after the timed ones before them. Pure. */
export function mergeByTime(entries: LogEntry[]): LogEntry[] {
  let last = 0;
  const keyed = entries.map((entry, i) => {
    if (entry.timeMs > 0) last = entry.timeMs;
    return { entry, key: entry.timeMs > 0 ? entry.timeMs : last, i };
  });
  keyed.sort((a, b) => a.key - b.key || a.i - b.i);
  return keyed.map((k) => k.entry);
}

/** Writes the logs of `tasks`; resolves when done (without follow) or when the signal aborts. */
export async function streamLogs(deps: LogsDeps, tasks: Task[], query: LogsQuery, write: (line: LogLine) => void, signal: AbortSignal): Promise<void> {
  const byNode = new Map<string, Task[]>();
  for (const task of tasks) if (task.nodeName) byNode.set(task.nodeName, [...(byNode.get(task.nodeName) ?? []), task]);
  const nodeOf = new Map(tasks.map((t) => [t.metadata.name, t.nodeName ?? '']));
  const line = (e: LogEntry): LogLine => ({ task: e.task, line: e.text, timeMs: e.timeMs, stream: e.stream, node: nodeOf.get(e.task) ?? '' });
  const notice = (text: string) => write({ notice: text });

  let live = false;
  const backlog: LogEntry[] = [];
  let dropped = 0;
  const take = (entries: LogEntry[]) => {
    if (live) {
      for (const entry of mergeByTime(entries)) write(line(entry));
      return;
    }
    backlog.push(...entries);
    if (backlog.length > MAX_BACKLOG) dropped += backlog.splice(0, backlog.length - MAX_BACKLOG).length;
  };
  const answered: Array<Promise<void>> = [];
  const finished: Array<Promise<void>> = [];
  for (const [node, nodeTasks] of byNode) {
    const abort = new AbortController();
    signal.addEventListener('abort', () => abort.abort());
    let caughtUp!: () => void;
    const hasAnswered = new Promise<void>((resolve) => (caughtUp = resolve));
    const timer = setTimeout(() => {
      notice(`node ${node} did not send its lines within ${NODE_ANSWER_MS / 1000} s; its tasks' lines are missing`);
      abort.abort();
      caughtUp();
    }, NODE_ANSWER_MS);
    const nodeQuery: NodeLogQuery = { taskNames: nodeTasks.map((t) => t.metadata.name), ...query };
    const done = fetcherFor(deps, node)(nodeQuery, take, caughtUp, abort.signal)
      .catch((err: unknown) =>
        notice(`${err instanceof NodeUnavailableError ? err.message : `node ${node}: ${(err as Error).message}`}; its tasks' lines are missing`),
      )
      .finally(() => {
        clearTimeout(timer);
        caughtUp();
      });
    answered.push(hasAnswered);
    finished.push(done);
  }
  await Promise.all(answered);
  if (dropped > 0) notice(`${dropped} older lines are not shown; ask with --tail or --since`);
  for (const entry of mergeByTime(backlog.splice(0))) write(line(entry));
  live = true;
  await Promise.all(finished);
}
