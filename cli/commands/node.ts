// `tsctl node ls|update|label|rm` and `tsctl cluster join-token`.
import { type Command, Option } from 'commander';

import type { Node } from '../../common/resources/types.js';
import { formatObjects } from '../output/format.js';
import type { WithClient } from '../with-client.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

/** "key=value" adds a label, "key-" removes one (kubectl's spelling). */
export function parseLabelArgs(args: readonly string[]): { add: Record<string, string>; remove: string[] } {
  const add: Record<string, string> = {};
  const remove: string[] = [];
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq > 0) add[arg.slice(0, eq)] = arg.slice(eq + 1);
    else if (arg.endsWith('-') && arg.length > 1) remove.push(arg.slice(0, -1));
    else throw new Error(`"${arg}": expected KEY=VALUE to set a label or KEY- to remove one`);
  }
  return { add, remove };
}

export function registerNodeCommands(program: Command, cluster: Command, withClient: WithClient): void {
  const node = program.command('node').description('manage nodes');
  node
    .command('ls')
    .description('list nodes')
    .action(() =>
      withClient(async (client) => {
        const res = await client.list({ kind: 'Node', allStacks: true });
        out(
          formatObjects(
            res.objectsJson.map((j) => JSON.parse(j) as Node),
            'table',
            'Node',
            { now: new Date() },
          ),
        );
      }),
    );
  node
    .command('update')
    .description("change a node's availability")
    .argument('<name>', 'node name')
    .requiredOption('--availability <availability>', 'active, pause (no new tasks) or drain (move tasks away)')
    .action((name: string, options: { availability: string }) =>
      withClient(async (client) => {
        await client.updateNode({ name, availability: options.availability, addLabels: {}, removeLabels: [] });
        out(`node/${name} availability ${options.availability}`);
      }),
    );
  for (const [command, role, description] of [
    ['promote', 'manager', 'make worker nodes managers (raft store): each renews its certificate as a manager and joins the Raft group'],
    ['demote', 'worker', 'make managers workers: each leaves the Raft group first, then renews its certificate as a worker'],
  ] as const) {
    node
      .command(command)
      .description(description)
      .argument('<names...>', 'node names')
      .action((names: string[]) =>
        withClient(async (client) => {
          // One at a time: each membership change must be done before the next one is asked for.
          for (const name of names) {
            await client.updateNode({ name, availability: '', addLabels: {}, removeLabels: [], role });
            out(`node/${name} ${command}d to ${role}`);
          }
        }),
      );
  }
  node
    .command('label')
    .description('set (KEY=VALUE) or remove (KEY-) node labels, for placement constraints')
    .argument('<name>', 'node name')
    .argument('<labels...>', 'KEY=VALUE or KEY-')
    .action((name: string, labels: string[]) =>
      withClient(async (client) => {
        const { add, remove } = parseLabelArgs(labels);
        await client.updateNode({ name, availability: '', addLabels: add, removeLabels: remove });
        out(`node/${name} labelled`);
      }),
    );

  node
    .command('rm')
    .description('remove a node from the cluster and revoke its certificates (it can no longer connect; rejoining takes a new join token)')
    .argument('<name>', 'node name')
    .option('--force', 'remove a node that is still up (its tasks are rescheduled elsewhere)')
    .action((name: string, options: { force?: boolean }) =>
      withClient(async (client) => {
        const { revokedSerials } = await client.removeNode(name, options.force === true);
        const count = revokedSerials.length;
        out(`node/${name} removed; ${count} certificate${count === 1 ? '' : 's'} revoked`);
      }),
    );

  cluster
    .command('join-token')
    .description(
      'make a new token a node joins with; the previous token of that role stops working, and the token is shown only this once (it is stored hashed)',
    )
    .argument('<role>', 'worker or manager')
    // Kept so that scripts written when tokens could be shown again still run: every call now makes a new one.
    .addOption(new Option('--rotate', 'no effect: every call makes a new token').hideHelp())
    .option('-q, --quiet', 'print only the token')
    .action((role: string, options: { quiet?: boolean }) =>
      withClient(async (client) => {
        const { token } = await client.joinToken(role);
        out(
          options.quiet
            ? token
            : `New ${role} join token (shown only once; the previous ${role} token no longer works):\n${token}\nPut it in a 0600 file on the node and run there: tsd join --token-file FILE MANAGER_ADDRESS (or set TESSERA_JOIN_TOKEN; never pass it on the command line)`,
        );
      }),
    );
}
