// Every command that talks to the cluster does it the same way: one client for the server named by
// --server (or the current context), with the security that address takes (connection.ts), closed
// when the command is done, also when it fails. With several managers in the context the client
// fails over between them (failover.ts), and the context's list is kept current (context-servers.ts).
import type { Command } from 'commander';

import { ApiClient } from './client.js';
import { candidateServers, securityFor } from './connection.js';
import { contextCheckedAt, contextPath, markContextChecked, readContext, writeContext, type CliContext } from './context.js';
import { serversForManagers, updatedContext } from './context-servers.js';

export type WithClient = <T>(fn: (client: ApiClient) => Promise<T>) => Promise<T>;

/** How often (at most) a command asks the cluster for its managers to keep the context's list current. */
export const REFRESH_SERVERS_EVERY_MS = 60_000;
/** The ClusterInfo call that refreshes the list gets this long; it must not hold up a command. */
const REFRESH_TIMEOUT_MS = 2000;

/**
 * A client for the server given by --server or $TESSERA_SERVER, or else the context's managers:
 * the one that answered last first, then the others (failing over between them).
 */
export function openClient(flag: string | undefined, context: CliContext | undefined): ApiClient {
  const [first, ...others] = candidateServers(flag, context);
  const security = securityFor(first!, context?.tls);
  // One address from --server, the environment or a single-node context: its own error says what is wrong.
  // A context that lists managers or holds a certificate gets the wait for an election and the
  // one-line answer naming each manager, also when it knows only one (perhaps a removed one).
  const fromContext = context !== undefined && flag === undefined && process.env.TESSERA_SERVER === undefined;
  if (others.length === 0 && !(fromContext && (context.servers !== undefined || context.tls !== undefined))) return new ApiClient(first!, { security });
  return new ApiClient(first!, { security, failover: { addresses: others, securityFor: (address) => securityFor(address, context?.tls) } });
}

/**
 * After a command succeeded: the manager that answered goes first in the context, and (at most
 * every REFRESH_SERVERS_EVERY_MS) the list is replaced by the cluster's own. The file is
 * rewritten only when that changes it; otherwise its mtime records that the list was confirmed.
 */
export async function keepContextCurrent(client: ApiClient, context: CliContext, now = Date.now()): Promise<void> {
  const checkedAt = await contextCheckedAt();
  const due = checkedAt === undefined || now - checkedAt >= REFRESH_SERVERS_EVERY_MS;
  const managers = due ? (await client.clusterInfo(REFRESH_TIMEOUT_MS)).managers : undefined;
  // Read again: a long command (get -w) must not write back the copy it started with over what
  // another tsctl wrote since (a node's new PID), nor bring back a context `cluster down` removed.
  const fresh = await readContext();
  if (fresh === undefined || fresh.server !== context.server || !sameList(fresh.servers, context.servers)) return;
  const next = updatedContext(fresh, client.answeringAddress(), managers && serversForManagers(fresh, managers));
  if (next) await writeContext(next);
  else if (due && checkedAt !== undefined) await markContextChecked();
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return (a ?? []).length === (b ?? []).length && (a ?? []).every((x, i) => x === b![i]);
}

export function clientRunner(program: Command): WithClient {
  return async (fn) => {
    const flag = program.opts<{ server?: string }>().server;
    const context = await readContext();
    const client = openClient(flag, context);
    try {
      const result = await fn(client);
      // Only a context whose servers were used learns from the call (not one bypassed by --server).
      if (context && flag === undefined && process.env.TESSERA_SERVER === undefined) {
        await keepContextCurrent(client, context).catch((err: Error) =>
          // The command itself succeeded; a list that could not be refreshed stays as it was and is tried again next time.
          process.stderr.write(`tsctl: the context's manager list at ${contextPath()} was not updated: ${err.message}\n`),
        );
      }
      return result;
    } finally {
      client.close();
    }
  };
}
