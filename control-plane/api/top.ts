// The Top call: the resource use of running tasks, asked of every node they run on at once (the
// leader's dispatcher holds the sessions). A node that has no session or does not answer within
// NODE_ANSWER_MS becomes a notice naming it, and the other nodes' rows are still returned: the
// call never waits longer than that for a dead node. Rows are put together here (pure), the
// asking is NodeTop's.
import type { Node, Task } from '../../common/resources/types.js';
import type { NodeTop as NodeTopRow } from '../../proto/gen/tessera/api/v1/NodeTop.js';
import type { TaskTop } from '../../proto/gen/tessera/api/v1/TaskTop.js';
import type { TopResponse } from '../../proto/gen/tessera/api/v1/TopResponse.js';
import type { NodeTop, NodeUsage } from '../dispatcher/node-top.js';
import { NodeUnavailableError } from '../dispatcher/node-requests.js';

/** A node samples for about a second (agent/stats/usage-sampler.ts); this leaves it room on a busy machine. */
export const NODE_ANSWER_MS = 5000;

export interface TopQuery {
  /** Per-node totals instead of task rows. */
  byNode: boolean;
  /** Only this node ('' for every node). */
  node: string;
}

/** The tasks whose use is shown: those the store says run, on a node (and on `node` when given). Pure. */
export function tasksToAsk(tasks: readonly Task[], node: string): Map<string, Task[]> {
  const byNode = new Map<string, Task[]>();
  for (const task of tasks) {
    if (task.status.state !== 'running' || !task.nodeName || (node !== '' && task.nodeName !== node)) continue;
    byNode.set(task.nodeName, [...(byNode.get(task.nodeName) ?? []), task]);
  }
  return byNode;
}

type Answer = { node: string; usage: NodeUsage } | { node: string; error: string };

/** Rows, node totals and notices from the nodes' answers (pure). */
export function topResponse(tasks: readonly Task[], nodes: readonly Node[], answers: readonly Answer[], query: TopQuery): TopResponse {
  const taskByName = new Map(tasks.map((t) => [t.metadata.name, t]));
  const rows: TaskTop[] = [];
  const notices: string[] = [];
  for (const answer of answers) {
    if ('error' in answer) {
      notices.push(`${answer.error}; its tasks are not shown`);
      continue;
    }
    for (const { task, why } of answer.usage.missing) notices.push(`node ${answer.node}: task ${task}: ${why}`);
    for (const usage of answer.usage.tasks) {
      const task = taskByName.get(usage.task);
      rows.push({
        ...usage,
        node: answer.node,
        stack: task?.metadata.stack ?? '',
        service: task?.spec.serviceName ?? '',
      });
    }
  }
  rows.sort((a, b) => (a.node ?? '').localeCompare(b.node ?? '') || (a.task ?? '').localeCompare(b.task ?? ''));
  if (!query.byNode) return { tasks: rows, nodes: [], notices };
  const shown = nodes.filter((n) => query.node === '' || n.metadata.name === query.node);
  const totals: NodeTopRow[] = shown
    .map((n) => {
      const own = rows.filter((r) => r.node === n.metadata.name);
      const sum = (key: 'cpuPercent' | 'memoryUsageBytes' | 'networkRxBytes' | 'networkTxBytes' | 'blockReadBytes' | 'blockWriteBytes' | 'pids') =>
        own.reduce((total, r) => total + Number(r[key] ?? 0), 0);
      return {
        node: n.metadata.name,
        state: n.status.state,
        tasks: own.length,
        cpuPercent: sum('cpuPercent'),
        memoryUsageBytes: sum('memoryUsageBytes'),
        networkRxBytes: sum('networkRxBytes'),
        networkTxBytes: sum('networkTxBytes'),
        blockReadBytes: sum('blockReadBytes'),
        blockWriteBytes: sum('blockWriteBytes'),
        pids: sum('pids'),
        nanoCpus: n.status.resources.nanoCpus,
        memoryBytes: n.status.resources.memoryBytes,
      };
    })
    .sort((a, b) => a.node.localeCompare(b.node));
  return { tasks: [], nodes: totals, notices };
}

/** Asks every node with a task among `tasks` at once; resolves when all answered or gave up. */
export async function gatherTop(
  nodeTop: NodeTop | undefined,
  tasks: readonly Task[],
  nodes: readonly Node[],
  query: TopQuery,
  answerMs = NODE_ANSWER_MS,
): Promise<TopResponse> {
  const answers = await Promise.all(
    [...tasksToAsk(tasks, query.node)].map(async ([node, nodeTasks]): Promise<Answer> => {
      if (nodeTop === undefined) return { node, error: `node ${node}: this manager cannot ask nodes for their figures` };
      try {
        return {
          node,
          usage: await nodeTop.request(
            node,
            nodeTasks.map((t) => t.metadata.name),
            answerMs,
          ),
        };
      } catch (err) {
        return { node, error: err instanceof NodeUnavailableError ? err.message : `node ${node}: ${(err as Error).message}` };
      }
    }),
  );
  return topResponse(tasks, nodes, answers, query);
}
