// Every command that talks to the cluster does it the same way: one client for the server named by
// --server (or the current context), with the security that address takes (connection.ts), closed
// when the command is done, also when it fails.
import type { Command } from 'commander';

import { ApiClient } from './client.js';
import { candidateServers, securityFor } from './connection.js';
import { readContext, type CliContext } from './context.js';

export type WithClient = <T>(fn: (client: ApiClient) => Promise<T>) => Promise<T>;

/** How long a manager of several gets to come up before the next one is tried. */
const NEXT_SERVER_AFTER_MS = 3000;

/**
 * A client for the first of the context's servers that accepts a connection; the last one is used
 * without waiting, so that its own error (not a timeout here) is what the user sees.
 */
export async function openClient(flag: string | undefined, context: CliContext | undefined): Promise<ApiClient> {
  const candidates = candidateServers(flag, context);
  for (const address of candidates.slice(0, -1)) {
    const client = new ApiClient(address, { security: securityFor(address, context?.tls) });
    if (await client.reachable(NEXT_SERVER_AFTER_MS)) return client;
    client.close();
  }
  const last = candidates.at(-1)!;
  return new ApiClient(last, { security: securityFor(last, context?.tls) });
}

export function clientRunner(program: Command): WithClient {
  return async (fn) => {
    const client = await openClient(program.opts<{ server?: string }>().server, await readContext());
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };
}
