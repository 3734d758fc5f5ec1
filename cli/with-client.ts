// Every command that talks to the cluster does it the same way: one client for the server named by
// --server (or the current context), closed when the command is done, also when it fails.
import type { Command } from 'commander';

import { connect, type ApiClient } from './client.js';
import { serverAddress } from './context.js';

export type WithClient = <T>(fn: (client: ApiClient) => Promise<T>) => Promise<T>;

export function clientRunner(program: Command): WithClient {
  return async (fn) => {
    const client = connect(await serverAddress(program.opts<{ server?: string }>().server));
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };
}
