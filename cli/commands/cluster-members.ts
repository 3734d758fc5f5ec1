// `tsctl cluster members` (each manager of the replicated store: id, address, role, term, commit
// and applied index) and `tsctl cluster members remove NAME`.
import type { Command } from 'commander';

import { MembersApiClient, grpcMessage, type ClusterMemberRow } from '../../control-plane/raft/host/members-api.js';
import { readContext, serverAddress } from '../context.js';
import { securityFor } from '../connection.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

export function formatMembers(rows: ClusterMemberRow[]): string[] {
  const header = ['ID', 'ADDRESS', 'ROLE', 'TERM', 'COMMIT', 'APPLIED'];
  const cells = rows.map((m) => [m.id, m.address, m.role, String(m.term), String(m.commit), String(m.applied)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  return [header, ...cells].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd(),
  );
}

export function registerClusterMembersCommands(program: Command, cluster: Command): void {
  const withMembers = async <T>(fn: (c: MembersApiClient) => Promise<T>): Promise<T> => {
    const address = await serverAddress(program.opts<{ server?: string }>().server);
    // The root socket in plaintext, a manager's port with the context's certificate.
    const client = new MembersApiClient(address, securityFor(address, (await readContext())?.tls));
    try {
      return await fn(client);
    } catch (err) {
      throw new Error(grpcMessage(err));
    } finally {
      client.close();
    }
  };
  const members = cluster
    .command('members')
    .description('list the managers of the replicated store (role, term, commit and applied index)')
    .action(() => withMembers(async (c) => formatMembers(await c.members()).forEach((l) => out(l))));
  members
    .command('remove <name>')
    .description('remove a manager from the replicated store')
    .action((name: string) =>
      withMembers(async (c) => {
        const index = await c.change('remove', name);
        out(`manager ${name} removed (log index ${index})`);
      }),
    );
}
