// The Logs call across nodes: the tasks' lines from every node they ran on (this manager's own node
// from its files, others through their agents' sessions), the backlog merged by time, then with
// follow new lines as they come. A node that cannot answer, or stops answering, becomes a notice
// line saying whose lines are missing, and the rest goes on: the call never waits on a dead node
// for longer than NODE_ANSWER_MS. With follow, the leader asks such a node again until it is back
// (its agent reconnects after a failover) from the last line delivered of each of its tasks; a
// manager that does not hold the nodes' sessions ends the call UNAVAILABLE instead, so the client
// resumes at a manager that does.
import * as grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';

import { LogResume } from '../../common/logs/log-resume.js';
import type { LogEntry, LogSource } from '../../common/logs/log-source.js';
import type { Task } from '../../common/resources/types.js';
import type { LogLine } from '../../proto/gen/tessera/api/v1/LogLine.js';
import type { NodeLogQuery, NodeLogs } from '../dispatcher/node-logs.js';
import { NodeUnavailableError } from '../dispatcher/node-requests.js';
import { ApiError, invalidArgument } from './errors.js';
import { isNameTooLong, quoteName } from '../../common/resources/limits.js';

/** How long a node may take to send the lines it already has. */
export const NODE_ANSWER_MS = 15_000;
/** The backlog is sorted in memory: past this many lines the oldest are left out, and a notice says so. */
export const MAX_BACKLOG = 100_000;
/** With follow: how often a node without a session is asked again. */
export const NODE_RETRY_MS = 1000;

export interface LogsDeps {
  /** This manager's own node's logs, and its name (absent: every node's logs are read here, as in tests of the API alone). */
  local: LogSource;
  selfNode?: string;
  /** Other nodes' logs through their sessions (the leader's dispatcher holds them). */
  nodeLogs?: NodeLogs;
  /**
   * Whether the nodes' sessions come to this manager (it leads, or there is no Raft); absent: true.
   * Only then is waiting for a node's session worth it: elsewhere it would never come.
   */
  holdsNodeSessions?: () => boolean;
}

export interface LogsQuery {
  follow: boolean;
  tail: number;
  sinceMs: number;
  untilMs: number;
  /** Per task: only lines whose sequence is above this (a stream resumed on this manager). */
  afterSequence?: ReadonlyMap<string, number>;
  /** With follow: write a caught_up message once the lines already written are out. */
  reportCaughtUp?: boolean;
}

type Fetch = (query: NodeLogQuery, onEntries: (entries: LogEntry[]) => void, onCaughtUp: () => void, signal: AbortSignal) => Promise<void>;

function fetcherFor(deps: LogsDeps, node: string): Fetch {
  if (deps.selfNode === undefined || node === deps.selfNode)
    return (query, onEntries, onCaughtUp, signal) => deps.local.stream(query.taskNames, { ...query, signal }, onEntries, onCaughtUp);
  const nodeLogs = deps.nodeLogs;
  if (nodeLogs === undefined) return () => Promise.reject(new NodeUnavailableError(node, 'this manager cannot ask other nodes for logs'));
  return (query, onEntries, onCaughtUp, signal) => nodeLogs.request(node, query, onEntries, onCaughtUp, signal);
}

/** More tasks than this in one resumed request is not a service of ours. */
const MAX_RESUMED_TASKS = 10_000;

/** A request's per-task resume positions, checked; throws INVALID_ARGUMENT naming what is wrong. Pure. */
export function resumedLogPositions(afterSequence: Record<string, number>): Map<string, number> {
  const entries = Object.entries(afterSequence);
  if (entries.length > MAX_RESUMED_TASKS) throw invalidArgument(`logs: ${entries.length} resumed tasks; at most ${MAX_RESUMED_TASKS}`);
  for (const [task, sequence] of entries) {
    if (task === '' || isNameTooLong(task)) throw invalidArgument('logs: a resumed task name is empty or longer than 253 bytes');
    if (!Number.isSafeInteger(sequence) || sequence < 0) throw invalidArgument(`logs: resumed task ${quoteName(task)}: the sequence is not a whole number`);
  }
  return new Map(entries);
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
  const line = (e: LogEntry): LogLine => ({
    task: e.task,
    line: e.text,
    timeMs: e.timeMs,
    stream: e.stream,
    node: nodeOf.get(e.task) ?? '',
    sequence: e.sequence,
  });
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
  // A node's failure that ends the whole call (this manager no longer leads); it stops the other nodes.
  let failure: ApiError | undefined;
  const stop = new AbortController();
  signal.addEventListener('abort', () => stop.abort());
  for (const [node, nodeTasks] of byNode) {
    const abort = new AbortController();
    stop.signal.addEventListener('abort', () => abort.abort());
    let caughtUp!: () => void;
    const hasAnswered = new Promise<void>((resolve) => (caughtUp = resolve));
    const timer = setTimeout(() => {
      notice(`node ${node} did not send its lines within ${NODE_ANSWER_MS / 1000} s; its tasks' lines are missing`);
      abort.abort();
      caughtUp();
    }, NODE_ANSWER_MS);
    const nodeQuery: NodeLogQuery = { taskNames: nodeTasks.map((t) => t.metadata.name), ...query };
    const answer = () => {
      clearTimeout(timer);
      caughtUp();
    };
    const done = followNode(deps, node, nodeQuery, take, answer, abort.signal, notice)
      .catch((err: unknown) => {
        if (err instanceof ApiError) {
          failure ??= err;
          stop.abort();
          return;
        }
        notice(`${err instanceof NodeUnavailableError ? err.message : `node ${node}: ${(err as Error).message}`}; its tasks' lines are missing`);
      })
      .finally(answer);
    answered.push(hasAnswered);
    finished.push(done);
  }
  await Promise.all(answered);
  if (dropped > 0) notice(`${dropped} older lines are not shown; ask with --tail or --since`);
  for (const entry of mergeByTime(backlog.splice(0))) write(line(entry));
  live = true;
  if (query.follow && query.reportCaughtUp === true && failure === undefined) write({ caughtUp: true });
  await Promise.all(finished);
  if (failure !== undefined) throw failure;
}

/**
 * One node's lines. With follow, a node that is down or has no session with this manager (its agent
 * reconnects after a failover) is asked again every NODE_RETRY_MS, from the last line delivered of
 * each task, until the signal aborts; `answered` is called once its backlog is out or it first
 * failed, so the other nodes' lines do not wait for it.
 */
async function followNode(
  deps: LogsDeps,
  node: string,
  query: NodeLogQuery,
  take: (entries: LogEntry[]) => void,
  answered: () => void,
  signal: AbortSignal,
  notice: (text: string) => void,
): Promise<void> {
  const fetch = fetcherFor(deps, node);
  const resume = new LogResume(query.tail, query.afterSequence);
  let outage = false;
  // A function, not the property: the fetch awaited in between may abort it (which narrowing cannot see).
  const aborted = () => signal.aborted;
  // A request sent with an aborted signal would never be cancelled: the loop stops first.
  while (!aborted()) {
    try {
      await fetch(
        { ...query, ...resume.next() },
        (entries) => take(entries.filter((e) => resume.deliver(e.task, e.sequence))),
        () => {
          resume.markCaughtUp();
          outage = false;
          answered();
        },
        signal,
      );
      return;
    } catch (err) {
      if (!query.follow || aborted() || !(err instanceof NodeUnavailableError)) throw err;
      if (deps.holdsNodeSessions?.() === false)
        throw new ApiError(grpc.status.UNAVAILABLE, `logs: ${err.message}, and this manager no longer leads; ask another manager`);
      if (!outage) notice(`${err.message}; its tasks' lines follow when it is back`);
      outage = true;
      answered();
      // Rejects only with AbortError: the call ended, which the loop sees next time round.
      await sleep(NODE_RETRY_MS, undefined, { signal }).catch(() => {});
    }
  }
}
