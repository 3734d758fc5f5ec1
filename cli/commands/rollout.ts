// `tsctl rollout status|history|undo SERVICE`: follow a rolling update, list the generations a
// service went through, and go back to the previous spec (as a rollback, by rollbackConfig).
import type { Command } from 'commander';

import type { Service, Task } from '../../common/resources/types.js';
import { formatRolloutHistory, rolloutProgress, undoManifest } from '../../control-plane/controllers/rollout-progress.js';
import type { ApiClient } from '../client.js';
import { resolveServiceName } from '../resolve.js';

type WithClient = <T>(fn: (client: ApiClient) => Promise<T>) => Promise<T>;

const out = (line: string) => process.stdout.write(`${line}\n`);

const POLL_MS = 500;

async function findService(client: ApiClient, name: string, stack: string | undefined): Promise<Service> {
  const res = await client.list({ kind: 'Service', allStacks: true });
  return resolveServiceName(
    res.objectsJson.map((j) => JSON.parse(j) as Service),
    name,
    stack,
  );
}

async function tasksOf(client: ApiClient, service: Service): Promise<Task[]> {
  const res = await client.list({ kind: 'Task', stack: service.metadata.stack ?? '', service: service.metadata.name });
  return res.objectsJson.map((j) => JSON.parse(j) as Task);
}

function parseTimeout(value: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(value);
  if (!match) throw new Error(`--timeout: expected a duration like 90s or 5m, got "${value}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

export function registerRolloutCommands(program: Command, withClient: WithClient): void {
  const rollout = program.command('rollout').description('follow, list and undo rolling updates of a service');

  rollout
    .command('status')
    .description('wait for the rollout of a service to end, printing its progress; exits non-zero when it pauses or rolls back')
    .argument('<service>', 'service name, STACK/NAME or STACK_NAME')
    .option('--stack <stack>', "the service's stack")
    .option('--timeout <duration>', 'give up after this long (e.g. 90s, 5m)', '10m')
    .option('--no-watch', 'print the state once and exit')
    .action((name: string, options: { stack?: string; timeout: string; watch: boolean }) =>
      withClient(async (client) => {
        const deadline = Date.now() + parseTimeout(options.timeout);
        let last = '';
        for (;;) {
          const service = await findService(client, name, options.stack);
          const progress = rolloutProgress(service, await tasksOf(client, service));
          if (progress.line !== last) out(progress.line);
          last = progress.line;
          if (progress.done || !options.watch) {
            if (!progress.ok) process.exitCode = 1;
            return;
          }
          if (Date.now() >= deadline) throw new Error(`rollout of ${name} did not end within ${options.timeout}`);
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      }),
    );

  rollout
    .command('history')
    .description('list the generations of a service: when, update or rollback, and what changed')
    .argument('<service>', 'service name, STACK/NAME or STACK_NAME')
    .option('--stack <stack>', "the service's stack")
    .action((name: string, options: { stack?: string }) =>
      withClient(async (client) => {
        out(formatRolloutHistory(await findService(client, name, options.stack), new Date()));
      }),
    );

  rollout
    .command('undo')
    .description('go back to the previous spec of a service, rolled out as a rollback (rollbackConfig)')
    .argument('<service>', 'service name, STACK/NAME or STACK_NAME')
    .option('--stack <stack>', "the service's stack")
    .action((name: string, options: { stack?: string }) =>
      withClient(async (client) => {
        const service = await findService(client, name, options.stack);
        const manifest = undoManifest(service);
        await client.apply({ objectsJson: [JSON.stringify(manifest)], dryRun: false });
        const qualified = service.metadata.stack ? `${service.metadata.stack}/${service.metadata.name}` : service.metadata.name;
        out(`service/${qualified} rolling back to the previous spec (follow with: tsctl rollout status ${qualified})`);
      }),
    );
}
