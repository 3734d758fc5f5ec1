// `tsctl node ls|update|label` and `tsctl cluster join-token`.
import type { Command } from 'commander';

import type { Node } from '../../common/resources/types.js';
import type { ApiClient } from '../client.js';
import { formatObjects } from '../output/format.js';

type WithClient = <T>(fn: (client: ApiClient) => Promise<T>) => Promise<T>;

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

  cluster
    .command('join-token')
    .description('print (or --rotate) the token a node joins with')
    .argument('<role>', 'worker or manager')
    .option('--rotate', 'replace the token; the old one stops working for new joins')
    .option('-q, --quiet', 'print only the token')
    .action((role: string, options: { rotate?: boolean; quiet?: boolean }) =>
      withClient(async (client) => {
        const { token } = await client.joinToken(role, options.rotate === true);
        out(options.quiet ? token : `${options.rotate ? 'New ' : ''}${role} join token: ${token}\nJoin with: tsd join --token ${token} MANAGER_ADDRESS`);
      }),
    );
}
