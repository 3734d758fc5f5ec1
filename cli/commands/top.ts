// `tsctl top [SERVICE]` and `tsctl top node [NODE]`: the resource use of running tasks across the
// cluster, like `docker stats --no-stream` — CPU % over about a second (100 % is one CPU), memory
// in use (without inactive page cache) and its limit, network and block I/O bytes since the task
// started, and processes. `node` sums each node's tasks beside its capacity. A node that could
// not be asked is said on stderr, and the other rows are printed.
import { InvalidArgumentError, type Command } from 'commander';

import type { Service } from '../../common/resources/types.js';
import type { NodeTop__Output } from '../../proto/gen/tessera/api/v1/NodeTop.js';
import type { TaskTop__Output } from '../../proto/gen/tessera/api/v1/TaskTop.js';
import { listAll } from '../list-all.js';
import { renderTable } from '../output/table.js';
import { resolveServiceName } from '../resolve.js';
import type { WithClient } from '../with-client.js';
import { formatBytes } from './image.js';

interface TopOptions {
  stack?: string;
  output: 'table' | 'json';
}

/** Transfer sizes as docker stats prints them, in powers of 1000: "0 B", "1.2 kB", "3.4 MB". Pure. */
export function formatDecimalBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function percent(value: number): string {
  return `${value.toFixed(2)}%`;
}

function memoryCell(usage: number, limit: number): string {
  return `${formatBytes(usage)} / ${limit > 0 ? formatBytes(limit) : 'no limit'}`;
}

function pair(a: number, b: number): string {
  return `${formatDecimalBytes(a)} / ${formatDecimalBytes(b)}`;
}

/** One row per task. Pure. */
export function formatTaskTable(rows: readonly TaskTop__Output[]): string {
  return renderTable(
    ['TASK', 'NODE', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O (RX / TX)', 'BLOCK I/O (READ / WRITE)', 'PIDS'],
    rows.map((r) => [
      r.task,
      r.node,
      percent(r.cpuPercent),
      memoryCell(r.memoryUsageBytes, r.memoryLimitBytes),
      r.memoryLimitBytes > 0 ? percent((r.memoryUsageBytes / r.memoryLimitBytes) * 100) : '-',
      pair(r.networkRxBytes, r.networkTxBytes),
      pair(r.blockReadBytes, r.blockWriteBytes),
      String(r.pids),
    ]),
  );
}

/** One row per node: its tasks' sums beside its capacity. Pure. */
export function formatNodeTable(rows: readonly NodeTop__Output[]): string {
  return renderTable(
    ['NODE', 'STATE', 'TASKS', 'CPU %', 'CPUS', 'MEM USAGE / TOTAL', 'MEM %', 'NET I/O (RX / TX)', 'BLOCK I/O (READ / WRITE)', 'PIDS'],
    rows.map((r) => [
      r.node,
      r.state,
      String(r.tasks),
      percent(r.cpuPercent),
      String(Number((r.nanoCpus / 1e9).toFixed(2))),
      `${formatBytes(r.memoryUsageBytes)} / ${formatBytes(r.memoryBytes)}`,
      r.memoryBytes > 0 ? percent((r.memoryUsageBytes / r.memoryBytes) * 100) : '-',
      pair(r.networkRxBytes, r.networkTxBytes),
      pair(r.blockReadBytes, r.blockWriteBytes),
      String(r.pids),
    ]),
  );
}

function outputFormat(value: string): 'table' | 'json' {
  if (value !== 'table' && value !== 'json') throw new InvalidArgumentError(`--output must be table or json, got "${value}"`);
  return value;
}

export function registerTopCommand(program: Command, withClient: WithClient): void {
  program
    .command('top')
    .description("resource use of running tasks on every node (CPU over ~1 s, memory, network and block I/O, pids); 'top node [NODE]' sums per node")
    .argument('[service]', 'only this service (NAME, STACK/NAME or STACK_NAME); "node" shows per-node totals (a service called node: STACK/node or --stack)')
    .argument('[node]', 'with "node": only this node')
    .option('--stack <stack>', "the service's stack")
    .option('-o, --output <format>', 'table, or json', outputFormat, 'table' as const)
    .action(async (target: string | undefined, node: string | undefined, options: TopOptions) => {
      const byNode = target === 'node' && options.stack === undefined;
      if (!byNode && node !== undefined) throw new Error(`tsctl top takes one service name; "${node}" is one too many (per node: tsctl top node ${node})`);
      await withClient(async (client) => {
        let stack = '';
        let service = '';
        if (!byNode && target !== undefined) {
          const found = resolveServiceName(await listAll<Service>(client, 'Service'), target, options.stack);
          stack = found.metadata.stack ?? '';
          service = found.metadata.name;
        }
        const response = await client.top({ stack, service, byNode, node: byNode ? (node ?? '') : '' });
        for (const notice of response.notices) process.stderr.write(`tsctl top: ${notice}\n`);
        const rows = byNode ? response.nodes : response.tasks;
        if (options.output === 'json') process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else process.stdout.write(byNode ? formatNodeTable(response.nodes) : formatTaskTable(response.tasks));
      });
    });
}
