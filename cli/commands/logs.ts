// `tsctl logs SERVICE|TASK`: the lines of a service's tasks (or one task) from every node they ran
// on, merged by time, each with its task's name unless --no-prefix; --since/--until bound them in
// time, --tail takes the last lines of each task, -f follows, --timestamps shows when each was
// written. A node that cannot be asked is said on stderr, and the rest is printed.
import type { Command } from 'commander';

import type { Service, Task } from '../../common/resources/types.js';
import { listAll } from '../list-all.js';
import type { LogLine__Output } from '../../proto/gen/tessera/api/v1/LogLine.js';
import type { ApiClient } from '../client.js';
import { resolveServiceName } from '../resolve.js';
import type { WithClient } from '../with-client.js';
import { parseEventTime } from './events.js';

interface LogsOptions {
  follow?: boolean;
  tail: number;
  stack?: string;
  prefix: boolean;
  since?: string;
  until?: string;
  timestamps?: boolean;
}

/** One line as printed. Pure. */
export function logLineText(line: LogLine__Output, options: { prefix: boolean; timestamps: boolean }): string {
  const time = options.timestamps ? `${line.timeMs > 0 ? new Date(line.timeMs).toISOString() : '-'} ` : '';
  return `${time}${options.prefix ? `${line.task} | ` : ''}${line.line}`;
}

/** The service a name means, and the task when it names one (a task's name, e.g. shop_web.1.ab12cd34). */
async function resolveTarget(client: ApiClient, name: string, stack: string | undefined): Promise<{ service: Service; task: string }> {
  const services = await listAll<Service>(client, 'Service');
  try {
    return { service: resolveServiceName(services, name, stack), task: '' };
  } catch (notAService) {
    const task = (await listAll<Task>(client, 'Task')).find((t) => t.metadata.name === name && (stack === undefined || (t.metadata.stack ?? '') === stack));
    if (task === undefined) throw notAService;
    const service = services.find((s) => s.metadata.name === task.spec.serviceName && (s.metadata.stack ?? '') === task.spec.serviceStack);
    if (service === undefined) throw new Error(`task "${name}" belongs to service "${task.spec.serviceName}", which no longer exists`);
    return { service, task: task.metadata.name };
  }
}

export function registerLogsCommand(program: Command, withClient: WithClient): void {
  program
    .command('logs')
    .description("print the logs of a service's tasks (or one task), from every node, merged by time")
    .argument('<service|task>', 'service name, STACK/NAME or STACK_NAME, or a task name')
    .option('-f, --follow', 'keep printing new lines')
    .option('--tail <n>', "lines from the end of each task's log", (v: string) => Number(v), 0)
    .option('--since <time>', 'lines from this time: a duration back (10m, 2h), an RFC 3339 time, or epoch seconds')
    .option('--until <time>', 'lines up to this time (with -f, stop then)')
    .option('-t, --timestamps', 'show when each line was written')
    .option('--stack <stack>', "the service's stack")
    .option('--no-prefix', 'print lines without the task name')
    .action(async (name: string, options: LogsOptions) => {
      if (!Number.isInteger(options.tail) || options.tail < 0) throw new Error(`--tail must be a whole number, got ${options.tail}`);
      const now = Date.now();
      const sinceMs = options.since === undefined ? 0 : parseEventTime(options.since, now);
      const untilMs = options.until === undefined ? 0 : parseEventTime(options.until, now);
      await withClient(async (client) => {
        const { service, task } = await resolveTarget(client, name, options.stack);
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        const format = { prefix: options.prefix, timestamps: options.timestamps === true };
        await client.logs(
          { stack: service.metadata.stack ?? '', service: service.metadata.name, task, follow: options.follow === true, tail: options.tail, sinceMs, untilMs },
          (line) => {
            if (line.notice) process.stderr.write(`tsctl logs: ${line.notice}\n`);
            else process.stdout.write(`${logLineText(line, format)}\n`);
          },
          abort.signal,
        );
      });
    });
}
