// A process started in one of this node's running task containers (tsctl exec): the task is
// found among the worker's runners by name, and only a container the worker runs now is entered.
import type { ContainerRuntime, ExecOptions, ExecProcess } from '../runtime/types.js';
import type { TaskRunner } from './task-runner.js';

/** The exec could not be served at all (no such task here, not running); not the command's failure. */
export class ExecUnservable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecUnservable';
  }
}

export function execInTask(runners: readonly TaskRunner[], runtime: ContainerRuntime, taskName: string, options: ExecOptions): Promise<ExecProcess> {
  const runner = runners.find((r) => r.current.metadata.name === taskName);
  if (runner === undefined) return Promise.reject(new ExecUnservable(`task ${taskName} has no container on this node`));
  if (!runner.running) return Promise.reject(new ExecUnservable(`task ${taskName} is not running (${runner.current.status.state})`));
  if (runtime.exec === undefined) return Promise.reject(new ExecUnservable("this node's runtime cannot exec"));
  return runtime.exec(runner.containerId, options);
}
