// tsctl: the Tessera command-line client.
import { Command, InvalidArgumentError } from 'commander';

import type { AnyObject, Node, Service, Task } from '../common/resources/types.js';
import { formatObjects, type OutputFormat } from './output/format.js';
import { describeService } from './output/describe.js';
import { describeTask } from './output/describe-task.js';
import { clientRunner } from './with-client.js';
import { listAll } from './list-all.js';
import { clusterDown, registerClusterUp, startClusterUp } from './cluster.js';
import { resolveServiceName } from './resolve.js';
import { registerImageCommands } from './commands/image.js';
import { registerNodeCommands } from './commands/node.js';
import { registerClusterMembersCommands } from './commands/cluster-members.js';
import { registerClusterIdentityCommands } from './commands/cluster-identity.js';
import { registerStackCommands } from './commands/stack.js';
import { registerRolloutCommands } from './commands/rollout.js';
import { registerEventsCommand } from './commands/events.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerTopCommand } from './commands/top.js';
import { registerApplyCommands } from './commands/apply.js';
import { registerClusterUpdateCommand } from './commands/cluster-update.js';
import { registerClusterAutolockCommands } from './commands/cluster-autolock.js';
import { registerExecCommand } from './commands/exec.js';
import { registerBuildCommand } from './commands/build.js';
import { buildImage } from './build/run-build.js';
import { isWatchable, printChanges, revisionNow } from './commands/get-watch.js';
import { registerClusterNodeCommands } from './commands/cluster-node.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

const program = new Command('tsctl')
  .description('Tessera cluster client')
  .option(
    '--server <address>',
    "API address: unix:/path (a manager's root socket) or host:port (mutual TLS with the context's certificate); default: $TESSERA_SERVER, the context ($TESSERA_CONTEXT or ~/.tessera/context.json), else unix:/var/lib/tessera/tsd.sock",
  );

const withClient = clientRunner(program);

function outputFormat(value: string): OutputFormat {
  if (value === 'table' || value === 'json' || value === 'yaml') return value;
  throw new InvalidArgumentError(`expected table, json or yaml, got "${value}"`);
}

// --- cluster ------------------------------------------------------------------------------------

const cluster = program.command('cluster').description('manage the cluster: local clusters, join tokens, users, settings, the audit log and the CA');
registerClusterUp(cluster, (plan) => startClusterUp(plan, out));
cluster
  .command('down')
  .description('stop the local cluster and remove every container, mount, link, cgroup and rule it made')
  .action(async () => clusterDown(out));

// --- objects ------------------------------------------------------------------------------------

registerApplyCommands(program);

program
  .command('get')
  .description('list services, tasks or nodes')
  .argument('<kind>', 'services, tasks or nodes')
  .argument('[name]', 'only this service (for services and tasks)')
  .option('-o, --output <format>', 'table, json or yaml', outputFormat, 'table' as OutputFormat)
  .option('--stack <stack>', 'only this stack')
  .option('-w, --watch', 'after the table, print each change as it happens (services, tasks, nodes) until interrupted')
  .action(async (kindArg: string, name: string | undefined, options: { output: OutputFormat; stack?: string; watch?: boolean }) => {
    const kind = (
      {
        service: 'Service',
        services: 'Service',
        svc: 'Service',
        task: 'Task',
        tasks: 'Task',
        node: 'Node',
        nodes: 'Node',
        secret: 'Secret',
        secrets: 'Secret',
        config: 'Config',
        configs: 'Config',
        volume: 'Volume',
        volumes: 'Volume',
      } as const
    )[kindArg];
    if (!kind) throw new Error(`unknown kind "${kindArg}": expected services, tasks, nodes, secrets, configs or volumes`);
    if (options.watch && !isWatchable(kind)) throw new Error(`get -w follows services, tasks and nodes, not ${kindArg}`);
    await withClient(async (client) => {
      // Read before the table's lists, so that the watch misses nothing after them.
      const since = options.watch && isWatchable(kind) ? await revisionNow(client, kind) : 0;
      const services = await listAll<Service>(client, 'Service');
      const tasks = kind === 'Node' ? [] : await listAll<Task>(client, 'Task');
      let objects: AnyObject[];
      if (kind === 'Service') objects = services;
      else if (kind === 'Task') objects = tasks;
      else if (kind === 'Secret' || kind === 'Config' || kind === 'Volume') objects = await listAll(client, kind);
      else objects = await listAll<Node>(client, 'Node');
      if (options.stack !== undefined) objects = objects.filter((o) => (o.metadata.stack ?? '') === options.stack);
      if (name !== undefined && (kind === 'Secret' || kind === 'Config' || kind === 'Volume')) {
        objects = objects.filter((o) => o.metadata.name === name);
      } else if (name !== undefined) {
        const service = resolveServiceName(services, name, options.stack);
        objects = objects.filter((o) =>
          o.kind === 'Task' ? o.spec.serviceName === service.metadata.name && o.spec.serviceStack === (service.metadata.stack ?? '') : o === service,
        );
      }
      out(formatObjects(objects, options.output, kind, { tasks, now: new Date() }));
      if (options.watch && isWatchable(kind))
        await printChanges(
          client,
          kind,
          since,
          { ...(name !== undefined ? { name } : {}), ...(options.stack !== undefined ? { stack: options.stack } : {}) },
          out,
        );
    });
  });

const describe = program.command('describe').description('show one object in detail');
describe
  .command('service')
  .argument('<name>', 'service name, STACK/NAME or STACK_NAME')
  .option('--stack <stack>', "the service's stack")
  .action(async (name: string, options: { stack?: string }) => {
    await withClient(async (client) => {
      const service = resolveServiceName(await listAll<Service>(client, 'Service'), name, options.stack);
      const tasks = (await listAll<Task>(client, 'Task')).filter(
        (t) => t.spec.serviceName === service.metadata.name && t.spec.serviceStack === (service.metadata.stack ?? ''),
      );
      out(describeService(service, tasks, { now: new Date() }));
    });
  });

describe
  .command('task')
  .argument('<name>', 'task name (see tsctl get tasks)')
  .action(async (name: string) => {
    await withClient(async (client) => {
      const task = (await listAll<Task>(client, 'Task')).find((t) => t.metadata.name === name);
      if (!task) throw new Error(`task "${name}" not found`);
      out(describeTask(task, new Date()));
    });
  });

program
  .command('scale')
  .description('set the number of replicas of services')
  .argument('<service=replicas...>', 'e.g. web=5')
  .option('--stack <stack>', "the services' stack")
  .action(async (pairs: string[], options: { stack?: string }) => {
    await withClient(async (client) => {
      const services = await listAll<Service>(client, 'Service');
      const requests = pairs.map((pair) => {
        const match = /^(.+)=(\d+)$/.exec(pair);
        if (!match) throw new Error(`"${pair}": expected SERVICE=REPLICAS, e.g. web=3`);
        return { service: resolveServiceName(services, match[1]!, options.stack), replicas: Number(match[2]) };
      });
      for (const { service, replicas } of requests) {
        await client.scale({
          ref: { kind: 'Service', stack: service.metadata.stack ?? '', name: service.metadata.name },
          replicas,
        });
        out(`service/${service.metadata.stack ? `${service.metadata.stack}/` : ''}${service.metadata.name} scaled to ${replicas}`);
      }
    });
  });

// --- images -------------------------------------------------------------------------------------

registerImageCommands(program, withClient);
registerNodeCommands(program, cluster, withClient);
registerClusterMembersCommands(program, cluster);
registerClusterIdentityCommands(cluster, withClient);
registerClusterUpdateCommand(cluster, withClient);
registerClusterAutolockCommands(cluster);
// Compose build: jobs go through the same BuildImage call as `tsctl build`.
registerStackCommands(program, { connectBuilder: (client) => (request, contextDir, onProgress) => buildImage(client, request, contextDir, onProgress) });
registerRolloutCommands(program, withClient);
registerEventsCommand(program, withClient);
registerLogsCommand(program, withClient);
registerTopCommand(program, withClient);
registerExecCommand(program, withClient);
registerBuildCommand(program, withClient);
registerClusterNodeCommands(cluster, out);

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`error: ${err.message}\n`);
  process.exit(1);
});
