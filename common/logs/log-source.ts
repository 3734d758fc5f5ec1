// How the API server reads task logs: the manager's API serves `tsctl logs` from the log files the
// agent of its own node writes (agent/worker/log-source.ts implements this).
import type { Task } from '../resources/types.js';

export interface LogSource {
  /** Streams the log lines of the given tasks; with follow, keeps going until the signal aborts. */
  stream(tasks: Task[], options: { follow: boolean; tail: number; signal: AbortSignal }, emit: (task: string, line: string) => void): Promise<void>;
}
