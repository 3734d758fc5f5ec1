// The agent's answers to a manager's LogRequests (tsctl logs of this node's tasks), over the
// session: entries in batches (a flush every 100 ms or 500 entries), caught_up once the backlog is
// out, done at the end. A request ends when the manager cancels it or the session goes; the log
// files are read by the node's LogSource (agent/worker/log-source.ts).
import type { LogEntry, LogSource } from '../../common/logs/log-source.js';
import type { LogChunk } from '../../proto/gen/tessera/dispatcher/v1/LogChunk.js';
import type { LogRequest__Output } from '../../proto/gen/tessera/dispatcher/v1/LogRequest.js';

/** A manager asks for a service's tasks on this node: more than this is not a service here. */
const MAX_TASKS = 1000;
const MAX_NAME_BYTES = 253;
const FLUSH_MS = 100;
const FLUSH_ENTRIES = 500;
/** One entry's text is cut here: a chunk must stay under the session's message size. */
const MAX_TEXT = 16 * 1024;

/** Why a request cannot be served, or undefined when it can. Pure. */
export function logRequestProblem(request: LogRequest__Output): string | undefined {
  if (request.taskNames.length > MAX_TASKS) return `${request.taskNames.length} tasks in one log request; at most ${MAX_TASKS}`;
  if (request.taskNames.some((name) => name === '' || Buffer.byteLength(name) > MAX_NAME_BYTES)) return 'a task name in the log request is empty or too long';
  if (request.sinceMs < 0 || request.untilMs < 0) return 'a log request time is negative';
  const resumed = Object.entries(request.afterSequence);
  if (resumed.length > MAX_TASKS) return `${resumed.length} resumed tasks in one log request; at most ${MAX_TASKS}`;
  if (resumed.some(([name, sequence]) => name === '' || Buffer.byteLength(name) > MAX_NAME_BYTES || !Number.isSafeInteger(sequence) || sequence < 0))
    return 'a resumed task of the log request has an empty or too long name, or a sequence that is not a whole number';
  return undefined;
}

export class LogRequestServer {
  private readonly running = new Map<number, AbortController>();

  constructor(
    private readonly source: LogSource,
    private readonly log: (message: string) => void,
  ) {}

  /** Starts answering one request; `send` writes to the session the request came on. */
  start(request: LogRequest__Output, send: (chunk: LogChunk) => void): void {
    const requestId = Number(request.requestId);
    const problem = logRequestProblem(request);
    if (problem !== undefined) {
      send({ requestId, done: true, error: problem });
      return;
    }
    const abort = new AbortController();
    this.running.get(requestId)?.abort();
    this.running.set(requestId, abort);
    let batch: LogEntry[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (batch.length === 0) return;
      send({ requestId, entries: batch.map((e) => ({ ...e, text: e.text.slice(0, MAX_TEXT) })) });
      batch = [];
    };
    const emit = (entries: LogEntry[]) => {
      for (const entry of entries) {
        batch.push(entry);
        if (batch.length >= FLUSH_ENTRIES) flush();
      }
      timer ??= setTimeout(flush, FLUSH_MS);
    };
    const query = {
      follow: request.follow,
      tail: request.tail,
      sinceMs: request.sinceMs,
      untilMs: request.untilMs,
      afterSequence: new Map(Object.entries(request.afterSequence)),
      signal: abort.signal,
    };
    this.source
      .stream(request.taskNames, query, emit, () => {
        flush();
        if (request.follow) send({ requestId, caughtUp: true });
      })
      .then(
        () => ({ error: '' }),
        (err: unknown) => {
          this.log(`logs for the manager: ${(err as Error).message}`);
          return { error: (err as Error).message };
        },
      )
      .then(({ error }) => {
        flush();
        if (this.running.get(requestId) === abort) this.running.delete(requestId);
        // A cancelled request needs no answer: the manager has stopped waiting for it.
        if (!abort.signal.aborted || error !== '') send({ requestId, done: true, error });
      })
      .catch((err: unknown) => this.log(`logs for the manager: the answer could not be sent: ${(err as Error).message}`));
  }

  cancel(requestId: number): void {
    this.running.get(requestId)?.abort();
    this.running.delete(requestId);
  }

  /** The session went: nobody is waiting for any answer. */
  cancelAll(): void {
    for (const abort of this.running.values()) abort.abort();
    this.running.clear();
  }
}
