// The agent's answers to a manager's TopRequests (tsctl top of this node's tasks), over the
// session: one TopAnswer per request, with the figures of the tasks asked for that run here. The
// readings come from the node's UsageSampler (agent/stats/), which takes two a second apart.
import type { TaskUsage as TaskUsageMessage } from '../../proto/gen/tessera/dispatcher/v1/TaskUsage.js';
import type { TopAnswer } from '../../proto/gen/tessera/dispatcher/v1/TopAnswer.js';
import type { TopRequest__Output } from '../../proto/gen/tessera/dispatcher/v1/TopRequest.js';
import { errorMessage } from '../fs-errors.js';
import type { UsageSample } from '../stats/usage-sampler.js';

/** A manager asks for tasks on this node: more than this is not a node of ours. */
export const MAX_TOP_TASKS = 1000;
const MAX_NAME_BYTES = 253;
/** A per-task error is cut here: the answer must stay small. */
const MAX_ERROR = 300;

export interface UsageSource {
  sample(): Promise<UsageSample>;
}

/** Why a request cannot be served, or undefined when it can. Pure. */
export function topRequestProblem(request: TopRequest__Output): string | undefined {
  if (request.taskNames.length > MAX_TOP_TASKS) return `${request.taskNames.length} tasks in one top request; at most ${MAX_TOP_TASKS}`;
  if (request.taskNames.some((name) => name === '' || Buffer.byteLength(name) > MAX_NAME_BYTES)) return 'a task name in the top request is empty or too long';
  return undefined;
}

/** The answer to `request` from one sample: only the tasks asked for; one asked for that does not run here says so. Pure. */
export function topAnswerFor(request: TopRequest__Output, sample: UsageSample): TopAnswer {
  const asked = new Set(request.taskNames);
  const tasks: TaskUsageMessage[] = sample.tasks.filter((t) => asked.has(t.task));
  for (const { task, error } of sample.failed) if (asked.has(task)) tasks.push({ task, error: error.slice(0, MAX_ERROR) });
  const answered = new Set(tasks.map((t) => t.task));
  for (const task of asked) if (!answered.has(task)) tasks.push({ task, error: 'no running container for this task on the node' });
  return { requestId: request.requestId, tasks, sampleMs: sample.sampleMs, cgroupVersion: sample.cgroupVersion };
}

export class TopRequestServer {
  constructor(
    private readonly source: UsageSource,
    private readonly log: (message: string) => void,
  ) {}

  /** Answers one request; `send` writes to the session the request came on. */
  start(request: TopRequest__Output, send: (answer: TopAnswer) => void): void {
    const problem = topRequestProblem(request);
    if (problem !== undefined) {
      send({ requestId: request.requestId, error: problem });
      return;
    }
    this.source.sample().then(
      (sample) => send(topAnswerFor(request, sample)),
      (err: unknown) => {
        this.log(`top for the manager: ${errorMessage(err)}`);
        send({ requestId: request.requestId, error: errorMessage(err).slice(0, MAX_ERROR) });
      },
    );
  }
}
