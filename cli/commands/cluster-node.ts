// `tsctl cluster node stop|kill|start NODE`: one node of the local netns cluster (`cluster up
// --nodes N`) loses or regains its tsd, so that failover can be tried by hand (issue 20). The new
// PID and start time go back into the context, which `cluster down` reads to clean up.
import type { Command } from 'commander';

import { readContext, writeContext } from '../context.js';
import { startNetnsNodeTsd, stopNetnsNodeTsd, type NetnsClusterState } from '../local-cluster/netns-cluster.js';

async function onLocalCluster(action: (state: NetnsClusterState) => Promise<string>, out: (line: string) => void): Promise<void> {
  const context = await readContext();
  if (!context?.netns) throw new Error('no local multi-node cluster is recorded in the tsctl context (tsctl cluster up --nodes N makes one)');
  const state = context.netns;
  try {
    out(await action(state));
  } finally {
    // Also after a failed start: the PID it was given is recorded, so `cluster down` can stop it.
    await writeContext({ ...context, netns: state });
  }
}

export function registerClusterNodeCommands(cluster: Command, out: (line: string) => void): void {
  const node = cluster.command('node').description("stop, kill or start one node's tsd in the local multi-node cluster");
  node
    .command('stop')
    .argument('<node>', 'e.g. node-2')
    .description('SIGTERM its tsd and wait until it has exited')
    .action(async (name: string) => onLocalCluster((state) => stopNetnsNodeTsd(state, name, 'stop'), out));
  node
    .command('kill')
    .argument('<node>', 'e.g. node-2')
    .description('SIGKILL its tsd, as a crash would')
    .action(async (name: string) => onLocalCluster((state) => stopNetnsNodeTsd(state, name, 'kill'), out));
  node
    .command('start')
    .argument('<node>', 'e.g. node-2')
    .description('start its tsd again with its data (managers rejoin the others)')
    .action(async (name: string) => onLocalCluster((state) => startNetnsNodeTsd(state, name), out));
}
