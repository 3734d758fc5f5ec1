// Task logs as the API serves them (`tsctl logs`): timed entries from the log files an agent's
// containers write. The agent of each node reads its own files (agent/worker/log-source.ts); a
// manager asks other nodes' agents over their sessions (control-plane/dispatcher/node-logs.ts).

export interface LogEntry {
  /** The task's name (metadata.name). */
  task: string;
  /** When the container wrote it, in ms since the epoch (0 when the line carries no time). */
  timeMs: number;
  stream: 'stdout' | 'stderr';
  text: string;
  /**
   * Its place in the task's log, from 1 (the shim numbers what it writes; a line it did not number
   * counts by its place in the file): the same whichever manager asks, so a stream can resume after it.
   */
  sequence: number;
}

export interface LogQuery {
  follow: boolean;
  /** Lines from the end of each task's log; 0: all. */
  tail: number;
  /** Only lines written at or after / up to these times (ms since the epoch); 0: no bound. */
  sinceMs: number;
  untilMs: number;
  /** Per task: only lines whose sequence is above this, whatever the tail (a stream resumed after them). */
  afterSequence?: ReadonlyMap<string, number>;
  signal: AbortSignal;
}

export interface LogSource {
  /**
   * Streams the log entries of the named tasks in batches: first every entry already written (the
   * backlog; `onCaughtUp` is called once it is all out), then, with follow, new ones until the
   * signal aborts.
   */
  stream(taskNames: string[], query: LogQuery, emit: (entries: LogEntry[]) => void, onCaughtUp?: () => void): Promise<void>;
}
